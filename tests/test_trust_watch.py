"""Issue 11, finding 9: events another process appends to the same store reach this server's
websocket clients without any local event to trigger a refill (`serve` beside a `replay`)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from websockets.sync.client import connect

from copilot.events import Event, Note, SessionStarted
from copilot.server.app import create_app
from copilot.server.runner import ServerThread
from copilot.session.bus import Bus
from copilot.session.log import SessionLog
from copilot.session.store import SessionStore

REPO = Path(__file__).resolve().parent.parent
TOKEN = "watch-token"

_WRITER = r"""
import sys
from copilot.events import Event, Segment
from copilot.session.store import SessionStore
store = SessionStore(sys.argv[1])
for i in range(int(sys.argv[3])):
    store.append(Event.of(sys.argv[2], Segment(speaker="candidate", start_ms=i * 1000, end_ms=i * 1000 + 900,
                                               text=f"from the other process {i}")))
store.close()
"""


def _recv_seqs(ws, until_seq: int, timeout: float) -> list[dict]:
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            msg = json.loads(ws.recv(timeout=max(0.05, deadline - time.monotonic())))
        except TimeoutError:
            break
        if msg.get("seq") is not None:
            got.append(msg)
            if msg["seq"] >= until_seq:
                break
    return got


def test_events_from_another_process_reach_live_clients(tmp_path):
    data = tmp_path / "data"
    store = SessionStore(data)
    sid = store.create_session(SessionStarted(title="written elsewhere"))
    bus = Bus()
    log = SessionLog(store, bus)
    app = create_app(store, bus, TOKEN, session_log=log)
    try:
        with ServerThread(app) as srv:
            with connect(f"ws://127.0.0.1:{srv.port}/ws/sessions/{sid}?after=0&token={TOKEN}", open_timeout=5) as ws:
                assert [m["seq"] for m in _recv_seqs(ws, 1, 5)] == [1]
                w = subprocess.run(
                    [sys.executable, "-c", _WRITER, str(data), sid, "5"],
                    cwd=REPO,
                    capture_output=True,
                    text=True,
                    timeout=60,
                )
                assert w.returncode == 0, w.stderr
                t0 = time.monotonic()
                got = _recv_seqs(ws, 6, 10)
                took = time.monotonic() - t0
                assert [m["seq"] for m in got] == [2, 3, 4, 5, 6], got  # all of them, in order, once
                assert got[-1]["data"]["text"] == "from the other process 4"
                assert took < 3.0
                # A local event still arrives once, and the watcher adds no duplicate afterwards.
                log.record(Event.of(sid, Note(text="local")))
                got = _recv_seqs(ws, 7, 5)
                assert [m["seq"] for m in got] == [7]
                assert _recv_seqs(ws, 99, 1.5) == []
    finally:
        store.close()
