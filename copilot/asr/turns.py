"""The turn layer: fragments settle into turns, and each turn is decoded again as a whole.

Fragments (`Segment`) are cut at short pauses so the panel feels live; every reader after that
(tags, evidence, review, calibration) wants whole turns, and Whisper transcribes a turn better
in one pass than in pieces (docs/turns.md has the figures). Three small parts:

- `TurnPolicy` (no model): one open turn per channel, the fragments since its last settled
  turn. It says when a turn settles: another channel took over while this one is silent, this
  channel stayed silent `settle_pause_ms` after its last word, the turn would outgrow
  `max_turn_ms` (below Whisper's 30 s window), or the stream ended.
- `TurnDecoder`: one settled turn's audio in, words out: the short encoder input, beam search,
  the previous turn's text as the prompt, and faster-whisper's temperature fallback when the
  result loops, compresses too well, is unlikely, or lost a good part of the fragments' words.
  If every attempt fails, the fragments' own words stand.
- `TurnTranscriber`: wraps the `StreamingTranscriber` (same `feed`/`flush`), keeps each
  channel's recent audio, and adds `Turn`s to its output.
"""

from __future__ import annotations

import time
import zlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Iterator, Sequence, Union

import numpy as np

from copilot.asr.commit import TimedWord, join_words, truncate_repetition
from copilot.asr.engine import timed_words, transcribe_utterance
from copilot.asr.streaming import StreamingTranscriber, drain, event_words, source_speakers
from copilot.audio.base import SAMPLE_RATE, AudioChunk, AudioSource
from copilot.events import PartialSegment, Segment, Turn, new_id

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

Output = Union[PartialSegment, Segment, Turn]


@dataclass(frozen=True)
class TurnConfig:
    settle_pause_ms: int = 1000  # silence after a turn's last word that settles it (docs/turns.md)
    max_turn_ms: int = 25_000  # a turn never outgrows this (Whisper's window is 30 s)
    margin_ms: int = 300  # audio kept either side of the turn's words when decoding it
    beam_size: int = 5
    prompt: bool = True  # give the previous turn's text to the decoder
    temperatures: tuple[float, ...] = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
    compression_ratio_threshold: float = 2.4
    log_prob_threshold: float = -1.0
    min_word_ratio: float = 0.6  # a decode with fewer words than this share of the fragments' lost some


@dataclass
class OpenTurn:
    channel: int
    speaker: str
    fragments: list[Segment] = field(default_factory=list)

    @property
    def start_ms(self) -> int:
        return self.fragments[0].start_ms

    @property
    def end_ms(self) -> int:
        return max(s.end_ms for s in self.fragments)


class TurnPolicy:
    """Fragments and each channel's speech state in, settled turns out. No audio, no model."""

    def __init__(self, config: TurnConfig | None = None) -> None:
        self.config = config or TurnConfig()
        self.open: dict[int, OpenTurn] = {}
        self._speaking: dict[int, bool] = {}
        self._speech_start: dict[int, int] = {}  # channel -> start of its latest speech

    def on_fragment(self, segment: Segment) -> list[OpenTurn]:
        """Add a fragment to its channel's turn; returns a turn it pushed over the cap, if any."""
        settled: list[OpenTurn] = []
        turn = self.open.get(segment.channel)
        if turn is not None and segment.end_ms - turn.start_ms > self.config.max_turn_ms:
            settled.append(self.open.pop(segment.channel))
            turn = None
        if turn is None:
            turn = self.open[segment.channel] = OpenTurn(segment.channel, segment.speaker)
        turn.fragments.append(segment)
        self._speech_start[segment.channel] = max(self._speech_start.get(segment.channel, 0), segment.start_ms)
        return settled

    def on_speech(self, channel: int, speaking: bool, now_ms: int) -> None:
        """The channel's VAD state at `now_ms` (its own clock)."""
        if speaking and not self._speaking.get(channel, False):
            self._speech_start[channel] = now_ms
        self._speaking[channel] = speaking

    def poll(self, clocks: dict[int, int]) -> list[OpenTurn]:
        """Turns that settle now; `clocks[ch]` is how far channel ch's audio has been processed."""
        out = []
        for ch, turn in list(self.open.items()):
            if self._speaking.get(ch, False):
                continue
            silent_for = clocks.get(ch, turn.end_ms) - turn.end_ms
            taken_over = any(start > turn.end_ms for other, start in self._speech_start.items() if other != ch)
            if taken_over or silent_for >= self.config.settle_pause_ms:
                out.append(self.open.pop(ch))
        return out

    def flush(self) -> list[OpenTurn]:
        out = sorted(self.open.values(), key=lambda t: t.start_ms)
        self.open.clear()
        return out


