"""The live path, declared in one place as a chain of small stages.

    AudioStage (thread)  source.chunks() -> keeper (non-blocking tee) -> bounded audio queue
    AsrStage (thread)    audio queue -> StreamingTranscriber.feed -> hand-off to the loop
    TranscriptStage      (asyncio) partial -> broadcast; final -> persist + broadcast -> TagStage
    TagStage             (asyncio) rules tagger inline (ms) -> persist + broadcast tag.proposed;
                         LLMRefiner.submit (never waits); its emits are persisted + broadcast
    StatusStage          (asyncio) periodic live status: ASR lag, audio queue depth, dropped audio

Why threads for the first two: the audio source blocks (device callback, file pacing) and the
model call holds the CPU for hundreds of ms (CTranslate2 releases the GIL). Everything after the
ASR runs on the event loop, where persisting (< 1 ms, WAL) and broadcasting (queue puts) are cheap.
Nothing here waits on a slow consumer: the bus drops slow clients, the refiner runs its own tasks,
the audio keeper writes from its own thread.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Iterator, Protocol, Sequence

from pydantic import BaseModel

from copilot.audio.base import AudioChunk, AudioSource
from copilot.audio.levels import LevelWatch
from copilot.events import Event, PartialSegment, Segment, SessionEnded, Status, Tag, TagUpdate
from copilot.session.log import SessionLog
from copilot.tagging.base import Tagger

log = logging.getLogger("copilot.session.pipeline")

_END = object()


class Transcriber(Protocol):
    def feed(self, chunk: AudioChunk) -> list[PartialSegment | Segment]: ...

    def flush(self) -> list[PartialSegment | Segment]: ...


class Refiner(Protocol):
    def submit(self, segment: Segment, context: Sequence[Segment] = (), rules_tags: Sequence[Tag] = ()) -> None: ...

    async def aclose(self, timeout_s: float = 5.0) -> None: ...

    def status(self) -> Status: ...


class Keeper(Protocol):
    def write(self, chunk: AudioChunk) -> None: ...

    def finish(self) -> Any: ...

    def abort(self) -> None: ...


Emit = Callable[[BaseModel], Awaitable[None]]


@dataclass
class PipelineStats:
    audio_ms: int = 0  # furthest audio produced by the source
    asr_ms: int = 0  # furthest audio the transcriber has consumed
    chunks: int = 0
    dropped_chunks: int = 0
    dropped_ms: int = 0
    partials: int = 0
    finals: int = 0
    tags: int = 0
    refiner_emits: int = 0
    tag_ms: list[float] = field(default_factory=list)  # rules tagger time per segment
    audio_t0: float | None = None  # wall time at which session audio 0 ms "happened"

    @property
    def asr_lag_ms(self) -> int:
        return max(0, self.audio_ms - self.asr_ms)


class AudioStage:
    """Pulls chunks from the source in a thread and hands them to the ASR queue.

    `drop_when_full`: a live device cannot wait, so when the ASR falls so far behind that the
    queue is full, chunks are dropped and counted (reported as a warning). A file replay blocks
    instead (its pacing just slips).
    """

    def __init__(self, source: AudioSource, out: "queue.Queue[Any]", stats: PipelineStats, *,
                 keeper: Keeper | None, drop_when_full: bool, speed: float, offset_ms: int = 0,
                 levels: LevelWatch | None = None) -> None:
        self.source = source
        self.levels = levels
        self.out = out
        self.stats = stats
        self.keeper = keeper
        self.drop_when_full = drop_when_full
        self.speed = speed
        self.offset_ms = offset_ms
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="copilot-audio", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _chunks(self) -> Iterator[AudioChunk]:
        for chunk in self.source.chunks():
            if self.offset_ms:
                chunk = AudioChunk(chunk.samples, chunk.channel, chunk.speaker, chunk.start_ms + self.offset_ms)
            yield chunk

    def _run(self) -> None:
        try:
            for chunk in self._chunks():
                now = time.time()
                if self.stats.audio_t0 is None:
                    self.stats.audio_t0 = now - (chunk.end_ms - self.offset_ms) / 1000 / self.speed
                self.stats.audio_ms = max(self.stats.audio_ms, chunk.end_ms)
                self.stats.chunks += 1
                if self.keeper is not None:
                    self.keeper.write(chunk)
                if self.levels is not None:
                    self.levels.observe(chunk)
                if self.drop_when_full:
                    try:
                        self.out.put_nowait(chunk)
                    except queue.Full:
                        self.stats.dropped_chunks += 1
                        self.stats.dropped_ms += chunk.duration_ms
                else:
                    self.out.put(chunk)
        except BaseException as exc:  # reported by the pipeline, which ends the session cleanly
            self.error = exc
        finally:
            self.out.put(_END)


class AsrStage:
    """Feeds the transcriber in a worker thread; results hop onto the event loop."""

    def __init__(self, transcriber: Transcriber, inp: "queue.Queue[Any]", stats: PipelineStats,
                 deliver: Callable[[Any], None]) -> None:
        self.transcriber = transcriber
        self.inp = inp
        self.stats = stats
        self.deliver = deliver
        self.error: BaseException | None = None
        self.skip = False  # set by Pipeline.abort: discard queued audio instead of transcribing it
        self.thread = threading.Thread(target=self._run, name="copilot-asr", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        try:
            while True:
                item = self.inp.get()
                if item is _END:
                    out = self.transcriber.flush()
                    if out:
                        self.deliver(out)
                    break
                if self.skip:
                    continue
                out = self.transcriber.feed(item)
                self.stats.asr_ms = max(self.stats.asr_ms, item.end_ms)
                if out:
                    self.deliver(out)
        except BaseException as exc:
            self.error = exc
            # Drain so a blocked AudioStage can finish.
            while True:
                try:
                    if self.inp.get(timeout=0.5) is _END:
                        break
                except queue.Empty:
                    break
        finally:
            self.deliver(_END)


class TagStage:
    """Rules tags at once (inline, ms); the LLM refines in the background when configured."""

    def __init__(self, session_id: str, log_: SessionLog, stats: PipelineStats, tagger: Tagger | None,
                 refiner: Refiner | None, context_turns: int) -> None:
        self.session_id = session_id
        self.log = log_
        self.stats = stats
        self.tagger = tagger
        self.refiner = refiner
        self.context: deque[Segment] = deque(maxlen=context_turns)

    def on_segment(self, segment: Segment) -> None:
        context = tuple(self.context)
        tags: list[Tag] = []
        if self.tagger is not None:
            t = time.perf_counter()
            try:
                tags = self.tagger.tag(segment, context)
            except Exception as exc:  # a tagger bug must not stop transcription
                log.warning("tagger failed on a segment: %s", type(exc).__name__)
                self.log.record_payload(self.session_id, Status(
                    level="error", component="tagger", message=f"rules tagger failed: {type(exc).__name__}"))
            self.stats.tag_ms.append((time.perf_counter() - t) * 1000)
            for tag in tags:
                self.log.record(Event.of(self.session_id, tag, type="tag.proposed"))
                self.stats.tags += 1
        if self.refiner is not None:
            self.refiner.submit(segment, context, tags)
        self.context.append(segment)

    async def emit(self, payload: BaseModel) -> None:
        """The refiner's callback: its tags, updates and warnings become log events."""
        self.stats.refiner_emits += 1
        if isinstance(payload, Tag):
            self.log.record(Event.of(self.session_id, payload, type="tag.proposed"))
        elif isinstance(payload, (TagUpdate, Status)):
            self.log.record(Event.of(self.session_id, payload))
        else:
            log.warning("refiner emitted %s; ignored", type(payload).__name__)


