"""The websocket and REST protocol against the real app served by uvicorn on 127.0.0.1:0.

Events are appended straight to the running app's store and bus (persist, then broadcast),
as the pipeline does; a `websockets` client checks what arrives.
"""

from __future__ import annotations

import json
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from copilot.events import Event, Segment, SessionStarted, Tag
from copilot.runtime import Runtime, RuntimeConfig
from copilot.server.runner import ServerThread

TOKEN = "test-token-123"


@pytest.fixture
def served(tmp_path):
    with Runtime(RuntimeConfig(data_dir=tmp_path / "data", token=TOKEN)) as rt, ServerThread(rt.app()) as srv:
        srv.store, srv.log = rt.store, rt.log
        yield srv


def _session(srv, n_segments: int = 0) -> tuple[str, list[Segment]]:
    sid = srv.store.create_session(SessionStarted(title="proto", rubric="default"))
    segs = []
    for i in range(n_segments):
        seg = Segment(speaker="candidate", start_ms=i * 1000, end_ms=i * 1000 + 800, text=f"line {i}")
        srv.log.record(Event.of(sid, seg))
        segs.append(seg)
    return sid, segs


def _ws(srv, sid, after=0, token=TOKEN, **kw):
    q = f"after={after}" + (f"&token={token}" if token is not None else "")
    return connect(f"ws://127.0.0.1:{srv.port}/ws/sessions/{sid}?{q}", open_timeout=5, **kw)


