"""The gateway bench's figures: from samples to the result, the table and the targets.

Latency figures are percentiles over every sample of every round; "added" is a target's
percentile minus the floor's, both from the same run. Requests per second are medians over
rounds, and each gateway's ratio to the floor is the median of its same-round ratios.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench.gateway.client import Samples, percentile

TARGETS = ("floor", "gantry", "litellm")
LABELS = {"floor": "upstream direct (floor)", "gantry": "Gantry", "litellm": "LiteLLM proxy"}


def latency(samples: dict[str, Samples], first: bool) -> dict[str, dict[str, float]]:
    """p50 and p99 (ms) of each target's total times, or times to the first ``data:``."""
    out = {}
    for name, sample in samples.items():
        values = sample.first_ms if first else sample.total_ms
        out[name] = {
            "p50": round(percentile(values, 0.50), 3),
            "p99": round(percentile(values, 0.99), 3),
            "samples": len(values),
        }
    return out


def added(table: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Each gateway's percentiles minus the floor's (ms)."""
    floor = table["floor"]
    return {
        name: {p: round(row[p] - floor[p], 3) for p in ("p50", "p99")}
        for name, row in table.items()
        if name != "floor"
    }


def rps_summary(rounds: dict[str, list[float]]) -> tuple[dict[str, float], dict[str, float]]:
    """Median requests per second per target, and the median same-round ratio to the floor."""
    medians = {name: round(statistics.median(values), 1) for name, values in rounds.items()}
    ratios = {
        name: round(
            statistics.median(
                a / b if b else math.nan for a, b in zip(values, rounds["floor"], strict=True)
            ),
            4,
        )
        for name, values in rounds.items()
    }
    return medians, ratios


def targets(result: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, met or not (reported, never asserted)."""
    if "litellm" not in result["plain"]["added_ms"]:
        return []
    rows = []

    def versus(label: str, ours: float, theirs: float) -> None:
        met = ours < theirs / 2
        ratio = ours / theirs if theirs > 0 else math.nan
        rows.append(
            {
                "target": label,
                "met": met,
                "figure": f"Gantry +{ours:.2f} ms, LiteLLM +{theirs:.2f} ms ({ratio:.2f}x)",
            }
        )

    for kind, key, name in (
        ("plain", "added_ms", "non-streamed"),
        ("stream", "added_ms", "streamed time to first byte"),
    ):
        for p in ("p50", "p99"):
            ours = result[kind][key]["gantry"][p]
            theirs = result[kind][key]["litellm"][p]
            versus(f"Gantry adds < half LiteLLM's latency, {name} {p}", ours, theirs)
    for connections, medians in result["rps"].items():
        ours, theirs = medians["gantry"], medians["litellm"]
        rows.append(
            {
                "target": f"Gantry serves more requests/s than LiteLLM, {connections} connections",
                "met": ours > theirs,
                "figure": f"{ours:.0f} vs {theirs:.0f} rps ({ours / theirs:.1f}x)"
                if theirs
                else f"{ours:.0f} vs {theirs:.0f} rps",
            }
        )
    return rows


def table(result: dict[str, Any]) -> str:
    """The side-by-side table, in Markdown."""
    names = [n for n in TARGETS if n in result["plain"]["latency_ms"]]
    header = "| | " + " | ".join(LABELS[n] for n in names) + " |"
    lines = [header, "|---" * (len(names) + 1) + "|"]

    def row(label: str, cells: list[str]) -> None:
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    for kind, what in (("plain", "non-streamed latency"), ("stream", "streamed first byte")):
        measured, extra = result[kind]["latency_ms"], result[kind]["added_ms"]
        for p in ("p50", "p99"):
            cells = []
            for n in names:
                value = f"{measured[n][p]:.2f} ms"
                if n != "floor":
                    value += f" (+{extra[n][p]:.2f})"
                cells.append(value)
            row(f"{what}, {p}", cells)
    for connections, medians in result["rps"].items():
        ratios = result["rps_ratio"][connections]
        cells = [
            f"{medians[n]:,.0f}" + ("" if n == "floor" else f" ({ratios[n]:.3f}x)") for n in names
        ]
        row(f"requests/s, {connections} connections", cells)
    cpu = result["cpu_ms_per_request"]
    row("server CPU per request", [f"{cpu[n]:.2f} ms" for n in names])
    if "rss_mib" in result:
        row(
            "server memory (RSS, all processes)",
            [f"{result['rss_mib'][n]:,.0f} MiB" for n in names],
        )
    row("errors", [str(result["errors"][n]) for n in names])
    return "\n".join(lines)
