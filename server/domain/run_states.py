"""The run state machine, declared once: every change of a run's status is one of these moves.

A move names the states it leaves from and the one it enters. Domain code asks ``target`` for
where a move leads from a run's current status and gets a 409 ``invalid_transition`` (with the
current ``state`` in the problem) when the table does not allow it; storage applies the move
and appends it to the run's stored history (``run_transitions``), so the history is always a
path through this table (``is_legal_history`` says whether one is).

::

    queued ──claim──► claimed ──start──► running ──succeed / fail──► succeeded | failed
      ▲                  │                 │  ▲
      └──requeue─────────┴─────────────────┤  │ resume (POST /runs/{id}/input)
         (lease lost, attempts left)       ▼  │
                                          waiting
    cancel: queued, claimed, waiting → cancelled at once; running → ``cancel_requested``, then
    the holder's ``finish_cancelled`` or, after the grace period, ``force_cancel``
    timed_out: the queue TTL passed (queued), the lease was lost on the last attempt, or the
    maximum duration passed (claimed, running)
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from server.domain.errors import Conflict

__all__ = [
    "ACTIVE",
    "MOVES",
    "TERMINAL",
    "Move",
    "can",
    "is_legal_history",
    "refuse",
    "target",
]

QUEUED = "queued"
CLAIMED = "claimed"
RUNNING = "running"
WAITING = "waiting"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"
TIMED_OUT = "timed_out"

TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED, TIMED_OUT})
# The states that hold a run's source (409 ``has_active_runs`` on its delete).
ACTIVE = frozenset({QUEUED, CLAIMED, RUNNING, WAITING})
# The states whose holder keeps a lease.
LEASED = frozenset({CLAIMED, RUNNING, WAITING})


@dataclass(frozen=True, slots=True)
class Move:
    """A change of status: from any of ``sources`` to ``to``."""

    name: str
    sources: frozenset[str]
    to: str


def _moves(*moves: Move) -> Mapping[str, Move]:
    return MappingProxyType({move.name: move for move in moves})


MOVES: Mapping[str, Move] = _moves(
    # The queue.
    Move("claim", frozenset({QUEUED}), CLAIMED),
    Move("start", frozenset({CLAIMED}), RUNNING),
    Move("wait", frozenset({RUNNING}), WAITING),
    Move("resume", frozenset({WAITING}), RUNNING),
    # Completions by the lease holder (``failed`` also before the start).
    Move("succeed", frozenset({RUNNING}), SUCCEEDED),
    Move("fail", frozenset({CLAIMED, RUNNING}), FAILED),
    Move("finish_cancelled", frozenset({RUNNING}), CANCELLED),
    # Cancellation by a user: at once unless the run is executing.
    Move("cancel", frozenset({QUEUED, CLAIMED, WAITING}), CANCELLED),
    Move("force_cancel", frozenset({RUNNING}), CANCELLED),
    # What the reaper does with lost leases and passed limits.
    Move("requeue", frozenset({CLAIMED, RUNNING, WAITING}), QUEUED),
    Move("expire", frozenset({CLAIMED, RUNNING, WAITING}), TIMED_OUT),
    Move("queue_timeout", frozenset({QUEUED}), TIMED_OUT),
    Move("overrun", frozenset({CLAIMED, RUNNING}), TIMED_OUT),
)

# Where a run enters the machine.
INITIAL = QUEUED


def can(move: str, status: str) -> bool:
    """Whether ``move`` is allowed from ``status``."""
    return status in MOVES[move].sources


def refuse(status: str, detail: str | None = None) -> Conflict:
    """The 409 for a call the run's ``status`` does not allow."""
    return Conflict(
        detail or f"The run is {status}; this is not allowed now.",
        code="invalid_transition",
        extra={"state": status},
    )


def target(move: str, status: str) -> str:
    """Where ``move`` leads from ``status``, or the 409 ``invalid_transition``."""
    if not can(move, status):
        raise refuse(status)
    return MOVES[move].to


def is_legal_history(steps: Iterable[tuple[str | None, str, str]]) -> bool:
    """Whether ``(from, to, move)`` triples, in order, are one path through the table from
    the initial state (``from`` None: the run's creation)."""
    current: str | None = None
    for source, to, move in steps:
        if source != current:
            return False
        if source is None:
            if move != "create" or to != INITIAL:
                return False
        elif move not in MOVES or not can(move, source) or MOVES[move].to != to:
            return False
        current = to
    return current is not None
