"""Per-session fan-out of events to live subscribers (websocket clients, benchmarks).

Each subscriber has its own bounded queue. Publishing never waits: when a subscriber's queue is
full the subscriber is *dropped* (its queue is emptied and replaced by one `DROPPED` marker), so a
slow client can never hold back the pipeline or the other clients. A dropped websocket client is
closed with code 4408 and reconnects with `after=<last seq it saw>`; the store gives it what it
missed. Loss-free for persisted events, because they are in the store before they are published;
a dropped client misses only ephemeral partials, which the next partial replaces anyway.

`publish` must run on the bus's event loop; from another thread use `publish_threadsafe`.
"""

from __future__ import annotations

import asyncio
import threading
from collections import defaultdict
from typing import Final

from copilot.events import Event

DEFAULT_QUEUE_SIZE = 1024


class _Dropped:
    def __repr__(self) -> str:
        return "DROPPED"


DROPPED: Final = _Dropped()


class Subscription:
    """One subscriber's view of one session's live events."""

    def __init__(self, bus: "Bus", session_id: str, maxsize: int) -> None:
        self.bus = bus
        self.session_id = session_id
        self.queue: asyncio.Queue[Event | _Dropped] = asyncio.Queue(maxsize=maxsize + 1)
        self.maxsize = maxsize
        self.dropped = False

    def _offer(self, event: Event) -> None:
        if self.dropped:
            return
        if self.queue.qsize() >= self.maxsize:
            self.dropped = True
            while not self.queue.empty():
                self.queue.get_nowait()
            self.queue.put_nowait(DROPPED)  # the one slot kept free for this marker
            self.bus.unsubscribe(self)
            return
        self.queue.put_nowait(event)

    async def get(self) -> Event | _Dropped:
        return await self.queue.get()

    def close(self) -> None:
        self.bus.unsubscribe(self)


class Bus:
    def __init__(self, queue_size: int = DEFAULT_QUEUE_SIZE) -> None:
        self.queue_size = queue_size
        self._subs: dict[str, set[Subscription]] = defaultdict(set)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Lock()  # guards _subs against publish_threadsafe callers' reads
        self.dropped_total = 0
        self._published: dict[str, int] = {}  # highest seq published per session (server/watch.py)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        """Attach the event loop the subscribers live on (done by the first subscriber too)."""
        self._loop = loop

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def subscribe(self, session_id: str, maxsize: int | None = None) -> Subscription:
        """Start receiving `session_id`'s events. Call on the loop thread."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        sub = Subscription(self, session_id, maxsize or self.queue_size)
        with self._lock:
            self._subs[session_id].add(sub)
        return sub

    def unsubscribe(self, sub: Subscription) -> None:
        with self._lock:
            subs = self._subs.get(sub.session_id)
            if subs is not None and sub in subs:
                subs.discard(sub)
                if sub.dropped:
                    self.dropped_total += 1
                if not subs:
                    del self._subs[sub.session_id]

    def subscribers(self, session_id: str) -> int:
        with self._lock:
            return len(self._subs.get(session_id, ()))

    def watched_sessions(self) -> list[str]:
        """Sessions that have live subscribers now."""
        with self._lock:
            return [sid for sid, subs in self._subs.items() if subs]

    def last_published(self, session_id: str) -> int:
        """The highest stored seq this bus has carried for the session (0: none yet)."""
        with self._lock:
            return self._published.get(session_id, 0)

    def publish(self, event: Event) -> None:
        """Offer `event` to every subscriber of its session. Never blocks. Loop thread only."""
        with self._lock:
            subs = list(self._subs.get(event.session_id, ()))
            if event.seq is not None and event.seq > self._published.get(event.session_id, 0):
                self._published[event.session_id] = event.seq
        for sub in subs:
            sub._offer(event)

    def publish_threadsafe(self, event: Event) -> None:
        """`publish` from any thread (no-op when nobody has subscribed yet)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self.publish(event)
        else:
            loop.call_soon_threadsafe(self.publish, event)
