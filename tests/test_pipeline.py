"""A real recording through the live pipeline (FileSource -> StreamingTranscriber -> rules tagger)
into a real SQLite store: segments and tags land in the log in order, with the right speakers."""

from __future__ import annotations

import asyncio
import os
import stat

import pytest

from copilot.asr.engine import load_model
from copilot.audio.decode import decode_audio
from copilot.audio.demo import DEMO_AUDIO as DEMO
from copilot.audio.file_source import FileSource
from copilot.events import SessionStarted
from copilot.runtime import Runtime, RuntimeConfig
from tests.conftest import requires_shared, shared_audio

pytestmark = [pytest.mark.audio, pytest.mark.slow]


@pytest.fixture(scope="module")
def model():
    return load_model("tiny.en", "cpu")


def _run(rt, path, speakers, *, speed, tag=False, live_events=None):
    source = FileSource(path, realtime=True, speakers=speakers, speed=speed)
    sid = rt.store.create_session(SessionStarted(title="pipeline test", mode="replay", speakers=source.speakers))
    keeper = rt.keeper(sid, len(source.speakers))

    async def main():
        sub = rt.bus.subscribe(sid)
        pipe = rt.pipeline(sid, source, tag=tag, keeper=keeper, speed=speed, status_interval_s=0.5)
        stats = await pipe.run()
        while not sub.queue.empty():
            live_events.append(sub.queue.get_nowait()) if live_events is not None else sub.queue.get_nowait()
        return stats

    return sid, asyncio.run(main())


@requires_shared
def test_stereo_recording_gives_each_sentence_to_its_speaker(tmp_path, model):
    rt = Runtime(RuntimeConfig(data_dir=tmp_path / "data", keep_audio=True), asr_model=model)
    store = rt.store
    live: list = []
    sid, stats = _run(
        rt, shared_audio("stereo_diarization.wav"), ["interviewer", "candidate"], speed=2.0, live_events=live
    )
    events = store.events(sid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert events[0].type == "session.started" and events[-1].type == "session.ended"
    assert events[-1].data["reason"] == "completed"
    assert all(e.type != "segment.partial" for e in events)
    segs = [e.data for e in events if e.type == "segment.final"]
    by_speaker = {
        sp: " ".join(s["text"].lower() for s in segs if s["speaker"] == sp) for sp in ("interviewer", "candidate")
    }
    assert "wizard" in by_speaker["interviewer"] and "curtain" in by_speaker["interviewer"]
    assert "horizon" in by_speaker["candidate"] and "wizard" not in by_speaker["candidate"]
    assert "horizon" not in by_speaker["interviewer"]
    # Live clients saw the same persisted events, plus live-only lag status (seq null).
    persisted_live = [e.seq for e in live if e.seq is not None]
    assert persisted_live == [e.seq for e in events[1:]]  # all after session.started (created before subscribe)
    assert any(e.type == "control" and e.data["kind"] == "asr_lag" and e.data["asr_lag_ms"] >= 0 for e in live)
    # The audio clock is a typed control event, and the only control kind the store keeps.
    assert [e.data["kind"] for e in events if e.type == "control"] == ["audio_clock"]
    # --keep-audio: a private two-channel FLAC of the whole session, and no temp file left.
    flac = store.audio_path(sid)
    assert stat.S_IMODE(os.stat(flac).st_mode) == 0o600
    audio = decode_audio(flac, mono=False)
    assert audio.channels == 2 and abs(audio.duration_ms - 5000) <= 150
    assert sorted(p.name for p in flac.parent.iterdir()) == [flac.name]


def test_demo_interview_tags_follow_their_segments(tmp_path, model):
    rt = Runtime(RuntimeConfig(data_dir=tmp_path / "data", rubric="default"), asr_model=model)
    store = rt.store
    assert rt.tagging().tagger.name == "rules" and rt.tagging().llm is None
    sid, stats = _run(rt, DEMO, ["interviewer", "candidate"], speed=4.0, tag=True)
    events = store.events(sid)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    seg_seq = {e.data["id"]: e.seq for e in events if e.type == "segment.final"}
    seg_speaker = {e.data["id"]: e.data["speaker"] for e in events if e.type == "segment.final"}
    tags = [e for e in events if e.type == "tag.proposed"]
    assert len(seg_seq) >= 8
    assert tags, "the rules tagger found nothing in the demo interview"
    for t in tags:
        assert t.data["source"] == "rules"
        assert t.data["segment_ids"] and all(s in seg_seq for s in t.data["segment_ids"])
        assert t.seq > max(seg_seq[s] for s in t.data["segment_ids"])  # tags come after their segment
        assert all(seg_speaker[s] == "candidate" for s in t.data["segment_ids"])
    assert {t.data["tag"] for t in tags} >= {"requirement_gathering"}
    # The speakers of the demo's channels come through.
    assert set(seg_speaker.values()) == {"interviewer", "candidate"}
