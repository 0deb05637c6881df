"""Audio chunks in, partial and final transcript segments out, per channel.

Each channel has its own VAD, utterance segmenter and agreement buffer, so two channels
(interviewer microphone + call audio, or a stereo file) are transcribed independently and
speaker attribution comes from the channel. Segments come out in commit order across
channels. All times are milliseconds of session audio, word times included.

`StreamingTranscriber.feed` does the model calls itself (synchronously): run it in a worker
thread fed by a bounded queue (CTranslate2 releases the GIL). It never waits on anything
but the model.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence, TypeVar, Union

import numpy as np

from copilot.asr.commit import (
    CommitConfig,
    HallucinationFilter,
    LocalAgreement,
    TimedWord,
    UtteranceEvent,
    UtteranceSegmenter,
    drop_overlap,
    join_words,
    quietest_cut,
    truncate_repetition,
)
from copilot.asr.echo import EchoSuppressor
from copilot.asr.engine import UtteranceResult, timed_words, transcribe_utterance
from copilot.asr.vad import WINDOW_MS, StreamingVad
from copilot.audio.base import SAMPLE_RATE, AudioChunk, AudioSource
from copilot.events import PartialSegment, Segment, Word

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

Output = Union[PartialSegment, Segment]
T_co = TypeVar("T_co", covariant=True)
CONTEXT_CHARS = 200
TAIL_WORDS = 30


@dataclass
class StreamStats:
    """What the session layer shows as ASR health."""

    audio_ms: int = 0  # session audio fed, furthest channel
    decodes: int = 0
    decode_s: float = 0.0  # wall time inside the model
    partials: int = 0
    finals: int = 0
    skipped_partials: int = 0  # hypotheses skipped because the engine was behind
    dropped: int = 0  # utterances judged to be hallucinations


def event_words(words: Sequence[TimedWord]) -> list[Word]:
    """Decoded words as the events carry them: bare text, probability to 3 places."""
    return [
        Word(text=w.text.strip(), start_ms=w.start_ms, end_ms=w.end_ms, probability=round(w.probability, 3))
        for w in words
    ]


def _ms_to_samples(ms: int) -> int:
    return ms * SAMPLE_RATE // 1000


class _Channel:
    """One channel's audio buffer, VAD and commit state."""

    def __init__(self, owner: "StreamingTranscriber", channel: int, speaker: str) -> None:
        self.owner = owner
        self.channel = channel
        self.speaker = speaker
        self.config = owner.config
        self.vad: StreamingVad | None = None
        self.segmenter = UtteranceSegmenter(self.config)
        self.agreement = LocalAgreement(self.config.agreement_holdback_ms)
        self.audio = np.zeros(0, dtype=np.float32)
        self.audio_start_ms = 0  # session time of self.audio[0]
        self.probs: list[tuple[int, float]] = []
        self.open_start_ms = 0  # start of the not-yet-committed part of the current utterance
        self.committed_tail: list[TimedWord] = []  # words this utterance already committed
        self.committed_end_ms = 0
        self.context_words: list[TimedWord] = []  # committed words before the window's start
        self.last_hypothesis_ms = 0
        self.last_partial_text = ""
        self.fed_ms = 0
        self.fed_samples = 0
        self.context = ""  # this channel's recent committed text, given to the decoder
        self.context_end_ms = 0

    @property
    def vad_start_ms(self) -> int:
        return self.vad.start_ms if self.vad else 0

    # -- audio bookkeeping
    def append(self, chunk: AudioChunk) -> np.ndarray:
        """Add a chunk to the buffer; returns the samples that were new (for the VAD)."""
        samples = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
        if self.vad is None:
            self.vad = StreamingVad(start_ms=chunk.start_ms)
            self.audio_start_ms = chunk.start_ms
            self.fed_ms = chunk.start_ms
        gap = _ms_to_samples(chunk.start_ms - self.fed_ms)
        if gap > 0:  # a dropped block: keep the timeline honest with silence
            samples = np.concatenate([np.zeros(gap, dtype=np.float32), samples])
        elif gap < 0:  # overlap with what we have: keep only the new tail
            samples = samples[min(-gap, len(samples)) :]
        self.audio = np.concatenate([self.audio, samples])
        self.fed_samples += len(samples)
        self.fed_ms = self.vad_start_ms + self.fed_samples * 1000 // SAMPLE_RATE
        return samples

    def slice(self, start_ms: int, end_ms: int) -> np.ndarray:
        a = max(0, _ms_to_samples(start_ms - self.audio_start_ms))
        b = max(a, _ms_to_samples(end_ms - self.audio_start_ms))
        return self.audio[a:b]

    def trim(self) -> None:
        """Forget audio nobody can need again (keep the pre-roll while idle)."""
        keep_from = (
            self.open_start_ms
            if self.segmenter.in_speech
            else ((self.vad.processed_ms if self.vad else self.fed_ms) - self.config.pre_roll_ms - WINDOW_MS)
        )
        drop = _ms_to_samples(keep_from - self.audio_start_ms)
        if drop > SAMPLE_RATE:  # trim in >= 1 s steps, not every chunk
            self.audio = self.audio[drop:]
            self.audio_start_ms += drop * 1000 // SAMPLE_RATE
            self.probs = [p for p in self.probs if p[0] + WINDOW_MS >= self.audio_start_ms]

    # -- the policy
    def process(self, chunk: AudioChunk) -> list[Output]:
        new = self.append(chunk)
        out: list[Output] = []
        assert self.vad is not None
        for frame in self.vad.feed(new):
            self.probs.append((frame.start_ms, frame.prob))
            event = self.segmenter.push(frame.start_ms, frame.prob)
            now = frame.start_ms + WINDOW_MS
            if event is not None and event.kind == "start":
                self.open_start_ms = event.start_ms
                self.committed_tail = []
                self.context_words = []
                self.committed_end_ms = 0
                self.agreement.reset()
                self.last_hypothesis_ms = now
                self.last_partial_text = ""
            elif event is not None and event.kind == "end":
                out.extend(self.finish(event))
            elif self.segmenter.in_speech:
                out.extend(self.maybe_hypothesis(now))
        self.trim()
        return out

    def maybe_hypothesis(self, now: int) -> list[Output]:
        c = self.config
        open_ms = now - self.open_start_ms
        if now - self.last_hypothesis_ms < c.partial_interval_ms or open_ms < 1000:
            return []
        forced = open_ms >= c.max_utterance_ms
        needs_agreement = now - self.segmenter.start_ms >= c.agreement_after_ms - c.partial_interval_ms
        if not (self.owner.emit_partials or needs_agreement or forced):
            return []
        if not forced and not needs_agreement and self.owner.behind():
            self.owner.stats.skipped_partials += 1
            return []
        self.last_hypothesis_ms = now
        # Every hypothesis decodes the utterance from its start (up to `max_utterance_ms`),
        # so the words it commits were heard with their whole sentence as context.
        words = self.uncommitted(
            self.owner.decode(
                self.slice(self.open_start_ms, now),
                self.open_start_ms,
                context=self.context_for(self.open_start_ms),
                final=needs_agreement or forced,
            )[0]
        )
        out: list[Output] = []
        if forced:
            committed = [w for w in words if w.end_ms <= now - c.agreement_holdback_ms] or words[:-1] or words
            self.agreement.previous = words[len(committed) :]
        elif now - self.segmenter.start_ms >= c.agreement_after_ms:
            young = now - self.segmenter.start_ms < c.agreement_any_after_ms
            committed = self.agreement.insert(words, now, clause_only=young)
        else:
            self.agreement.previous = list(words)
            committed = []
        rest = words[len(committed) :]
        if committed:
            out.append(self.owner.make_segment(self, committed))
            self.committed_tail = (self.committed_tail + committed)[-TAIL_WORDS:]
            self.committed_end_ms = committed[-1].end_ms
        slide = now - self.open_start_ms >= c.window_ms and self.committed_end_ms > self.open_start_ms + 1000
        if forced or slide:
            # The window is long (each hypothesis re-decodes it) or full: restart it at a real
            # pause inside the audio already committed (the quietest VAD window of its last few
            # seconds), never at a word timestamp, which may fall inside a word. Words before
            # the cut become decoder context; committed words after it are filtered out of
            # later hypotheses by time.
            hi = self.committed_end_ms if self.committed_end_ms > self.open_start_ms else now - c.agreement_holdback_ms
            lo = max(self.open_start_ms + 1000, hi - 3000)
            cut = quietest_cut(self.probs, lo, max(lo, hi))
            self.context_words = [w for w in self.committed_tail if w.end_ms <= cut]
            self.open_start_ms = cut
        if self.owner.emit_partials and rest:
            text = join_words(rest)
            if text != self.last_partial_text:
                self.last_partial_text = text
                self.owner.stats.partials += 1
                out.append(
                    PartialSegment(
                        speaker=self.speaker,
                        channel=self.channel,
                        start_ms=rest[0].start_ms,
                        end_ms=rest[-1].end_ms,
                        text=text,
                    )
                )
        return out

    def uncommitted(self, words: list[TimedWord]) -> list[TimedWord]:
        """The part of a hypothesis after what this utterance already committed."""
        if self.committed_end_ms > self.open_start_ms:
            words = [w for w in words if (w.start_ms + w.end_ms) // 2 >= self.committed_end_ms]
        return truncate_repetition(drop_overlap(self.committed_tail, words))

    def finish(self, event: UtteranceEvent) -> list[Output]:
        c = self.config
        self.last_partial_text = ""
        self.agreement.reset()
        if event.speech_ms < c.min_speech_ms or event.end_ms - self.open_start_ms < 200:
            return []
        raw, result = self.owner.decode(
            self.slice(self.open_start_ms, event.end_ms),
            self.open_start_ms,
            context=self.context_for(self.open_start_ms),
        )
        words = self.uncommitted(raw)
        text = join_words(words)
        if not self.owner.hallucination_filter.keep(
            text,
            avg_logprob=result.avg_logprob,
            no_speech_prob=result.no_speech_prob,
            speech_ms=event.speech_ms,
            mean_prob=event.mean_prob,
        ):
            if text:
                self.owner.stats.dropped += 1
            return []
        return [self.owner.make_segment(self, words)]

    def context_for(self, start_ms: int) -> str | None:
        cfg = self.owner
        if self.context_words:
            # The same utterance, its window moved on: what it said before the cut.
            return join_words(self.context_words)
        if not cfg.use_context or not self.context:
            return None
        if start_ms - self.context_end_ms > cfg.context_max_gap_ms:
            return None  # a new turn after a long pause: old context would only bias it
        return self.context

    def remember(self, segment: Segment) -> None:
        self.context = (self.context + " " + segment.text).strip()[-CONTEXT_CHARS:]
        self.context_end_ms = segment.end_ms

    def flush(self) -> list[Output]:
        event = self.segmenter.flush()
        return self.finish(event) if event is not None else []


class StreamingTranscriber:
    """Feed `AudioChunk`s of any size; get `PartialSegment`s and final `Segment`s back.

    `speakers[i]` names channel i. `emit_partials=False` skips hypotheses that only serve
    the live display (long turns still get them, for agreement). `realtime=True` tells the
    engine the audio arrives at wall-clock pace, so it can skip partials while it is behind
    (`lag_ms`) and never let a partial delay a final.
    """

    def __init__(
        self,
        model: "WhisperModel",
        speakers: Sequence[str] = ("interviewer", "candidate"),
        *,
        config: CommitConfig | None = None,
        emit_partials: bool = True,
        realtime: bool = False,
        max_partial_lag_ms: int = 400,
        hallucination_filter: HallucinationFilter | None = None,
        pad_s: float | None = 1.0,
        beam_size: int = 1,
        partial_beam_size: int = 1,
        language: str | None = None,
        use_context: bool = False,
        context_max_gap_ms: int = 20_000,
        echo_gate: bool = True,
    ) -> None:
        self.model = model
        self.speakers = list(speakers)
        self.config = config or CommitConfig()
        self.emit_partials = emit_partials
        self.realtime = realtime
        self.max_partial_lag_ms = max_partial_lag_ms
        self.hallucination_filter = hallucination_filter or HallucinationFilter()
        self.pad_s = pad_s
        self.beam_size = beam_size
        self.partial_beam_size = partial_beam_size
        self.language = language
        self.use_context = use_context
        self.context_max_gap_ms = context_max_gap_ms
        self.stats = StreamStats()
        # Two channels: the other channel's leak (speakers into the mic) is silenced before the VAD.
        self.echo = EchoSuppressor() if echo_gate and len(self.speakers) == 2 else None
        self.on_audio: Callable[[AudioChunk], None] | None = None
        self._channels: dict[int, _Channel] = {}
        self._lock = threading.Lock()
        self._wall0: float | None = None
        self._audio0_ms = 0

    # -- public
    @property
    def last_audio_ms(self) -> int:
        """Session time up to which audio has been fed (furthest channel)."""
        return self.stats.audio_ms

    @property
    def lag_ms(self) -> int:
        """How far processing trails the wall clock (meaningful when `realtime`)."""
        if self._wall0 is None:
            return 0
        wall_ms = (time.monotonic() - self._wall0) * 1000
        return max(0, int(wall_ms - (self.stats.audio_ms - self._audio0_ms)))

    def feed(self, chunk: AudioChunk) -> list[Output]:
        if self.echo is not None:
            with self._lock:
                gated = self.echo.push(chunk)
            return [o for c in gated for o in self._feed(c)]
        return self._feed(chunk)

    def _feed(self, chunk: AudioChunk) -> list[Output]:
        if self.on_audio is not None:
            self.on_audio(chunk)  # what the VAD and the model hear (gated), e.g. for the turn layer
        with self._lock:
            if self._wall0 is None:
                self._wall0 = time.monotonic()
                self._audio0_ms = chunk.start_ms
            channel = self._channel(chunk.channel, chunk.speaker)
            self.stats.audio_ms = max(self.stats.audio_ms, chunk.end_ms)
            return channel.process(chunk)

    def channel_states(self) -> list[tuple[int, bool, int]]:
        """(channel, in speech, ms of its audio the VAD has read) per channel: the turn layer's clock."""
        return [
            (i, ch.segmenter.in_speech, ch.vad.processed_ms if ch.vad else ch.fed_ms)
            for i, ch in sorted(self._channels.items())
        ]

    def flush(self) -> list[Output]:
        """End of stream: commit whatever each channel still holds."""
        with self._lock:
            tail = self.echo.flush() if self.echo is not None else []
        out: list[Output] = [o for c in tail for o in self._feed(c)]
        with self._lock:
            for ch in sorted(self._channels):
                out.extend(self._channels[ch].flush())
            return out

    # -- used by channels
    def behind(self) -> bool:
        return self.realtime and self.lag_ms > self.max_partial_lag_ms

    def decode(
        self,
        audio: np.ndarray,
        offset_ms: int,
        *,
        context: str | None = None,
        final: bool = True,
    ) -> tuple[list[TimedWord], UtteranceResult]:
        t0 = time.perf_counter()
        beam = self.beam_size if final else self.partial_beam_size
        result = transcribe_utterance(
            self.model, audio, pad_s=self.pad_s, beam_size=beam, language=self.language, previous_text=context
        )
        self.stats.decodes += 1
        self.stats.decode_s += time.perf_counter() - t0
        return timed_words(result, offset_ms, len(audio) * 1000 // SAMPLE_RATE), result

    def make_segment(self, channel: _Channel, words: Sequence[TimedWord]) -> Segment:
        self.stats.finals += 1
        segment = Segment(
            speaker=channel.speaker,
            channel=channel.channel,
            start_ms=words[0].start_ms,
            end_ms=max(w.end_ms for w in words),
            text=join_words(words),
            words=event_words(words),
        )
        channel.remember(segment)
        return segment

    def _channel(self, index: int, speaker: str | None) -> _Channel:
        ch = self._channels.get(index)
        if ch is None:
            # The transcriber's own speaker names win over the chunk's label.
            name = self.speakers[index] if index < len(self.speakers) else speaker or f"speaker{index}"
            ch = self._channels[index] = _Channel(self, index, name)
        return ch


class _Feedable(Protocol[T_co]):
    def feed(self, chunk: AudioChunk) -> Sequence[T_co]: ...

    def flush(self) -> Sequence[T_co]: ...


def source_speakers(source: AudioSource, kwargs: dict[str, Any]) -> list[str]:
    """The `speakers` keyword (taken out of `kwargs`), else the source's own names."""
    return kwargs.pop("speakers", None) or list(getattr(source, "speakers", None) or ["speaker"])


def drain(source: AudioSource, transcriber: _Feedable[T_co]) -> Iterator[T_co]:
    """Feed a whole source through a transcriber, yield what it gives, and close the source."""
    try:
        for chunk in source.chunks():
            yield from transcriber.feed(chunk)
        yield from transcriber.flush()
    finally:
        source.close()


def transcribe_stream(source: AudioSource, model: "WhisperModel", **kwargs) -> Iterator[Output]:
    """Transcribe a whole source, yielding partials and finals as they commit."""
    yield from drain(source, StreamingTranscriber(model, source_speakers(source, kwargs), **kwargs))
