"""The session log on disk: one SQLite file (WAL) holding every session's append-only event log.

Why these choices (details in docs/events.md):
- WAL + `synchronous=NORMAL`: a commit is a write to the WAL file without an fsync. That survives a
  crash of the *process* (SIGKILL, a Python exception, Ctrl-C): the bytes are in the OS page cache
  and SQLite recovers them on the next open. Only a power loss or kernel panic can lose the last
  few transactions. That trade buys appends well under a millisecond, which the live path needs
  (it appends from the asyncio loop); `durable=True` switches to `synchronous=FULL`.
- `append()` commits before it returns. Callers broadcast only after it returns, so every event a
  websocket client has ever seen is in the file ("persisted before broadcast").
- One writer connection behind a lock (seq assignment is a read-then-insert inside one
  transaction, so it must be serialised); readers get a connection per thread, which WAL lets run
  concurrently with the writer.
- The file is created 0600 and its directory 0700: transcripts are private. SQLite gives the
  -wal and -shm files the database file's permissions.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
from pathlib import Path
from typing import Any, Iterator

from copilot.errors import SessionError
from copilot.events import Event, SessionEnded, SessionStarted, new_id
from copilot.session.fold import fold

DB_NAME = "sessions.db"
log = logging.getLogger("copilot.session.store")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    id         TEXT PRIMARY KEY,
    title      TEXT NOT NULL DEFAULT '',
    status     TEXT NOT NULL CHECK (status IN ('live', 'ended')),
    mode       TEXT NOT NULL DEFAULT 'live',
    started_at REAL NOT NULL,
    ended_at   REAL,
    rubric     TEXT NOT NULL DEFAULT 'default',
    speakers   TEXT NOT NULL DEFAULT '[]',
    last_seq   INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS events (
    session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    seq        INTEGER NOT NULL,
    type       TEXT NOT NULL,
    ts         REAL NOT NULL,
    v          INTEGER NOT NULL,
    data       TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
"""


