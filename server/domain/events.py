"""Change events: one publish point, delivered in-process once the change has committed.

A domain function calls ``publish(uow, type, workspace_id, payload)`` inside its unit of work;
the event reaches the subscribers of ``BUS`` after the unit's transaction commits, in the order
published, and never if it rolls back, so no subscriber hears of a change that did not happen.
An event has the shape of the WebSocket stream's messages (``{id, type, workspace_id,
timestamp, data}``), so the stream, when it comes, subscribes here and forwards.

Delivery is synchronous, in the committing thread: a subscriber must be quick (hand the event
to a queue) and its failures are logged, never raised to the request. The bus is per process;
events carry their workspace, and subscribers filter.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from server.domain.unit import UnitOfWork, rfc3339
from server.security import new_id
from server.storage.commit_hooks import after_commit

__all__ = ["BUS", "Event", "EventBus", "publish"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Event:
    """One change, as the event stream sends it."""

    id: str
    type: str
    workspace_id: str
    timestamp: datetime
    data: Mapping[str, Any] = field(default_factory=dict)

    def message(self) -> dict[str, Any]:
        """The JSON message of the event stream."""
        return {
            "id": self.id,
            "type": self.type,
            "workspace_id": self.workspace_id,
            "timestamp": rfc3339(self.timestamp),
            "data": dict(self.data),
        }


Subscriber = Callable[[Event], None]


class EventBus:
    """Subscribers by registration; ``deliver`` calls each with each event."""

    def __init__(self) -> None:
        self._subscribers: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Add ``subscriber``; returns the function that removes it."""
        with self._lock:
            self._subscribers = (*self._subscribers, subscriber)

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not subscriber)

        return unsubscribe

    def deliver(self, event: Event) -> None:
        for subscriber in self._subscribers:
            try:
                subscriber(event)
            except Exception:
                _log.exception("an event subscriber failed on %s", event.type)


BUS = EventBus()


def publish(
    uow: UnitOfWork,
    event_type: str,
    workspace_id: str,
    payload: Mapping[str, Any],
    *,
    bus: EventBus = BUS,
) -> Event:
    """Announce a change of ``uow``: delivered on ``bus`` when (and if) ``uow`` commits."""
    event = Event(new_id("evt_"), event_type, workspace_id, uow.now, dict(payload))
    after_commit(uow.db, lambda: bus.deliver(event))
    return event
