"""The SDK fetch over HTTP, against a static file served by the same stack.

The SDK fetch (``GET /api/v1/sdk/prompts/{key}``) is what every running application calls, so it
is the product's hottest path. A fresh SQLite database gets a workspace, a published prompt with
a sticky A/B rollout and a viewer API key; gunicorn (2 workers, Gantry's app) then serves:

* ``sdk_200``: the fetch with a ``client_id``, no validator: the whole answer;
* ``sdk_304``: the same with the ``If-None-Match`` of that answer: 304, no body;
* ``static_200`` / ``static_304``: a static file of the docs page (``docs-init.js``) from the
  same server, plain and revalidated: Flask's ``send_file`` behind the same WSGI stack (request
  ids, security headers, the contract gate), no authentication, no database. This is the floor.

Each is loaded in turn, round-robin, with the same bounded load as the other HTTP benches;
the figures are medians over rounds of requests per second, p99 latency and the workers' CPU
time per request, and each SDK figure's ratio to its floor (the same round's static figure).
Ratios, never timed assertions: the machine may be shared.

    python -m bench.sdk_fetch [--quick]
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import tempfile
from collections.abc import Callable
from math import nan
from pathlib import Path
from typing import Any

from bench.over_http import HOST, LoadResult, Server, describe_tool, load
from bench.requests import BenchRequest

TOKEN = "pat_" + "BenchSdkFetchToken0123456789abcdefghijklm"[:40]
SECRET = "bench-secret-key"
KEY = "support-reply"
STATIC = "/api/v1/docs/assets/docs-init.js"
NAMES = ("sdk_200", "sdk_304", "static_200", "static_304")
EXPECTED = {"sdk_200": 200, "sdk_304": 304, "static_200": 200, "static_304": 304}
FLOOR = {"sdk_200": "static_200", "sdk_304": "static_304"}


def _env(var_dir: Path) -> dict[str, str]:
    return {
        "GANTRY_VAR_DIR": str(var_dir),
        "GANTRY_DATABASE_URL": f"sqlite:///{var_dir / 'gantry.db'}",
        "GANTRY_SECRET_KEY": SECRET,
        "GANTRY_BOOTSTRAP_TOKEN": TOKEN,
    }


def seed(var_dir: Path) -> str:
    """A database with a published prompt (two versions, a 50/50 sticky rollout); returns the
    secret of a viewer API key of its workspace."""
    import logging

    from server.app import create_app
    from server.config import Config

    logging.disable(logging.CRITICAL)
    env = _env(var_dir)
    app = create_app(
        Config(
            database_url=env["GANTRY_DATABASE_URL"],
            var_dir=var_dir,
            bootstrap_token=TOKEN,
            secret_key=SECRET,
        )
    )
    client = app.test_client()
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def call(method: str, path: str, body: Any, status: int) -> Any:
        response = client.open(f"/api/v1{path}", method=method, json=body, headers=auth)
        assert response.status_code == status, response.get_data(as_text=True)
        return response.get_json()

    workspace = call("POST", "/workspaces", {"name": "Bench", "slug": "bench"}, 201)["id"]
    content = "You answer {{ customer }} about {{ topic }}.\n" * 20  # about 1 KB
    prompt = call(
        "POST",
        f"/workspaces/{workspace}/prompts",
        {"key": KEY, "content": content, "variables": ["customer", "topic"], "publish": True},
        201,
    )["id"]
    call("PATCH", f"/prompts/{prompt}", {"content": content + "Be brief."}, 200)
    call("POST", f"/prompts/{prompt}/publish", {"label": "v2"}, 201)
    call("PUT", f"/prompts/{prompt}/rollout", {"variant_a": 1, "variant_b": 2, "weight_a": 50}, 200)
    key: str = call(
        "POST", f"/workspaces/{workspace}/api-keys", {"name": "sdk", "role": "viewer"}, 201
    )["key"]
    app.extensions["gantry"].database.dispose()
    return key


def _etag(port: int, path: str, headers: dict[str, str]) -> str:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        response.read()
        etag = response.getheader("ETag")
        assert response.status == 200 and etag, (response.status, etag)
        return etag
    finally:
        conn.close()


def requests_for(port: int, api_key: str) -> dict[str, BenchRequest]:
    auth = ("Authorization", f"Bearer {api_key}")
    sdk_path, query = f"/api/v1/sdk/prompts/{KEY}", "client_id=bench-client-1"
    sdk_etag = _etag(port, f"{sdk_path}?{query}", {auth[0]: auth[1]})
    static_etag = _etag(port, STATIC, {})
    return {
        "sdk_200": BenchRequest("sdk_200", "GET", sdk_path, query, (auth,), b""),
        "sdk_304": BenchRequest(
            "sdk_304", "GET", sdk_path, query, (auth, ("If-None-Match", sdk_etag)), b""
        ),
        "static_200": BenchRequest("static_200", "GET", STATIC, "", (), b""),
        "static_304": BenchRequest(
            "static_304", "GET", STATIC, "", (("If-None-Match", static_etag),), b""
        ),
    }


def run(
    *, duration: float, connections: int, rounds: int, log: Callable[[str], None] = print
) -> dict[str, Any]:
    """Seed, serve, load; the ``sdk_fetch`` section of latest.json."""
    with tempfile.TemporaryDirectory(prefix="gantry-bench-sdk-") as folder:
        var_dir = Path(folder)
        api_key = seed(var_dir)
        server = Server(app="server.app:create_app()", env=_env(var_dir))
        server.start(BenchRequest("ready", "GET", STATIC, "", (), b""), 200)
        results: dict[str, list[LoadResult]] = {name: [] for name in NAMES}
        cpu_us: dict[str, list[float]] = {name: [] for name in NAMES}
        try:
            reqs = requests_for(server.port, api_key)
            for name in NAMES:  # warm-up
                load(server.port, reqs[name], duration=1, connections=connections, expected=0)
            for r in range(rounds):
                order = NAMES[r % len(NAMES) :] + NAMES[: r % len(NAMES)]
                for name in order:
                    cpu_before = server.worker_cpu_s()
                    result = load(
                        server.port,
                        reqs[name],
                        duration=duration,
                        connections=connections,
                        expected=EXPECTED[name],
                    )
                    used = server.worker_cpu_s() - cpu_before
                    results[name].append(result)
                    cpu_us[name].append(used / result.requests * 1e6 if result.requests else nan)
                log(f"SDK fetch: round {r + 1}/{rounds}")
        finally:
            server.stop()

    def median(name: str, attr: str) -> float:
        return round(statistics.median(getattr(r, attr) for r in results[name]), 2)

    def paired(name: str, attr: str) -> float:
        """Median over rounds of the SDK figure over the same round's floor figure."""
        ours, floor = results[name], results[FLOOR[name]]
        ratios = [getattr(a, attr) / getattr(b, attr) for a, b in zip(ours, floor, strict=True)]
        return round(statistics.median(ratios), 3)

    return {
        "load": describe_tool(connections, duration),
        "rounds": rounds,
        "requests": {
            name: {
                "rps": median(name, "rps"),
                "p50_ms": median(name, "p50_ms"),
                "p99_ms": median(name, "p99_ms"),
                "errors": sum(r.errors for r in results[name]),
            }
            for name in NAMES
        },
        # The SDK fetch's share of the floor's throughput (higher is better) and its p99 over
        # the floor's (lower is better), per status.
        "rps_ratio_to_floor": {name: paired(name, "rps") for name in FLOOR},
        "p99_ratio_to_floor": {name: paired(name, "p99_ms") for name in FLOOR},
        # The workers' CPU time per request: on a shared machine, other jobs lower requests per
        # second but hardly CPU time per request.
        "cpu_us_per_request": {name: round(statistics.median(cpu_us[name]), 1) for name in NAMES},
    }


def table(result: dict[str, Any]) -> str:
    lines = [f"SDK fetch over HTTP ({result['load']}, {result['rounds']} rounds, medians):"]
    for name in NAMES:
        row = result["requests"][name]
        lines.append(
            f"  {name:11s} {row['rps']:8.1f} rps  p50 {row['p50_ms']:6.2f} ms  "
            f"p99 {row['p99_ms']:6.2f} ms  CPU {result['cpu_us_per_request'][name]:7.1f} µs/req  "
            f"errors {row['errors']}"
        )
    for name in FLOOR:
        lines.append(
            f"  {name} / {FLOOR[name]}: rps {result['rps_ratio_to_floor'][name]:.2f}x, "
            f"p99 {result['p99_ratio_to_floor'][name]:.2f}x, CPU per request "
            f"{result['cpu_us_per_request'][name] / result['cpu_us_per_request'][FLOOR[name]]:.2f}x"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.sdk_fetch", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one short round")
    args = parser.parse_args(argv)
    from bench.inprocess import quiet_logs

    quiet_logs()
    result = run(
        duration=1.0 if args.quick else 3.0,
        connections=8,
        rounds=1 if args.quick else 5,
        log=lambda message: print(message, flush=True),
    )
    print(table(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
