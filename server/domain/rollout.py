"""Which version a fetch is served while a rollout splits a prompt between two versions.

A sticky rollout assigns each client a bucket, 0 to 99, from a hash of the prompt's id and the
client's id: the same client always lands in the same bucket (whatever server answers, across
restarts), buckets are spread evenly over clients, and a client's bucket for one prompt says
nothing about its bucket for another. Buckets below ``weight_a`` get ``variant_a``. Without a
client id (or with ``sticky`` off) the variant is drawn at random by weight.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

BUCKETS = 100


@dataclass(frozen=True, slots=True)
class Choice:
    """The version to serve, and the rollout variant it is (None without a rollout)."""

    version: int
    variant: str | None


def bucket(prompt_id: str, client_id: str) -> int:
    """The client's bucket for this prompt, 0 to 99, stable and evenly spread."""
    digest = hashlib.sha256(f"{prompt_id}\0{client_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def choose(
    rollout: Mapping[str, Any] | None,
    live_version: int,
    *,
    prompt_id: str,
    client_id: str | None,
    draw: Callable[[int], int] = random.randrange,
) -> Choice:
    """The live version, or while ``rollout`` is enabled the variant for this client."""
    if not rollout or not rollout.get("enabled"):
        return Choice(live_version, None)
    if client_id is not None and rollout.get("sticky", True):
        position = bucket(prompt_id, client_id)
    else:
        position = draw(BUCKETS)
    if position < int(rollout["weight_a"]):
        return Choice(int(rollout["variant_a"]), "a")
    return Choice(int(rollout["variant_b"]), "b")
