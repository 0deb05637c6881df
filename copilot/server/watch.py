"""Events appended by another process reach this server's websocket clients.

The bus carries what *this* process records. When another process appends to the same store
(`copilot replay` writing while `copilot serve` shows the session, or two interviewers' runs on
one data directory), nothing would reach the clients until a local event made them refill from
the store. The watcher polls instead: `PRAGMA data_version` on its own connection changes when any
other connection commits, and then, for each session that has live subscribers, a stored seq
beyond the last one the bus carried is published. One event is enough: a client that receives a
seq past the next one it expects fills the hole from the store (server/ws.py), and one that
already has it skips it, so a rare duplicate (a local event racing the poll) is harmless.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3

from copilot.errors import SessionError
from copilot.events import Event
from copilot.session.bus import Bus
from copilot.session.store import SessionStore

log = logging.getLogger("copilot.server.watch")
POLL_S = 0.5


class StoreWatcher:
    def __init__(self, store: SessionStore, bus: Bus, interval_s: float = POLL_S) -> None:
        self.store = store
        self.bus = bus
        self.interval_s = interval_s
        self._conn: sqlite3.Connection | None = None
        self._version: int | None = None

    def _data_changed(self) -> bool:
        if self._conn is None:
            self._conn = sqlite3.connect(f"file:{self.store.path}?mode=ro", uri=True, check_same_thread=False)
        version = int(self._conn.execute("PRAGMA data_version").fetchone()[0])
        changed = version != self._version
        self._version = version
        return changed

    def _newest(self, session_id: str, published: int) -> list[Event]:
        try:
            last = self.store.last_seq(session_id)
        except SessionError:
            return []  # deleted meanwhile
        return self.store.events(session_id, last - 1, limit=1) if last > published else []

    async def poll_once(self) -> int:
        """Publish what other processes appended since the last poll; returns events published."""
        sessions = self.bus.watched_sessions()
        if not sessions or not await asyncio.to_thread(self._data_changed):
            return 0
        sent = 0
        for sid in sessions:
            for event in await asyncio.to_thread(self._newest, sid, self.bus.last_published(sid)):
                self.bus.publish(event)
                sent += 1
        return sent

    async def run(self) -> None:
        try:
            while True:
                await asyncio.sleep(self.interval_s)
                try:
                    await self.poll_once()
                except (sqlite3.Error, SessionError) as exc:  # a busy or closing store: try again later
                    log.debug("store watch skipped a poll: %s", exc)
        finally:
            if self._conn is not None:
                self._conn.close()