@dataclass
class TurnStats:
    turns: int = 0
    decode_s: float = 0.0
    fallbacks: int = 0  # turns that needed a temperature above 0
    kept_fragments: int = 0  # turns whose decode failed every check: the fragments' words stand


def compression_ratio(text: str) -> float:
    data = text.encode("utf-8")
    return len(data) / max(1, len(zlib.compress(data))) if data else 0.0


class TurnDecoder:
    """Decode one turn's audio in a single pass, with faster-whisper's quality fallback."""

    def __init__(
        self,
        model: "WhisperModel",
        config: TurnConfig | None = None,
        *,
        language: str | None = None,
        pad_s: float | None = 1.0,
    ) -> None:
        self.model = model
        self.config = config or TurnConfig()
        self.language = language
        self.pad_s = pad_s
        self.stats = TurnStats()

    def decode(
        self, audio: np.ndarray, offset_ms: int, fragments: Sequence[Segment], prompt: str | None = None
    ) -> list[TimedWord]:
        c = self.config
        frag_words = sum(len(s.text.split()) for s in fragments)
        t0 = time.perf_counter()
        try:
            for temperature in c.temperatures:
                result = transcribe_utterance(
                    self.model,
                    audio,
                    pad_s=self.pad_s,
                    beam_size=c.beam_size,
                    language=self.language,
                    previous_text=prompt,
                    temperature=temperature,
                )
                words = timed_words(result, offset_ms, len(audio) * 1000 // SAMPLE_RATE)
                looped = len(truncate_repetition(words)) < len(words)
                if not (
                    looped
                    or compression_ratio(result.text) > c.compression_ratio_threshold
                    or result.avg_logprob < c.log_prob_threshold
                    or len(words) < c.min_word_ratio * frag_words
                ):
                    self.stats.fallbacks += temperature > 0
                    return words
            self.stats.kept_fragments += 1
            return [
                TimedWord(" " + w.text, w.start_ms, w.end_ms, w.probability or 1.0) for s in fragments for w in s.words
            ]
        finally:
            self.stats.turns += 1
            self.stats.decode_s += time.perf_counter() - t0


def turn_from_words(
    words: Sequence[TimedWord],
    *,
    speaker: str,
    channel: int,
    start_ms: int,
    end_ms: int,
    segment_ids: list[str],
    model: str,
    turn_id: str | None = None,
    revision: int = 0,
) -> Turn:
    """A turn of decoded words: their text, timings and span (`start_ms`/`end_ms` stand where
    no word was decoded). A new turn gets a new id; a revision passes the turn's own."""
    return Turn(
        id=turn_id if turn_id is not None else new_id("turn"),
        speaker=speaker,
        channel=channel,
        start_ms=words[0].start_ms if words else start_ms,
        end_ms=max(w.end_ms for w in words) if words else end_ms,
        text=join_words(words),
        words=event_words(words),
        segment_ids=segment_ids,
        revision=revision,
        model=model,
    )


class _ChannelAudio:
    """A channel's recent audio on the session clock (enough for the longest turn)."""

    def __init__(self) -> None:
        self.samples = np.zeros(0, dtype=np.float32)
        self.start_ms: int | None = None

    @property
    def end_ms(self) -> int:
        return (self.start_ms or 0) + len(self.samples) * 1000 // SAMPLE_RATE

    def append(self, chunk: AudioChunk) -> None:
        samples = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
        if self.start_ms is None:
            self.start_ms = chunk.start_ms
        gap = (chunk.start_ms - self.end_ms) * SAMPLE_RATE // 1000
        if gap > 0:  # dropped audio: keep the timeline with silence
            samples = np.concatenate([np.zeros(gap, dtype=np.float32), samples])
        elif gap < 0:
            samples = samples[min(-gap, len(samples)) :]
        self.samples = np.concatenate([self.samples, samples])

    def slice(self, start_ms: int, end_ms: int) -> np.ndarray:
        base = self.start_ms or 0
        a = max(0, (start_ms - base) * SAMPLE_RATE // 1000)
        b = max(a, (end_ms - base) * SAMPLE_RATE // 1000)
        return self.samples[a:b]

    def forget_before(self, ms: int) -> None:
        drop = (ms - (self.start_ms or 0)) * SAMPLE_RATE // 1000
        if drop > SAMPLE_RATE:  # in >= 1 s steps, not every chunk
            self.samples = self.samples[drop:]
            self.start_ms = (self.start_ms or 0) + drop * 1000 // SAMPLE_RATE


class TurnTranscriber:
    """A `StreamingTranscriber` plus the turn layer: fragments as before, and `Turn`s once settled."""

    def __init__(self, inner: StreamingTranscriber, config: TurnConfig | None = None, *, model_name: str = "") -> None:
        self.inner = inner
        self.config = config or TurnConfig()
        self.policy = TurnPolicy(self.config)
        self.decoder = TurnDecoder(inner.model, self.config, language=inner.language, pad_s=inner.pad_s)
        self.model_name = model_name
        self._audio: dict[int, _ChannelAudio] = {}
        self._last_text = ""
        # Keep the audio the fragment engine heard (after its echo gate), not the raw chunks: a
        # turn decoded from raw audio would bring the other speaker's leak back.
        inner.on_audio = self._keep

    @property
    def stats(self):  # the fragment engine's stats: what the pipeline reports as ASR health
        return self.inner.stats

    @property
    def lag_ms(self) -> int:
        return self.inner.lag_ms

    def _keep(self, chunk: AudioChunk) -> None:
        self._audio.setdefault(chunk.channel, _ChannelAudio()).append(chunk)

    def feed(self, chunk: AudioChunk) -> list[Output]:
        out: list[Output] = list(self.inner.feed(chunk))
        settled: list[OpenTurn] = []
        for item in out:
            if isinstance(item, Segment):
                settled += self.policy.on_fragment(item)
        clocks = {}
        for ch, speaking, now in self.inner.channel_states():
            self.policy.on_speech(ch, speaking, now)
            clocks[ch] = now
        settled += self.policy.poll(clocks)
        out += [self._settle(t) for t in settled]
        for ch in self._audio:
            self._forget(ch)
        return out

    def flush(self) -> list[Output]:
        out: list[Output] = list(self.inner.flush())
        settled: list[OpenTurn] = []
        for item in out:
            if isinstance(item, Segment):
                settled += self.policy.on_fragment(item)
        settled += self.policy.flush()
        out += [self._settle(t) for t in sorted(settled, key=lambda t: t.start_ms)]
        return out

    def _settle(self, turn: OpenTurn) -> Turn:
        c = self.config
        audio = self._audio[turn.channel]
        start = max(audio.start_ms or 0, turn.start_ms - c.margin_ms)
        end = turn.end_ms + c.margin_ms
        words = self.decoder.decode(
            audio.slice(start, end),
            start,
            turn.fragments,
            prompt=self._last_text if c.prompt and self._last_text else None,
        )
        settled = turn_from_words(
            words,
            speaker=turn.speaker,
            channel=turn.channel,
            start_ms=turn.start_ms,
            end_ms=turn.end_ms,
            segment_ids=[s.id for s in turn.fragments],
            model=self.model_name,
        )
        self._last_text = settled.text
        return settled

    def _forget(self, channel: int) -> None:
        audio = self._audio[channel]
        turn = self.policy.open.get(channel)
        # Keep the open turn's audio, else a little before the present (a turn's first fragment
        # starts with the VAD's pre-roll, which is already in this window).
        keep_from = (turn.start_ms if turn else audio.end_ms - 20_000) - self.config.margin_ms - 1000
        audio.forget_before(keep_from)


def transcribe_turns(
    source: AudioSource, model: "WhisperModel", config: TurnConfig | None = None, *, model_name: str = "", **kwargs
) -> Iterator[Output]:
    """Transcribe a whole source: fragments as they commit, and each `Turn` as it settles."""
    fragments = StreamingTranscriber(model, source_speakers(source, kwargs), **kwargs)
    yield from drain(source, TurnTranscriber(fragments, config, model_name=model_name))
