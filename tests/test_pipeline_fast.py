"""The live path's control flow in milliseconds: a scripted source and transcriber, a real store.

`test_pipeline.py` runs the real model on paced audio; this file covers what that cannot reach
quickly or at all: abort, stop, dropping audio when the ASR falls behind on a live device, and a
failing stage (source, transcriber, tagger) ending the session with the right status and reason.
"""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Iterator, Sequence

import numpy as np
import pytest

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.events import Event, PartialSegment, Segment, SessionStarted, Tag
from copilot.session.bus import Bus
from copilot.session.log import SessionLog
from copilot.session.pipeline import Pipeline
from copilot.session.store import SessionStore

CHUNK_MS = 100


class ScriptedSource:
    """`AudioSource`: `n` silent 100 ms chunks (None = until closed), then optionally an error."""

    def __init__(self, n: int | None, *, raise_after: BaseException | None = None, pace_s: float = 0.0) -> None:
        self.speakers = ["interviewer"]
        self.n = n
        self.raise_after = raise_after
        self.pace_s = pace_s
        self.produced = 0
        self.exhausted = threading.Event()
        self._closed = threading.Event()

    def chunks(self) -> Iterator[AudioChunk]:
        i = 0
        while (self.n is None or i < self.n) and not self._closed.is_set():
            if self.pace_s and self._closed.wait(self.pace_s):
                break
            yield AudioChunk(np.zeros(SAMPLE_RATE * CHUNK_MS // 1000, np.float32), 0, "interviewer", i * CHUNK_MS)
            i += 1
            self.produced = i
        self.exhausted.set()
        if self.raise_after is not None and not self._closed.is_set():
            raise self.raise_after

    def close(self) -> None:
        self._closed.set()


class FakeTranscriber:
    """`Transcriber`: a partial per chunk, a final segment every `every` chunks, the rest at flush.

    `gate`: feed waits on it (an ASR that has fallen behind); `fail_at`: feed raises on that chunk.
    """

    def __init__(
        self, every: int = 5, *, gate: threading.Event | None = None, fail_at: int | None = None, delay_s: float = 0.0
    ) -> None:
        self.every = every
        self.gate = gate
        self.fail_at = fail_at
        self.delay_s = delay_s
        self.fed = 0
        self.flushed = False
        self._pending: list[AudioChunk] = []

    def _segment(self) -> Segment:
        first, last = self._pending[0], self._pending[-1]
        self._pending = []
        return Segment(
            speaker=first.speaker,
            channel=first.channel,
            start_ms=first.start_ms,
            end_ms=last.end_ms,
            text=f"words from {first.start_ms} to {last.end_ms}",
        )

    def feed(self, chunk: AudioChunk) -> list[PartialSegment | Segment]:
        if self.gate is not None:
            self.gate.wait()
        if self.delay_s:
            time.sleep(self.delay_s)
        self.fed += 1
        if self.fail_at is not None and self.fed == self.fail_at:
            raise RuntimeError("decoder crashed")
        self._pending.append(chunk)
        partial = PartialSegment(
            speaker=chunk.speaker, start_ms=self._pending[0].start_ms, end_ms=chunk.end_ms, text="..."
        )
        if len(self._pending) >= self.every:
            return [partial, self._segment()]
        return [partial]

    def flush(self) -> list[PartialSegment | Segment]:
        self.flushed = True
        return [self._segment()] if self._pending else []


class FakeTagger:
    """`Tagger`: one tag per segment; raises on the segments whose index is in `fail_on`."""

    name = "rules"

    def __init__(self, fail_on: Sequence[int] = ()) -> None:
        self.fail_on = set(fail_on)
        self.calls = 0

    def tag(self, segment: Segment, context: Sequence[Segment] = ()) -> list[Tag]:
        self.calls += 1
        if self.calls - 1 in self.fail_on:
            raise ValueError("bad cue table")
        return [
            Tag(
                tag="requirement_gathering",
                segment_ids=[segment.id],
                start_ms=segment.start_ms,
                end_ms=segment.end_ms,
                speaker=segment.speaker,
                evidence=segment.text,
            )
        ]


@pytest.fixture
def store(tmp_path):
    s = SessionStore(tmp_path / "data")
    yield s
    s.close()


def run_pipeline(
    store: SessionStore, source, transcriber, *, tagger=None, during=None, timeout_s: float = 10, **kwargs
) -> tuple[list[Event], Pipeline]:
    """Run one session to its end; `during(pipeline)` runs alongside it. Fails if it hangs."""
    sid = store.create_session(SessionStarted(title="fast", mode="replay", speakers=source.speakers))
    pipeline = Pipeline(
        session_id=sid,
        log=SessionLog(store, Bus()),
        source=source,
        transcriber=transcriber,
        tagger=tagger,
        status_interval_s=0.01,
        **kwargs,
    )

    async def main() -> None:
        task = asyncio.create_task(pipeline.run())
        if during is not None:
            await during(pipeline)
        await asyncio.wait_for(task, timeout_s)

    t = time.monotonic()
    asyncio.run(main())
    assert time.monotonic() - t < timeout_s
    return store.events(sid), pipeline


def ended(events: list[Event]) -> dict:
    assert events[-1].type == "session.ended", [e.type for e in events]
    assert sum(e.type == "session.ended" for e in events) == 1
    return events[-1].data


def errors(events: list[Event]) -> list[dict]:
    return [e.data for e in events if e.type == "status" and e.data["level"] == "error"]


async def until(predicate, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.002)


def test_a_whole_source_is_transcribed_tagged_and_completed(store):
    source, asr, tagger = ScriptedSource(12), FakeTranscriber(every=5), FakeTagger()
    events, pipe = run_pipeline(store, source, asr, tagger=tagger)
    segs = [e.data for e in events if e.type == "segment.final"]
    assert [(s["start_ms"], s["end_ms"]) for s in segs] == [(0, 500), (500, 1000), (1000, 1200)]  # last one: flush
    tags = [e for e in events if e.type == "tag.proposed"]
    assert [t.data["segment_ids"] for t in tags] == [[s["id"]] for s in segs]
    assert all(e.type != "segment.partial" for e in events)  # partials are broadcast, never stored
    assert ended(events) == {"reason": "completed", "duration_ms": 1200}
    assert errors(events) == []
    assert (pipe.stats.chunks, pipe.stats.finals, pipe.stats.partials, pipe.stats.tags) == (12, 3, 12, 3)


def test_stop_transcribes_what_was_heard_then_ends_stopped(store):
    source = ScriptedSource(None, pace_s=0.001)
    asr = FakeTranscriber(every=5)

    async def stop_after_some(pipe: Pipeline) -> None:
        await until(lambda: pipe.stats.finals >= 2)
        pipe.stop()

    events, pipe = run_pipeline(store, source, asr, during=stop_after_some)
    assert ended(events)["reason"] == "stopped"
    assert asr.flushed and asr.fed == source.produced  # nothing heard was discarded
    assert pipe.stats.asr_ms == pipe.stats.audio_ms == ended(events)["duration_ms"]


def test_abort_discards_queued_audio_and_ends_aborted(store):
    source = ScriptedSource(400)  # unpaced: the queue fills far ahead of a slow ASR
    asr = FakeTranscriber(every=5, delay_s=0.005)

    async def abort_after_one_segment(pipe: Pipeline) -> None:
        await until(lambda: pipe.stats.finals >= 1)
        pipe.abort()

    events, pipe = run_pipeline(store, source, asr, during=abort_after_one_segment)
    assert ended(events)["reason"] == "aborted"
    assert asr.fed < source.produced  # queued chunks were dropped, not transcribed
    assert pipe.stats.asr_ms < pipe.stats.audio_ms
    assert errors(events) == []


def test_live_device_drops_audio_when_the_asr_falls_behind_and_says_so(store):
    gate = threading.Event()
    source, asr = ScriptedSource(50), FakeTranscriber(every=5, gate=gate)

    async def release_when_the_source_is_done(pipe: Pipeline) -> None:
        await until(source.exhausted.is_set)
        await until(
            lambda: any(e.type == "status" and e.data["level"] == "warning" for e in store.events(pipe.session_id))
        )
        gate.set()

    events, pipe = run_pipeline(
        store, source, asr, during=release_when_the_source_is_done, live_device=True, audio_queue_chunks=4
    )
    s = pipe.stats
    assert s.chunks == 50 and s.dropped_chunks > 0 and s.dropped_ms == s.dropped_chunks * CHUNK_MS
    assert asr.fed == 50 - s.dropped_chunks  # every chunk was either transcribed or counted as dropped
    (warning,) = [e.data for e in events if e.type == "status" and e.data["level"] == "warning"][:1]
    assert warning["component"] == "audio" and "fell behind" in warning["message"]
    assert 0 < warning["details"]["dropped_ms"] <= s.dropped_ms
    assert ended(events)["reason"] == "completed"


def test_a_replay_waits_for_the_asr_instead_of_dropping(store):
    gate = threading.Event()
    source, asr = ScriptedSource(50), FakeTranscriber(every=5, gate=gate)

    async def release_later(pipe: Pipeline) -> None:
        await asyncio.sleep(0.05)
        assert source.produced < 50  # the source is blocked by the full queue, not dropping
        gate.set()

    events, pipe = run_pipeline(store, source, asr, during=release_later, live_device=False, audio_queue_chunks=4)
    assert pipe.stats.dropped_chunks == 0 and asr.fed == 50
    assert ended(events) == {"reason": "completed", "duration_ms": 5000}


def test_a_failing_audio_source_ends_the_session_with_an_error(store):
    source, asr = ScriptedSource(7, raise_after=OSError("device unplugged")), FakeTranscriber(every=5)
    events, pipe = run_pipeline(store, source, asr, tagger=FakeTagger())
    assert [e["component"] for e in errors(events)] == ["audio"]
    assert "device unplugged" in errors(events)[0]["message"]
    # What was heard before the failure is kept: one segment at 5 chunks, the rest at flush.
    assert [e.data["end_ms"] for e in events if e.type == "segment.final"] == [500, 700]
    assert ended(events) == {"reason": "error", "duration_ms": 700}


@pytest.mark.parametrize("live_device", [False, True])
def test_a_failing_transcriber_ends_the_session_with_an_error(store, live_device):
    # An endless live source: the session must still end (the source is closed), not hang.
    source = ScriptedSource(None if live_device else 300, pace_s=0.001 if live_device else 0.0)
    asr = FakeTranscriber(every=5, fail_at=8)
    events, pipe = run_pipeline(store, source, asr, tagger=FakeTagger(), live_device=live_device, audio_queue_chunks=4)
    (err,) = errors(events)
    assert err["component"] == "asr" and "decoder crashed" in err["message"]
    assert [e.data["end_ms"] for e in events if e.type == "segment.final"] == [500]  # before the crash
    assert ended(events)["reason"] == "error"


def test_a_failing_tagger_is_reported_and_transcription_goes_on(store):
    source, asr, tagger = ScriptedSource(20), FakeTranscriber(every=5), FakeTagger(fail_on=[1])
    events, pipe = run_pipeline(store, source, asr, tagger=tagger)
    (err,) = errors(events)
    assert err["component"] == "tagger" and "ValueError" in err["message"]
    segs = [e.data["id"] for e in events if e.type == "segment.final"]
    tagged = [e.data["segment_ids"][0] for e in events if e.type == "tag.proposed"]
    assert len(segs) == 4 and tagged == [segs[0], segs[2], segs[3]]
    assert ended(events) == {"reason": "completed", "duration_ms": 2000}
