"""The live path, declared in one place as a chain of small stages.

    AudioStage (thread)    source.chunks() -> keeper (non-blocking tee) -> bounded audio queue
    AsrStage (thread)      audio queue -> StreamingTranscriber.feed -> hand-off to the loop
    Pipeline._on_output    (asyncio) partial -> broadcast; final -> persist + broadcast -> TagStage
    TagStage               (asyncio) rules tagger inline (ms) -> persist + broadcast tag.proposed;
                           LLMRefiner.submit (never waits); its emits are persisted + broadcast
    Pipeline._status_loop  (asyncio) periodic live status: ASR lag, audio queue depth, dropped audio

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
from copilot.events import (  # control events (typed, not message text)
    AsrLag,
    AudioClock,
    Event,
    PartialSegment,
    Segment,
    SessionEnded,
    Status,
    Tag,
    TagUpdate,
    Turn,
)
from copilot.session.log import SessionLog
from copilot.session.tag_move import move_to_turn, place_on_turn
from copilot.tagging.base import Tagger
from copilot.tagging.evidence import anchor_evidence

log = logging.getLogger("copilot.session.pipeline")

_END = object()


Transcript = PartialSegment | Segment | Turn


class Transcriber(Protocol):
    def feed(self, chunk: AudioChunk) -> Sequence[Transcript]: ...

    def flush(self) -> Sequence[Transcript]: ...


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
    turns: int = 0
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

    def __init__(
        self,
        source: AudioSource,
        out: "queue.Queue[Any]",
        stats: PipelineStats,
        *,
        keeper: Keeper | None,
        drop_when_full: bool,
        speed: float,
        offset_ms: int = 0,
        levels: LevelWatch | None = None,
    ) -> None:
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

    def __init__(
        self,
        transcriber: Transcriber,
        inp: "queue.Queue[Any]",
        stats: PipelineStats,
        deliver: Callable[[Any], None],
        on_error: Callable[[], None] | None = None,
    ) -> None:
        self.transcriber = transcriber
        self.inp = inp
        self.stats = stats
        self.deliver = deliver
        self.on_error = on_error
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
            if self.on_error is not None:
                self.on_error()  # stop the source: a live device would otherwise feed the drain below forever
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
    """Rules tags at once (inline, ms); the LLM refines in the background when configured.

    Tags belong to turns (docs/turns.md): while a turn is open, a fragment's tag that the turn
    already carries updates that chip instead of adding a second; when the turn settles, it is
    tagged again on its whole text and each standing machine chip is carried onto the turn as a
    `tag.updated` of the same tag id (so a person's verdict stays with it). A chip the whole turn
    does not raise again keeps standing (the fragment's evidence was heard) with its evidence
    widened to the turn's sentence; only the LLM or a person rejects. With turns, the LLM is
    asked once per settled turn.

    The refiner is built here, at construction, from `refiner_factory(self.emit)`: its results
    come back through this stage's `emit`.
    """

    def __init__(
        self,
        session_id: str,
        log_: SessionLog,
        stats: PipelineStats,
        tagger: Tagger | None,
        refiner_factory: Callable[[Emit], Refiner] | None,
        context_turns: int,
        *,
        turns: bool = False,
    ) -> None:
        self.session_id = session_id
        self.log = log_
        self.stats = stats
        self.tagger = tagger
        self.refiner: Refiner | None = refiner_factory(self.emit) if refiner_factory is not None else None
        self.turns = turns
        self.context: deque[Segment] = deque(maxlen=context_turns)
        # Each speaker's latest run of segments (a turn, or its fragments), so the other side's last
        # turn reaches the tagger whole however long the candidate has talked since (as in eval).
        self._runs: dict[str, list[Segment]] = {}
        self._last_speaker: str | None = None
        # Standing machine chips of each channel's open turn: rubric tag -> the Tag as it stands.
        self._chips: dict[int, dict[str, Tag]] = {}
        self._turn_fragments: dict[str, list[str]] = {}  # turn id -> its fragment ids (for the refiner's tags)

    def _run_tagger(self, segment: Segment, context: Sequence[Segment]) -> list[Tag]:
        if self.tagger is None:
            return []
        t = time.perf_counter()
        try:
            return self.tagger.tag(segment, context)
        except Exception as exc:  # a tagger bug must not stop transcription
            log.warning("tagger failed on a segment: %s", type(exc).__name__)
            self.log.record_payload(
                self.session_id,
                Status(level="error", component="tagger", message=f"rules tagger failed: {type(exc).__name__}"),
            )
            return []
        finally:
            self.stats.tag_ms.append((time.perf_counter() - t) * 1000)

    def _context(self, speaker: str) -> tuple[Segment, ...]:
        """The recent segments, led by the other side's whole last turn when it has scrolled out."""
        recent = list(self.context)
        others = [run for sp, run in self._runs.items() if sp != speaker and run]
        if not others:
            return tuple(recent)
        last = max(others, key=lambda run: run[-1].end_ms)
        have = {s.id for s in recent}
        return tuple([s for s in last if s.id not in have] + recent)

    def _remember(self, segment: Segment) -> None:
        self.context.append(segment)
        if segment.speaker != self._last_speaker:
            self._runs[segment.speaker] = []
            self._last_speaker = segment.speaker
        run = self._runs.setdefault(segment.speaker, [])
        run.append(segment)
        del run[:-16]  # a run longer than this is a monologue, its tail is what was proposed

    def on_segment(self, segment: Segment) -> None:
        context = self._context(segment.speaker)
        tags = self._run_tagger(segment, context)
        chips = self._chips.setdefault(segment.channel, {})
        for tag in tags:
            chip = chips.get(tag.tag) if self.turns else None
            if chip is None:
                if self.turns:
                    chips[tag.tag] = tag
                self.log.record(Event.of(self.session_id, tag, type="tag.proposed"))
                self.stats.tags += 1
                continue
            # The open turn already carries this tag: the chip grows with the turn.
            grown = chip.model_copy(
                update={
                    "segment_ids": chip.segment_ids + [s for s in tag.segment_ids if s not in chip.segment_ids],
                    "end_ms": max(chip.end_ms, tag.end_ms),
                    "confidence": max(chip.confidence, tag.confidence),
                }
            )
            chips[tag.tag] = grown
            self.log.record(
                Event.of(
                    self.session_id,
                    TagUpdate(
                        tag_id=chip.id,
                        status="proposed",
                        by=chip.source,
                        segment_ids=grown.segment_ids,
                        end_ms=grown.end_ms,
                        confidence=grown.confidence,
                    ),
                )
            )
        if self.refiner is not None and not self.turns:
            self.refiner.submit(segment, context, tags)
        if not self.turns:
            self._remember(segment)

    def on_turn(self, turn: Turn) -> None:
        """The turn settled: tag its whole text; carry or retract the chips of its fragments."""
        as_segment = turn.as_segment()
        self._turn_fragments[turn.id] = list(turn.segment_ids)
        context = self._context(turn.speaker)
        fragment_ids = set(turn.segment_ids)
        chips = self._chips.get(turn.channel, {})
        mine = {name: chip for name, chip in chips.items() if fragment_ids.intersection(chip.segment_ids)}
        for name in mine:
            del chips[name]
        standing: list[Tag] = []
        for tag in self._run_tagger(as_segment, context):
            chip = mine.pop(tag.tag, None)
            if chip is None:
                new = place_on_turn(tag, turn)
                self.log.record(Event.of(self.session_id, new, type="tag.proposed"))
                self.stats.tags += 1
                standing.append(new)
                continue
            evidence, rationale, confidence = tag.evidence, tag.rationale, tag.confidence
            upd = move_to_turn(
                chip.id, chip.source, turn, evidence=evidence, rationale=rationale, confidence=confidence
            )
            self.log.record(Event.of(self.session_id, upd))
            standing.append(place_on_turn(chip, turn, evidence=evidence, rationale=rationale, confidence=confidence))
        for chip in mine.values():
            # The whole turn did not raise this tag again (the settled text may, say, punctuate
            # a question as a statement); the fragment's evidence still stands, so the chip moves
            # to the turn with its evidence widened to the turn's sentence that holds it.
            evidence = anchor_evidence(turn.text, chip.evidence)
            self.log.record(Event.of(self.session_id, move_to_turn(chip.id, chip.source, turn, evidence=evidence)))
            standing.append(place_on_turn(chip, turn, evidence=evidence))
        if self.refiner is not None:
            self.refiner.submit(as_segment, context, standing)
        self._remember(as_segment)

    async def emit(self, payload: BaseModel) -> None:
        """The refiner's callback: its tags, updates and warnings become log events."""
        self.stats.refiner_emits += 1
        if isinstance(payload, Tag):
            payload = self._on_turn_fragments(payload)
            self.log.record(Event.of(self.session_id, payload, type="tag.proposed"))
        elif isinstance(payload, (TagUpdate, Status)):
            self.log.record(Event.of(self.session_id, payload))
        else:
            log.warning("refiner emitted %s; ignored", type(payload).__name__)

    def _on_turn_fragments(self, tag: Tag) -> Tag:
        """A tag the LLM put on a turn points at the turn's fragments, like the rules' tags."""
        turns = [sid for sid in tag.segment_ids if sid in self._turn_fragments]
        if not turns:
            return tag
        ids = [f for sid in tag.segment_ids for f in self._turn_fragments.get(sid, [sid])]
        return tag.model_copy(update={"segment_ids": ids, "turn_id": turns[0]})


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
        turns: bool = False,
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
        self.audio = AudioStage(
            source,
            self._audio_q,
            self.stats,
            keeper=keeper,
            drop_when_full=live_device,
            speed=speed,
            offset_ms=offset_ms,
            levels=self.levels,
        )
        self.asr = AsrStage(transcriber, self._audio_q, self.stats, self._deliver, on_error=source.close)
        self.tags = TagStage(session_id, log, self.stats, tagger, refiner_factory, context_turns, turns=turns)
        self.refiner = self.tags.refiner
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
        self.log.record_payload(self.session_id, AudioClock(audio_t0=self.stats.audio_t0))

    def _on_output(self, out: Transcript) -> None:
        if isinstance(out, Turn):
            self.stats.turns += 1
            self.log.record(Event.of(self.session_id, out))
            self.tags.on_turn(out)
        elif isinstance(out, Segment):
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
            self.log.broadcast_payload(
                self.session_id,
                AsrLag(
                    asr_lag_ms=s.asr_lag_ms,
                    audio_queue=self._audio_q.qsize(),
                    audio_ms=s.audio_ms,
                    asr_ms=s.asr_ms,
                    dropped_ms=s.dropped_ms,
                    levels_db=self.levels.meter(),
                ),
            )
            # A live channel recording silence is the worst silent failure (a recording can't be fixed).
            for change in self.levels.check() if self.audio.drop_when_full else ():
                self.log.record_payload(
                    self.session_id,
                    Status(
                        level="warning" if change.silent else "info",
                        component="audio",
                        message=change.message(),
                        details={
                            "kind": "silent_channel" if change.silent else "channel_ok",
                            "channel": change.channel,
                            "speaker": change.speaker,
                            "digital": change.digital,
                        },
                    ),
                )
            if s.dropped_chunks > self._reported_drops:
                self._reported_drops = s.dropped_chunks
                self.log.record_payload(
                    self.session_id,
                    Status(
                        level="warning",
                        component="audio",
                        message=f"transcription fell behind: {s.dropped_ms / 1000:.1f} s of audio dropped so far",
                        asr_lag_ms=s.asr_lag_ms,
                        details={"dropped_ms": s.dropped_ms},
                    ),
                )

    async def _finish(self) -> None:
        for stage, name in ((self.audio, "audio"), (self.asr, "asr")):
            if stage.error is not None:
                self.log.record_payload(
                    self.session_id, Status(level="error", component=name, message=f"{name} stopped: {stage.error}")
                )
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
                    self.log.record_payload(
                        self.session_id, Status(component="audio", message="audio kept", details={"path": str(path)})
                    )
            except Exception as exc:
                self.log.record_payload(
                    self.session_id,
                    Status(level="error", component="audio", message=f"could not keep the audio: {exc}"),
                )
        if self.end_session:
            failed = self.audio.error is not None or self.asr.error is not None
            reason = (
                "error" if failed else ("aborted" if self.asr.skip else "stopped" if self._stopped else "completed")
            )
            self.log.record_payload(self.session_id, SessionEnded(reason=reason, duration_ms=self.stats.audio_ms))
