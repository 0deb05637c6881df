"""Persist-then-broadcast: the single way an event enters a session.

`record` appends to the store (committed) and only then publishes on the bus, so a client can
never have seen an event that a crash would lose. Ephemeral events (`segment.partial`) and
live-only control readings (`asr_lag`; `seq: null`) go through `broadcast`, which skips the store.
"""

from __future__ import annotations

import threading

from pydantic import BaseModel

from copilot.events import Event, EventType
from copilot.session.bus import Bus
from copilot.session.store import SessionStore


class SessionLog:
    def __init__(self, store: SessionStore, bus: Bus) -> None:
        self.store = store
        self.bus = bus
        # Held across append+publish so that events from one thread reach the bus in seq order.
        self._lock = threading.Lock()

    def record(self, event: Event) -> Event:
        """Persist `event` (assigning its seq), then broadcast it. Returns the stored event."""
        with self._lock:
            stored = self.store.append(event)
            self.bus.publish_threadsafe(stored)
        return stored

    def record_payload(self, session_id: str, payload: BaseModel, *, type: EventType | None = None) -> Event:
        return self.record(Event.of(session_id, payload, type=type))

    def broadcast(self, event: Event) -> None:
        """Send to live clients without storing (partials, periodic live status)."""
        self.bus.publish_threadsafe(event.model_copy(update={"seq": None}))

    def broadcast_payload(self, session_id: str, payload: BaseModel, *, type: EventType | None = None) -> None:
        self.broadcast(Event.of(session_id, payload, type=type))
