"""The session log on a real SQLite file: seq, durability, permissions, folding, delete."""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
import time

import pytest

from copilot.errors import SessionError
from copilot.events import Event, Note, PartialSegment, Segment, SessionStarted, Tag, TagUpdate
from copilot.session.store import SessionStore


def _seg(i: int, speaker: str = "candidate") -> Segment:
    return Segment(speaker=speaker, start_ms=i * 1000, end_ms=i * 1000 + 900, text=f"utterance {i}")


def test_seq_is_monotonic_from_one_and_per_session(tmp_path):
    store = SessionStore(tmp_path / "data")
    a = store.create_session(SessionStarted(title="a"))
    b = store.create_session(SessionStarted(title="b"))
    seqs_a = [store.append(Event.of(a, _seg(i))).seq for i in range(5)]
    seqs_b = [store.append(Event.of(b, _seg(i))).seq for i in range(3)]
    assert seqs_a == [2, 3, 4, 5, 6]
    assert seqs_b == [2, 3, 4]
    events = store.events(a)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5, 6]
    assert events[0].type == "session.started" and events[0].data["title"] == "a"
    assert [e.seq for e in store.events(a, after=4)] == [5, 6]
    assert store.last_seq(a) == 6


def test_append_is_committed_before_it_returns(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted())
    ev = store.append(Event.of(sid, _seg(0)))
    # A separate connection (another process would see the same) reads it at once.
    other = sqlite3.connect(store.path)
    row = other.execute("SELECT type, data FROM events WHERE session_id=? AND seq=?", (sid, ev.seq)).fetchone()
    other.close()
    assert row is not None and row[0] == "segment.final" and "utterance 0" in row[1]