class Pipeline:
    """One session's live path. `await run()` returns when the source ends or `stop()` is called.

    The session is ended (a `session.ended` event) when the run finishes, unless `end_session`
    is False.
    """

    def __init__(
        self,
        *,
        session_id: str,
        log: SessionLog,
        source: AudioSource,
        transcriber: Transcriber,
        tagger: Tagger | None = None,
        refiner_factory: Callable[[Emit], Refiner] | None = None,
        keeper: Keeper | None = None,
        live_device: bool = False,
        speed: float = 1.0,
        offset_ms: int = 0,
        audio_queue_chunks: int = 600,
        status_interval_s: float = 1.0,
        context_turns: int = 8,
        end_session: bool = True,
    ) -> None:
        self.session_id = session_id
        self.log = log
        self.source = source
        self.keeper = keeper
        self.stats = PipelineStats()
        self.status_interval_s = status_interval_s
        self.end_session = end_session
        self._loop: asyncio.AbstractEventLoop | None = None
        self._results: asyncio.Queue[Any] | None = None
        self._audio_q: queue.Queue[Any] = queue.Queue(maxsize=audio_queue_chunks)
        self.levels = LevelWatch(list(source.speakers))
        self.audio = AudioStage(source, self._audio_q, self.stats, keeper=keeper,
                                drop_when_full=live_device, speed=speed, offset_ms=offset_ms, levels=self.levels)
        self.asr = AsrStage(transcriber, self._audio_q, self.stats, self._deliver)
        self.tags = TagStage(session_id, log, self.stats, tagger, None, context_turns)
        self.refiner: Refiner | None = None
        self._refiner_factory = refiner_factory
        self._stopped = False
        self._reported_drops = 0
        self._clock_sent = False

    # -- the hand-off from the ASR thread --------------------------------------------------
    def _deliver(self, item: Any) -> None:
        loop, results = self._loop, self._results
        if loop is not None and results is not None and not loop.is_closed():
            loop.call_soon_threadsafe(results.put_nowait, item)

    def stop(self) -> None:
        """Stop capturing; what was heard is still transcribed, then the session ends."""
        self._stopped = True
        self.source.close()

    def abort(self) -> None:
        """Stop now: audio still queued is discarded, not transcribed (a second Ctrl-C)."""
        self.asr.skip = True
        self.stop()

    async def run(self) -> PipelineStats:
        self._loop = asyncio.get_running_loop()
        self.log.bus.bind(self._loop)
        self._results = asyncio.Queue()
        if self._refiner_factory is not None:
            self.refiner = self._refiner_factory(self.tags.emit)
            self.tags.refiner = self.refiner
        self.asr.start()
        self.audio.start()
        status_task = asyncio.create_task(self._status_loop())
        try:
            while True:
                item = await self._results.get()
                self._maybe_send_clock()
                if item is _END:
                    break
                for out in item:
                    self._on_output(out)
        finally:
            status_task.cancel()
            try:
                await status_task
            except asyncio.CancelledError:
                pass
        await self._finish()
        return self.stats

    def _maybe_send_clock(self) -> None:
        if self._clock_sent or self.stats.audio_t0 is None:
            return
        self._clock_sent = True
        # The wall time of session audio 0 ms: lets a client (the pipeline bench) turn segment
        # times into "when was this said", to measure end-of-utterance -> segment latency.
        self.log.record_payload(self.session_id, Status(
            component="audio", message="audio started", details={"audio_t0": self.stats.audio_t0}))

    def _on_output(self, out: PartialSegment | Segment) -> None:
        if isinstance(out, Segment):
            self.stats.finals += 1
            self.log.record(Event.of(self.session_id, out))
            self.tags.on_segment(out)
        elif isinstance(out, PartialSegment):
            self.stats.partials += 1
            self.log.broadcast(Event.of(self.session_id, out))

    async def _status_loop(self) -> None:
        while True:
            await asyncio.sleep(self.status_interval_s)
            self._maybe_send_clock()
            s = self.stats
            # Live-only (seq null): a lag reading is stale a second later; warnings are logged.
            self.log.broadcast_payload(self.session_id, Status(
                component="asr", message="lag", asr_lag_ms=s.asr_lag_ms,
                details={"audio_queue": self._audio_q.qsize(), "audio_ms": s.audio_ms, "asr_ms": s.asr_ms,
                         "dropped_ms": s.dropped_ms, "levels_db": self.levels.meter()}))
            # A live channel recording silence is the worst silent failure (a recording can't be fixed).
            for change in (self.levels.check() if self.audio.drop_when_full else ()):
                self.log.record_payload(self.session_id, Status(
                    level="warning" if change.silent else "info", component="audio", message=change.message(),
                    details={"kind": "silent_channel" if change.silent else "channel_ok",
                             "channel": change.channel, "speaker": change.speaker, "digital": change.digital}))
            if s.dropped_chunks > self._reported_drops:
                self._reported_drops = s.dropped_chunks
                self.log.record_payload(self.session_id, Status(
                    level="warning", component="audio",
                    message=f"transcription fell behind: {s.dropped_ms / 1000:.1f} s of audio dropped so far",
                    asr_lag_ms=s.asr_lag_ms, details={"dropped_ms": s.dropped_ms}))

    async def _finish(self) -> None:
        for stage, name in ((self.audio, "audio"), (self.asr, "asr")):
            if stage.error is not None:
                self.log.record_payload(self.session_id, Status(
                    level="error", component=name, message=f"{name} stopped: {stage.error}"))
        if self.refiner is not None:
            try:
                await self.refiner.aclose()
                # The LLM's bill for this session (calls, tokens, cost), kept in the log for review.
                self.log.record_payload(self.session_id, self.refiner.status())
            except Exception as exc:
                log.warning("refiner close failed: %s", type(exc).__name__)
        if self.keeper is not None:
            try:
                path = await asyncio.to_thread(self.keeper.finish)
                if path is not None:
                    self.log.record_payload(self.session_id, Status(
                        component="audio", message="audio kept", details={"path": str(path)}))
            except Exception as exc:
                self.log.record_payload(self.session_id, Status(
                    level="error", component="audio", message=f"could not keep the audio: {exc}"))
        if self.end_session:
            failed = self.audio.error is not None or self.asr.error is not None
            reason = "error" if failed else (
                "aborted" if self.asr.skip else "stopped" if self._stopped else "completed")
            self.log.record_payload(self.session_id, SessionEnded(reason=reason, duration_ms=self.stats.audio_ms))