def _recv(ws, timeout=5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def _until_caught_up(ws) -> list[dict]:
    got = []
    while True:
        msg = _recv(ws)
        if msg["type"] == "control" and msg["data"].get("kind") == "caught_up":
            assert msg["seq"] is None and msg["data"]["sent"] == len(got)
            return got
        got.append(msg)


def test_catch_up_then_live_in_order(served):
    sid, _ = _session(served, 3)
    with _ws(served, sid) as ws:
        backlog = _until_caught_up(ws)
        assert [m["seq"] for m in backlog] == [1, 2, 3, 4]
        assert backlog[0]["type"] == "session.started" and backlog[0]["v"] == 1
        live = Segment(speaker="interviewer", start_ms=5000, end_ms=5500, text="next")
        served.log.record(Event.of(sid, live))
        msg = _recv(ws)
        assert msg["seq"] == 5 and msg["data"]["id"] == live.id


def test_resume_after_seq_gives_exactly_the_missing_events(served):
    sid, _ = _session(served, 2)  # seqs 1..3
    with _ws(served, sid) as ws:
        seen = [m["seq"] for m in _until_caught_up(ws)]
    assert seen == [1, 2, 3]
    # Events recorded while the client is away.
    for i in range(4):
        served.log.record(Event.of(sid, Segment(speaker="candidate", start_ms=9000 + i, end_ms=9001 + i, text="x")))
    with _ws(served, sid, after=3) as ws:
        missed = _until_caught_up(ws)
        assert [m["seq"] for m in missed] == [4, 5, 6, 7]
        served.log.record(Event.of(sid, Segment(speaker="candidate", start_ms=1, end_ms=2, text="y")))
        assert _recv(ws)["seq"] == 8


def test_events_recorded_during_catch_up_arrive_once(served):
    """Appends racing the catch-up read: no gap, no duplicate."""
    import threading

    sid, _ = _session(served, 200)
    stop = threading.Event()

    def writer():
        while not stop.is_set():
            served.log.record(Event.of(sid, Segment(speaker="candidate", start_ms=0, end_ms=1, text="race")))
            time.sleep(0.001)

    t = threading.Thread(target=writer)
    t.start()
    try:
        with _ws(served, sid) as ws:
            seqs = [m["seq"] for m in _until_caught_up(ws)]
            time.sleep(0.2)
            stop.set()
            t.join()
            last = served.store.last_seq(sid)
            while not seqs or seqs[-1] < last:
                msg = _recv(ws)
                if msg["seq"] is not None:
                    seqs.append(msg["seq"])
    finally:
        stop.set()
        t.join()
    assert seqs == list(range(1, last + 1))


def test_client_ops_become_logged_events_broadcast_to_all(served):
    sid, segs = _session(served, 2)
    tag = Tag(tag="requirement_gathering", segment_ids=[segs[1].id], start_ms=1000, end_ms=1800, source="rules")
    served.log.record(Event.of(sid, tag))
    with (
        _ws(served, sid) as a,
        connect(f"ws://127.0.0.1:{served.port}/ws/sessions/{sid}?after=0&token={TOKEN}&rater=alice") as b,
    ):
        _until_caught_up(a)
        _until_caught_up(b)
        b.send(json.dumps({"op": "confirm", "tag_id": tag.id}))
        for ws in (a, b):
            msg = _recv(ws)
            assert msg["type"] == "tag.updated" and msg["data"]["status"] == "confirmed"
            assert msg["data"]["by"] == "human:alice" and msg["seq"] == 5
        a.send(json.dumps({"op": "add_tag", "tag": "steering_decision", "at_ms": 1200}))
        for ws in (a, b):
            msg = _recv(ws)
            assert msg["type"] == "tag.added" and msg["data"]["source"] == "human:interviewer"
            assert msg["data"]["segment_ids"] == [segs[1].id]
        a.send(json.dumps({"op": "note", "text": "asked about scale", "at_ms": 100}))
        assert _recv(a)["type"] == "note.added" and _recv(b)["type"] == "note.added"
        b.send(json.dumps({"op": "edit", "tag_id": tag.id, "tag": "tradeoff_articulation"}))
        assert _recv(a)["data"]["status"] == "edited"
    view = served.store.get_session(sid)
    folded = {t["id"]: t for t in view["tags"]}
    assert folded[tag.id]["status"] == "edited" and folded[tag.id]["tag"] == "tradeoff_articulation"
    assert view["notes"][0]["text"] == "asked about scale"


@pytest.mark.parametrize(
    "message, expect",
    [
        ("{not json", "not JSON"),
        ("[1, 2]", "JSON object"),
        (json.dumps({"op": "dance"}), "unknown op"),
        (json.dumps({"op": "confirm"}), "tag_id"),
        (json.dumps({"op": "confirm", "tag_id": "tag_nope"}), "no tag"),
        (json.dumps({"op": "add_tag", "tag": "not_in_rubric"}), "unknown rubric tag"),
        (json.dumps({"op": "note", "text": "x" * 9000}), "too large"),
        (json.dumps({"op": "note", "text": "hi", "extra": 1}), "extra"),
    ],
)
def test_bad_messages_get_an_error_and_the_connection_stays_up(served, message, expect):
    sid, _ = _session(served, 1)
    with _ws(served, sid) as ws:
        _until_caught_up(ws)
        ws.send(message)
        err = _recv(ws)
        assert err["type"] == "status" and err["seq"] is None
        assert err["data"]["level"] == "error" and expect in err["data"]["message"]
        ws.send(json.dumps({"op": "note", "text": "still here"}))
        ok = _recv(ws)
        assert ok["type"] == "note.added" and ok["seq"] == 3
    # Nothing from the bad message reached the log.
    assert [e.type for e in served.store.events(sid)] == ["session.started", "segment.final", "note.added"]


def _closed_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as info:
        ws.recv(timeout=5)
    return info.value.rcvd.code


@pytest.mark.parametrize("token", [None, "wrong-token", TOKEN + "x"])
def test_bad_token_is_rejected_before_any_data(served, token):
    sid, _ = _session(served, 1)
    with _ws(served, sid, token=token) as ws:
        assert _closed_code(ws) == 4401


def test_bearer_header_works_for_the_websocket(served):
    sid, _ = _session(served, 1)
    with _ws(served, sid, token=None, additional_headers={"Authorization": f"Bearer {TOKEN}"}) as ws:
        assert len(_until_caught_up(ws)) == 2


@pytest.mark.parametrize("origin", ["http://evil.example", "http://127.0.0.1:1", "null"])
def test_foreign_origin_is_rejected(served, origin):
    sid, _ = _session(served, 1)
    with _ws(served, sid, origin=origin) as ws:
        assert _closed_code(ws) == 4403


def test_own_origin_is_accepted(served):
    sid, _ = _session(served, 1)
    for host in ("127.0.0.1", "localhost"):
        with _ws(served, sid, origin=f"http://{host}:{served.port}") as ws:
            assert len(_until_caught_up(ws)) == 2


def test_unknown_session_is_closed_4404(served):
    with _ws(served, "ses_missing") as ws:
        assert _closed_code(ws) == 4404


def test_rest_needs_the_token(served):
    sid, segs = _session(served, 2)
    base = served.base_url
    assert httpx.get(f"{base}/api/sessions").status_code == 401
    assert httpx.get(f"{base}/api/sessions", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert httpx.get(f"{base}/api/sessions/{sid}?token=nope").status_code == 401
    listed = httpx.get(f"{base}/api/sessions", headers={"Authorization": f"Bearer {TOKEN}"}).json()
    assert [s["id"] for s in listed] == [sid] and listed[0]["status"] == "live"
    view = httpx.get(f"{base}/api/sessions/{sid}?token={TOKEN}").json()
    assert [s["id"] for s in view["segments"]] == [s.id for s in segs]
    assert view["last_seq"] == 3 and view["status"] == "live"
    assert {t["id"] for t in view["rubric"]["tags"]} >= {
        "requirement_gathering",
        "tradeoff_articulation",
        "steering_decision",
    }
    assert httpx.get(f"{base}/api/sessions/ses_nope?token={TOKEN}").status_code == 404
    rubric = httpx.get(f"{base}/api/rubrics/default?token={TOKEN}")
    assert rubric.status_code == 200 and rubric.json()["tags"]
    exported = httpx.get(f"{base}/api/sessions/{sid}/export?format=json&token={TOKEN}")
    assert exported.status_code == 200 and "line 1" in exported.text
    assert httpx.get(f"{base}/api/sessions/{sid}/export?format=md").status_code == 401


def test_dropped_slow_client_reconnects_and_catches_up_exactly(tmp_path):
    """A client whose queue overflows is closed with 4408; resuming with after= loses nothing."""
    rt = Runtime(RuntimeConfig(data_dir=tmp_path / "data", token=TOKEN, bus_queue_size=8))
    store, bus = rt.store, rt.bus
    with rt, ServerThread(rt.app()) as srv:
        sid = store.create_session(SessionStarted())
        seen: list[int] = []
        with _ws(srv, sid) as ws:
            seen += [m["seq"] for m in _until_caught_up(ws)]
            # A burst published in one loop callback: more than the queue holds, before any send.
            events = [
                store.append(Event.of(sid, Segment(speaker="c", start_ms=i, end_ms=i, text="z"))) for i in range(50)
            ]
            srv.loop.call_soon_threadsafe(lambda: [bus.publish(e) for e in events])
            with pytest.raises(ConnectionClosed) as info:
                while True:
                    msg = _recv(ws)
                    if msg["seq"] is not None:
                        seen.append(msg["seq"])
            assert info.value.rcvd.code == 4408
        with _ws(srv, sid, after=seen[-1]) as ws:
            seen += [m["seq"] for m in _until_caught_up(ws)]
        assert seen == list(range(1, 52))