def test_events_survive_a_killed_process(tmp_path):
    """An append that returned is on disk even if the process dies right after (no close, no flush)."""
    code = (
        "import os, sys\n"
        "from copilot.session.store import SessionStore\n"
        "from copilot.events import Event, Segment, SessionStarted\n"
        "s = SessionStore(sys.argv[1])\n"
        "sid = s.create_session(SessionStarted(title='killed'))\n"
        "for i in range(20):\n"
        "    s.append(Event.of(sid, Segment(speaker='x', start_ms=i, end_ms=i + 1, text=str(i))))\n"
        "print(sid, flush=True)\n"
        "os.kill(os.getpid(), 9)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == -9
    sid = proc.stdout.strip()
    store = SessionStore(tmp_path)
    assert [e.seq for e in store.events(sid)] == list(range(1, 22))
    assert store.session_info(sid)["status"] == "live"


def test_reopen_then_end_or_continue(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted(title="t"))
    store.append(Event.of(sid, _seg(0)))
    store.close()
    again = SessionStore(tmp_path)
    info = again.continue_session(sid)
    assert info["status"] == "live" and info["last_seq"] == 2
    assert again.append(Event.of(sid, _seg(1))).seq == 3
    ended = again.end_session(sid, reason="recovered")
    assert ended.seq == 4 and ended.type == "session.ended"
    assert again.session_info(sid)["status"] == "ended"
    with pytest.raises(SessionError, match="already ended"):
        again.end_session(sid)
    with pytest.raises(SessionError, match="cannot be continued"):
        again.continue_session(sid)


def test_file_and_dir_are_private(tmp_path):
    data = tmp_path / "fresh" / "dir"
    store = SessionStore(data)
    sid = store.create_session(SessionStarted())
    store.append(Event.of(sid, _seg(0)))
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    for name in ("sessions.db", "sessions.db-wal", "sessions.db-shm"):
        path = data / name
        assert path.exists(), name
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600, name


def test_ephemeral_partials_are_never_stored(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted())
    partial = Event.of(sid, PartialSegment(speaker="candidate", start_ms=0, end_ms=10, text="he"))
    with pytest.raises(ValueError, match="ephemeral"):
        store.append(partial)
    assert [e.type for e in store.events(sid)] == ["session.started"]


def test_unknown_session_is_a_clear_error(tmp_path):
    store = SessionStore(tmp_path)
    with pytest.raises(SessionError, match="no session ses_nope"):
        store.append(Event.of("ses_nope", _seg(0)))
    with pytest.raises(SessionError, match="no session"):
        store.get_session("ses_nope")
    with pytest.raises(SessionError, match="no session"):
        store.delete_session("ses_nope")


def test_folded_view_applies_updates_in_order(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted(title="fold", speakers=["interviewer", "candidate"]))
    s0, s1 = _seg(0, "interviewer"), _seg(1)
    store.append(Event.of(sid, s0))
    store.append(Event.of(sid, s1))
    t1 = Tag(tag="requirement_gathering", segment_ids=[s1.id], start_ms=1000, end_ms=1900, source="rules")
    t2 = Tag(tag="tradeoff_articulation", segment_ids=[s1.id], start_ms=1000, end_ms=1900, source="rules")
    human = Tag(tag="steering_decision", segment_ids=[s1.id], start_ms=1000, end_ms=1900, source="human:alice")
    for t in (t1, t2, human):
        store.append(Event.of(sid, t))
    store.append(Event.of(sid, TagUpdate(tag_id=t1.id, status="confirmed", by="interviewer")))
    store.append(
        Event.of(sid, TagUpdate(tag_id=t2.id, status="edited", by="bob", tag="steering_decision", evidence="utterance"))
    )
    store.append(Event.of(sid, TagUpdate(tag_id=t2.id, status="rejected", by="carol")))
    store.append(Event.of(sid, Note(text="good questions", at_ms=1500, by="interviewer")))
    # The log names people bare (as logs before `human:<name>` did): the fold reads them as people.
    view = store.get_session(sid)
    assert view["title"] == "fold" and view["status"] == "live" and view["last_seq"] == 10
    assert view["speakers"] == ["interviewer", "candidate"]
    assert [s["id"] for s in view["segments"]] == [s0.id, s1.id]
    tags = {t["id"]: t for t in view["tags"]}
    assert list(tags) == [t1.id, t2.id, human.id]
    assert tags[t1.id]["status"] == "confirmed" and tags[t1.id]["by"] == "human:interviewer"
    assert tags[t2.id]["status"] == "rejected" and tags[t2.id]["by"] == "human:carol"
    assert tags[t2.id]["tag"] == "steering_decision" and tags[t2.id]["evidence"] == "utterance"
    assert len(tags[t2.id]["history"]) == 2
    assert tags[human.id]["status"] == "confirmed" and tags[human.id]["by"] == "human:alice"
    assert tags[human.id]["source"] == "human:alice"
    assert view["notes"][0]["text"] == "good questions"
    assert store.has_tag(sid, t1.id) and not store.has_tag(sid, "tag_missing")


def test_list_and_delete(tmp_path):
    store = SessionStore(tmp_path)
    a = store.create_session(SessionStarted(title="first", mode="replay"))
    time.sleep(0.01)
    b = store.create_session(SessionStarted(title="second"))
    store.append(Event.of(b, _seg(0)))
    audio = store.audio_path(b)
    audio.parent.mkdir(parents=True, exist_ok=True)
    audio.write_bytes(b"fLaC")
    listed = store.list_sessions()
    assert [s["id"] for s in listed] == [b, a]
    assert listed[1]["mode"] == "replay" and listed[1]["status"] == "live"
    store.delete_session(b)
    assert [s["id"] for s in store.list_sessions()] == [a]
    assert store.events(b) == []
    assert not audio.exists()
    assert not store.exists(b)


def test_append_is_fast(tmp_path):
    """The live path appends from the asyncio loop: each append must take at most a few ms."""
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted())
    times = []
    for i in range(300):
        ev = Event.of(sid, _seg(i))
        t = time.perf_counter()
        store.append(ev)
        times.append(time.perf_counter() - t)
    times.sort()
    median, p95 = times[len(times) // 2], times[int(len(times) * 0.95)]
    print(f"append median {median * 1000:.3f} ms, p95 {p95 * 1000:.3f} ms")
    assert median < 0.005, f"append median {median * 1000:.1f} ms"


def test_append_many_is_all_or_nothing(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted())
    stored = store.append_many([Event.of(sid, _seg(0)), Event.of(sid, _seg(1))])
    assert [e.seq for e in stored] == [2, 3]
    # The third event names a session that does not exist: the whole batch is refused.
    batch = [Event.of(sid, _seg(2)), Event.of(sid, _seg(3)), Event.of("ses_missing", _seg(4))]
    with pytest.raises(SessionError):
        store.append_many(batch)
    assert store.last_seq(sid) == 3
    assert [e.seq for e in store.events(sid)] == [1, 2, 3]
    assert store.append(Event.of(sid, _seg(5))).seq == 4


def test_a_late_machine_update_does_not_overturn_a_human_verdict(tmp_path):
    store = SessionStore(tmp_path)
    sid = store.create_session(SessionStarted())
    seg = store.append(Event.of(sid, _seg(0))).payload()
    tag = Tag(tag="steering_decision", segment_ids=[seg.id], start_ms=0, end_ms=900, evidence="utterance")
    store.append(Event.of(sid, tag))
    store.append(Event.of(sid, TagUpdate(tag_id=tag.id, status="rejected", by="alice")))
    # The LLM answers after the interviewer's verdict: it may refine confidence, not the verdict.
    store.append(
        Event.of(
            sid,
            TagUpdate(tag_id=tag.id, status="confirmed", by="llm:fake", tag="tradeoff_articulation", confidence=0.9),
        )
    )
    (folded,) = store.get_session(sid)["tags"]
    assert folded["status"] == "rejected" and folded["by"] == "human:alice"
    assert folded["tag"] == "steering_decision"
    assert folded["confidence"] == 0.9
    # Another human can still change it.
    store.append(Event.of(sid, TagUpdate(tag_id=tag.id, status="confirmed", by="bob")))
    (folded,) = store.get_session(sid)["tags"]
    assert folded["status"] == "confirmed" and folded["by"] == "human:bob"