class SessionStore:
    """All sessions in one SQLite database at `path` (a file, or a directory to hold `sessions.db`)."""

    def __init__(self, path: str | os.PathLike[str], *, durable: bool = False) -> None:
        path = Path(path)
        if path.is_dir() or path.suffix == "":
            path = path / DB_NAME
        self.path = path
        self.dir = path.parent
        self._sync = "FULL" if durable else "NORMAL"
        _private_dir(self.dir)
        _private_file(self.path)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._closed = False
        self._writer = self._connect()
        with self._lock:
            self._writer.executescript(_SCHEMA)

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so nothing is left in an
        # implicit transaction between calls.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={self._sync}")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        return conn

    def _reader(self) -> sqlite3.Connection:
        if self._closed:
            raise SessionError(f"session store {self.path} is closed")
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            self._local.conn = conn
        return conn

    def close(self) -> None:
        self._closed = True
        with self._lock:
            self._writer.close()
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def __enter__(self) -> "SessionStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writes ------------------------------------------------------------------------------

    def create_session(self, started: SessionStarted, *, session_id: str | None = None) -> str:
        """Create a live session; its log starts with `session.started` as seq 1."""
        sid = session_id or new_id("ses")
        event = Event.of(sid, started)
        with self._lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute(
                    "INSERT INTO sessions (id, title, status, mode, started_at, rubric, speakers, last_seq)"
                    " VALUES (?, ?, 'live', ?, ?, ?, ?, 1)",
                    (sid, started.title, started.mode, event.ts, started.rubric, json.dumps(started.speakers)),
                )
                conn.execute(
                    "INSERT INTO events (session_id, seq, type, ts, v, data) VALUES (?, 1, ?, ?, ?, ?)",
                    (sid, event.type, event.ts, event.v, json.dumps(event.data)),
                )
                conn.execute("COMMIT")
            except sqlite3.IntegrityError as exc:
                conn.execute("ROLLBACK")
                raise SessionError(f"session {sid} already exists") from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return sid

    def append(self, event: Event) -> Event:
        """Persist `event` with the session's next seq; return it with `seq` set.

        Committed before it returns. Ephemeral types (`segment.partial`) are refused: they are
        broadcast, never stored.
        """
        return self.append_many([event])[0]

    def append_many(self, events: list[Event]) -> list[Event]:
        """Persist several events in ONE transaction: all of them get consecutive seqs, or none
        is stored (a tag-file import is never half-imported)."""
        for event in events:
            if not event.persisted:
                raise ValueError(f"{event.type} is ephemeral and is never stored")
        rows = [(event, json.dumps(event.data)) for event in events]
        stored: list[Event] = []
        with self._lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                for event, data in rows:
                    stored.append(self._insert(conn, event, data))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return stored

    @staticmethod
    def _insert(conn: sqlite3.Connection, event: Event, data: str) -> Event:
        row = conn.execute(
            "UPDATE sessions SET last_seq = last_seq + 1 WHERE id = ? RETURNING last_seq",
            (event.session_id,),
        ).fetchone()
        if row is None:
            raise SessionError(f"no session {event.session_id}")
        seq = int(row[0])
        conn.execute(
            "INSERT INTO events (session_id, seq, type, ts, v, data) VALUES (?, ?, ?, ?, ?, ?)",
            (event.session_id, seq, event.type, event.ts, event.v, data),
        )
        if event.type == "session.ended":
            conn.execute(
                "UPDATE sessions SET status = 'ended', ended_at = ? WHERE id = ?",
                (event.ts, event.session_id),
            )
        return event.model_copy(update={"seq": seq})

    def end_session(self, session_id: str, reason: str = "stopped", duration_ms: int | None = None) -> Event:
        """Append `session.ended` (status becomes `ended`). Refused if it already ended."""
        info = self.session_info(session_id)
        if info["status"] == "ended":
            raise SessionError(f"session {session_id} has already ended")
        return self.append(Event.of(session_id, SessionEnded(reason=reason, duration_ms=duration_ms)))

    def continue_session(self, session_id: str) -> dict[str, Any]:
        """Take up a session that was left `live` (the process died): appends go on from its last seq.

        Refused for an ended session: its log is closed. Returns the session's info.
        """
        info = self.session_info(session_id)
        if info["status"] == "ended":
            raise SessionError(f"session {session_id} has ended and cannot be continued")
        return info

    def delete_session(self, session_id: str) -> None:
        """Remove everything of the session: its events, its kept audio, and any temporary
        recording a crash left (`.ID.recording.wav`, half-written `.ID.flac.*.tmp`).

        `secure_delete` zeroes the freed pages and a TRUNCATE checkpoint empties the WAL, so the
        transcript does not linger in the database files either (best effort while another
        process holds a read transaction open on the same store)."""
        with self._lock:
            conn = self._writer
            conn.execute("PRAGMA secure_delete=ON")
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("DELETE FROM events WHERE session_id = ?", (session_id,))
                cur = conn.execute("DELETE FROM sessions WHERE id = ?", (session_id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            if cur.rowcount:
                conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        if cur.rowcount == 0:
            raise SessionError(f"no session {session_id}")
        for path in self.session_files(session_id):
            path.unlink(missing_ok=True)

    def reclaim_space(self) -> None:
        """VACUUM: rewrite the database without its free pages (after deleting sessions)."""
        with self._lock:
            self._writer.execute("VACUUM")
            self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def last_activity(self, session_id: str) -> float | None:
        """Wall-clock time (Unix) of the session's newest event, or None."""
        row = (
            self._reader()
            .execute("SELECT ts FROM events WHERE session_id = ? ORDER BY seq DESC LIMIT 1", (session_id,))
            .fetchone()
        )
        return float(row[0]) if row else None

    def session_files(self, session_id: str) -> list[Path]:
        """The session's files beside the log: its FLAC and any temporary recording or encode."""
        folder = self.dir / "sessions"
        if not folder.is_dir():
            return []
        prefix = f"{session_id}."  # ids never contain a dot, so ses_ab never matches ses_abc
        return sorted(p for p in folder.iterdir() if p.name.lstrip(".").startswith(prefix))

    def audio_path(self, session_id: str) -> Path:
        """Where `--keep-audio` puts this session's recording (beside the log)."""
        return self.dir / "sessions" / f"{session_id}.flac"

    # -- reads -------------------------------------------------------------------------------

    def events(self, session_id: str, after: int = 0, *, limit: int | None = None) -> list[Event]:
        """Persisted events with seq > `after`, in seq order."""
        return list(self.iter_events(session_id, after, limit=limit))

    def iter_events(self, session_id: str, after: int = 0, *, limit: int | None = None) -> Iterator[Event]:
        sql = "SELECT seq, type, ts, v, data FROM events WHERE session_id = ? AND seq > ? ORDER BY seq"
        params: tuple[Any, ...] = (session_id, after)
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        for row in self._reader().execute(sql, params).fetchall():
            yield Event(
                v=row["v"],
                session_id=session_id,
                seq=row["seq"],
                type=row["type"],
                ts=row["ts"],
                data=json.loads(row["data"]),
            )

    def last_seq(self, session_id: str) -> int:
        return int(self.session_info(session_id)["last_seq"])

    def exists(self, session_id: str) -> bool:
        row = self._reader().execute("SELECT 1 FROM sessions WHERE id = ?", (session_id,)).fetchone()
        return row is not None

    def session_info(self, session_id: str) -> dict[str, Any]:
        """The session's row: id, title, status, mode, started_at, ended_at, rubric, speakers, last_seq."""
        row = self._reader().execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise SessionError(f"no session {session_id}")
        return _row_info(row)

    def list_sessions(self) -> list[dict[str, Any]]:
        """All sessions, newest first: id, title, status, mode, started_at, ended_at, rubric, last_seq."""
        rows = self._reader().execute("SELECT * FROM sessions ORDER BY started_at DESC, id").fetchall()
        return [_row_info(r) for r in rows]

    def get_session(self, session_id: str) -> dict[str, Any]:
        """The session's row plus its folded log (`copilot.session.fold`): speakers, segments, turns,
        tags (current status / by / standing, history), notes, ended."""
        info = self.session_info(session_id)
        view = fold(self.events(session_id), session_id).to_json()
        keep = ("speakers", "segments", "turns", "tags", "notes", "ended")
        return {**info, **{k: view[k] for k in keep}, "last_seq": info["last_seq"]}

    def has_tag(self, session_id: str, tag_id: str) -> bool:
        row = (
            self._reader()
            .execute(
                "SELECT 1 FROM events WHERE session_id = ? AND type IN ('tag.proposed', 'tag.added')"
                " AND json_extract(data, '$.id') = ? LIMIT 1",
                (session_id, tag_id),
            )
            .fetchone()
        )
        return row is not None

    def segments(self, session_id: str, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Final segments' payloads (all, or those with the given ids), in log order."""
        rows = (
            self._reader()
            .execute(
                "SELECT data FROM events WHERE session_id = ? AND type = 'segment.final' ORDER BY seq",
                (session_id,),
            )
            .fetchall()
        )
        segs = [json.loads(r["data"]) for r in rows]
        if ids is not None:
            wanted = set(ids)
            segs = [s for s in segs if s.get("id") in wanted]
        return segs


def _row_info(row: sqlite3.Row) -> dict[str, Any]:
    return {
        "id": row["id"],
        "title": row["title"],
        "status": row["status"],
        "mode": row["mode"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "rubric": row["rubric"],
        "speakers": json.loads(row["speakers"]),
        "last_seq": row["last_seq"],
    }


def _private_dir(path: Path) -> None:
    existed = path.exists()
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not existed:
        os.chmod(path, 0o700)
        return
    mode = path.stat().st_mode & 0o777
    if not mode & 0o077:
        return
    # A folder that holds nothing but the copilot's own files is tightened; any other folder (a
    # shared one the user pointed --data-dir at) is left alone, but never silently.
    ours = path.stat().st_uid == os.getuid() and all(
        p.name.startswith(DB_NAME) or p.name == "sessions" for p in path.iterdir()
    )
    if ours:
        os.chmod(path, 0o700)
        log.warning("data directory %s was open to other users (mode %03o): tightened to 0700", path, mode)
    else:
        log.warning(
            "data directory %s is open to other users (mode %03o) and holds other files, so it was "
            "left as it is; the session files in it are private (0600), but their names are visible. "
            "Use a private folder (--data-dir)",
            path,
            mode,
        )


def _private_file(path: Path) -> None:
    # Create it ourselves with 0600 before SQLite opens it (SQLite would use the umask), and
    # tighten an existing file made by an older version.
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    os.close(fd)
    os.chmod(path, 0o600)
    for suffix in ("-wal", "-shm"):
        side = path.with_name(path.name + suffix)
        if side.exists():
            os.chmod(side, 0o600)


def default_store_path(data_dir: str | os.PathLike[str] | None = None) -> Path:
    from copilot.config import data_dir as default_data_dir

    return Path(data_dir or default_data_dir()) / DB_NAME
