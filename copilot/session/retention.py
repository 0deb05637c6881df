"""Retention: sessions older than a number of days are deleted, events and audio alike.

Age is counted from a session's last activity: when it ended, else its newest event (a session a
crash left `live` ages like any other). Deletion is `SessionStore.delete_session` (secure_delete,
the WAL emptied, kept audio and temporary recordings removed); a real purge then VACUUMs, so the
database file shrinks instead of keeping freed pages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from copilot.session.store import SessionStore

DAY_S = 86_400.0


@dataclass(frozen=True)
class Expired:
    session_id: str
    title: str
    last_activity: float  # Unix time
    age_days: float


def expired_sessions(store: SessionStore, older_than_days: float, now: float | None = None) -> list[Expired]:
    now = time.time() if now is None else now
    cutoff = now - older_than_days * DAY_S
    out = []
    for info in store.list_sessions():
        last = info["ended_at"] or store.last_activity(info["id"]) or info["started_at"]
        if last < cutoff:
            out.append(Expired(info["id"], info["title"], last, (now - last) / DAY_S))
    return sorted(out, key=lambda e: e.last_activity)


def purge(
    store: SessionStore, older_than_days: float, *, dry_run: bool = False, now: float | None = None
) -> list[Expired]:
    """Delete every session older than `older_than_days` (nothing when `dry_run`); returns them."""
    expired = expired_sessions(store, older_than_days, now)
    if dry_run or not expired:
        return expired
    for e in expired:
        store.delete_session(e.session_id)
    store.reclaim_space()
    return expired


def apply_configured_retention(store: SessionStore) -> list[Expired]:
    """At start-up (`live`, `replay`, `serve`): purge by the configured `retention_days`, if any,
    and say so on stderr. Off by default."""
    import sys

    from copilot.config import retention_days

    days = retention_days()
    if days is None:
        return []
    gone = purge(store, days)
    if gone:
        print(
            f"copilot: retention {days:g} days: deleted {len(gone)} session(s) "
            f"({', '.join(e.session_id for e in gone)})",
            file=sys.stderr,
            flush=True,
        )
    return gone
