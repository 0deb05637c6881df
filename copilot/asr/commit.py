"""The commit policy: when a channel's speech becomes final text. No model in here.

Three small objects, each testable by feeding it numbers and words:

- `UtteranceSegmenter` reads VAD probabilities (one per 32 ms) and says when an utterance
  starts and ends: after `end_silence_ms` of silence, or, once the utterance is already
  long, after a shorter pause (`short_pause_ms`). (The streaming layer bounds an
  utterance at `max_utterance_ms` by a forced commit.)
- `LocalAgreement` commits the prefix on which two successive hypotheses of a growing
  buffer agree (LocalAgreement-2), so a monologue with no pause still commits within a few
  seconds. It compares whole words as Whisper spelled them (normalised), so a committed
  unit is always a whole word; the audio is then cut at the quietest point between the
  last committed word and the next one (`quietest_cut`), never at a word timestamp, which
  is what split "invoices" into "in voices" in the prototype.
- `truncate_repetition` cuts Whisper's repeated-phrase loops.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Sequence

from copilot.asr.vad import WINDOW_MS


@dataclass(frozen=True)
class CommitConfig:
    speech_threshold: float = 0.5  # VAD probability that starts (and sustains) speech
    silence_threshold: float = 0.35  # below this a window counts as silence (hysteresis)
    end_silence_ms: int = 500  # silence that ends an utterance
    short_pause_ms: int = 300  # ...or this much, once the utterance is `long_utterance_ms` long
    long_utterance_ms: int = 8000
    min_speech_ms: int = 96  # shorter bursts (clicks, breaths) are dropped undecoded
    pre_roll_ms: int = 400  # audio kept before the first speech window
    post_roll_ms: int = 300  # audio kept after the last speech window
    max_utterance_ms: int = 15000  # uncommitted audio never grows beyond this: forced commit
    window_ms: int = 8000  # a decode window this long slides past its committed words
    partial_interval_ms: int = 850  # at most one hypothesis per channel per this much audio
    agreement_after_ms: int = 3000  # a turn this long with no pause commits agreed clauses...
    agreement_any_after_ms: int = 6000  # ...and, this long, any agreed phrase
    agreement_holdback_ms: int = 1000  # never commit a word ending this close to the buffer's end


@dataclass
class UtteranceEvent:
    kind: str  # "start" | "end"
    start_ms: int  # utterance start (with pre-roll)
    end_ms: int  # for "end": last speech + post-roll; for "start": the start again
    speech_ms: int = 0  # how much of it VAD called speech
    mean_prob: float = 0.0  # mean VAD probability over its speech windows
    reason: str = ""  # "silence" | "pause" | "flush"


class UtteranceSegmenter:
    """VAD windows in, utterance boundaries out (session milliseconds)."""

    def __init__(self, config: CommitConfig | None = None) -> None:
        self.config = config or CommitConfig()
        self.in_speech = False
        self.start_ms = 0
        self.last_speech_end_ms = 0
        self.silence_ms = 0
        self.speech_ms = 0
        self._prob_sum = 0.0
        self._now_ms = 0

    def push(self, start_ms: int, prob: float) -> UtteranceEvent | None:
        c = self.config
        end = start_ms + WINDOW_MS
        self._now_ms = end
        if not self.in_speech:
            if prob >= c.speech_threshold:
                self.in_speech = True
                self.start_ms = max(0, start_ms - c.pre_roll_ms)
                self.last_speech_end_ms = end
                self.silence_ms = 0
                self.speech_ms = WINDOW_MS
                self._prob_sum = prob
                return UtteranceEvent("start", self.start_ms, self.start_ms)
            return None
        if prob >= c.speech_threshold or (prob >= c.silence_threshold and self.silence_ms == 0):
            self.last_speech_end_ms = end
            self.silence_ms = 0
            self.speech_ms += WINDOW_MS
            self._prob_sum += prob
        else:
            self.silence_ms += WINDOW_MS
        length = self.last_speech_end_ms - self.start_ms
        if self.silence_ms >= c.end_silence_ms:
            return self._end("silence")
        if self.silence_ms >= c.short_pause_ms and length >= c.long_utterance_ms:
            return self._end("pause")
        return None

    def flush(self) -> UtteranceEvent | None:
        return self._end("flush") if self.in_speech else None

    def _end(self, reason: str) -> UtteranceEvent:
        c = self.config
        end_ms = min(self._now_ms, self.last_speech_end_ms + c.post_roll_ms)
        self.in_speech = False
        return UtteranceEvent(
            "end",
            self.start_ms,
            end_ms,
            speech_ms=self.speech_ms,
            mean_prob=self._prob_sum / max(1, self.speech_ms // WINDOW_MS),
            reason=reason,
        )


# ---------------------------------------------------------------- words and agreement


@dataclass(frozen=True)
class TimedWord:
    text: str  # as Whisper spelled it, with its leading space and punctuation
    start_ms: int  # session time
    end_ms: int
    probability: float = 1.0

    @property
    def key(self) -> str:
        return normalise_word(self.text)


_NON_WORD = re.compile(r"[^\w']+")


def normalise_word(text: str) -> str:
    return _NON_WORD.sub("", text.lower())


def join_words(words: Sequence[TimedWord]) -> str:
    return "".join(w.text for w in words).strip()


@dataclass
class LocalAgreement:
    """LocalAgreement-2 over hypotheses of one growing buffer.

    `insert(words, buffer_end_ms)` takes the newest hypothesis (session-timed words of the
    uncommitted audio) and returns the words now committed: the longest prefix that the
    previous hypothesis also had, minus any word that ends within `holdback_ms` of the
    buffer's end (it may still be growing: "in" before "invoices").
    """

    holdback_ms: int = 1000
    min_words: int = 3
    previous: list[TimedWord] = field(default_factory=list)

    def insert(self, words: Sequence[TimedWord], buffer_end_ms: int, *, clause_only: bool = False) -> list[TimedWord]:
        agreed: list[TimedWord] = []
        for new, old in zip(words, self.previous):
            if new.key != old.key or not new.key:
                break
            if new.end_ms > buffer_end_ms - self.holdback_ms:
                break
            agreed.append(new)
        agreed = agreed[: _last_clause_end(agreed)]
        # Whisper sometimes spells one spoken word as two ("re" + "-moring"): a word that does
        # not start with a space continues the previous one, so never cut before it.
        while agreed and len(words) > len(agreed) and not words[len(agreed)].text.startswith(" "):
            agreed.pop()
        if len(agreed) < self.min_words and not (agreed and _ends_clause(agreed[-1])):
            agreed = []  # wait for a phrase: one-word segments read badly and tag worse
        if clause_only and not (agreed and _ends_clause(agreed[-1])):
            agreed = []  # a young utterance commits whole clauses only
        self.previous = list(words[len(agreed) :])
        return agreed

    def reset(self) -> None:
        self.previous = []


def _last_clause_end(words: Sequence[TimedWord]) -> int:
    """Length of the agreed prefix to commit: through its last clause-ending word if any.

    Whisper punctuates where the speaker paused, so a cut there gives the next hypothesis a
    clean start and the committed segment reads as a clause.
    """
    for i in range(len(words) - 1, -1, -1):
        if _ends_clause(words[i]):
            return i + 1
    return len(words)


def _ends_clause(word: TimedWord) -> bool:
    text = word.text.rstrip()
    return bool(text) and text[-1] in ".?!,;:"


def drop_overlap(
    committed_tail: Sequence[TimedWord], words: Sequence[TimedWord], max_ngram: int = 5
) -> list[TimedWord]:
    """Remove from the head of `words` an n-gram that repeats the end of what was committed.

    After a cut the new buffer may still hold the tail of the last committed word(s), and
    Whisper transcribes it again.
    """
    tail = [w.key for w in committed_tail][-max_ngram:]
    head = [w.key for w in words]
    for n in range(min(len(tail), len(head)), 0, -1):
        if tail[-n:] == head[:n]:
            return list(words[n:])
    return list(words)


def quietest_cut(probs: Sequence[tuple[int, float]], lo_ms: int, hi_ms: int) -> int:
    """The start of the least speech-like VAD window in [lo_ms, hi_ms] (ties: the latest)."""
    if hi_ms <= lo_ms:
        return lo_ms
    best_ms, best_p = hi_ms, 2.0
    for start, p in probs:
        mid = start + WINDOW_MS // 2
        if lo_ms <= mid <= hi_ms and p <= best_p:
            best_ms, best_p = mid, p
    return max(lo_ms, min(hi_ms, best_ms))


# ---------------------------------------------------------------- loops and hallucinations


def truncate_repetition(words: Sequence[TimedWord], max_ngram: int = 20) -> list[TimedWord]:
    """Cut a phrase repeated back to back, keeping its first occurrence.

    One word 4+ times, a 2-4 word phrase 3+ times, a 5+ word phrase twice: people say
    "no, no, no" or "I think, I think", but they do not say a whole clause twice in a row;
    Whisper looping does.
    """
    keys = [w.key for w in words]
    n_words = len(keys)
    for i in range(n_words):
        for n in range(1, max_ngram + 1):
            need = 4 if n == 1 else (3 if n < 5 else 2)
            if i + n * need > n_words:
                continue
            gram = keys[i : i + n]
            if not any(gram):
                continue
            reps = 1
            while keys[i + reps * n : i + (reps + 1) * n] == gram:
                reps += 1
            if reps >= need:
                return list(words[: i + n])
    return list(words)


# Whisper's stock outputs on silence, music and noise (it was trained on subtitles).
SILENCE_HALLUCINATIONS = frozenset(
    (  # normalised: lowercase, no punctuation
        "thank you",
        "thanks",
        "thank you very much",
        "thank you so much",
        "thanks for watching",
        "thank you for watching",
        "thanks for listening",
        "thank you for listening",
        "please subscribe",
        "subscribe",
        "like and subscribe",
        "bye",
        "bye bye",
        "goodbye",
        "you",
        "so",
        "oh",
        "okay",
        "um",
        "uh",
        "hmm",
        "the end",
        "music",
        "subtitles by the amaraorg community",
        "see you next time",
        "ill see you next time",
    )
)


def normalise_phrase(text: str) -> str:
    return " ".join(normalise_word(w) for w in text.split() if normalise_word(w))


@dataclass(frozen=True)
class HallucinationFilter:
    no_speech_prob: float = 0.6  # Whisper's own rule: likely no speech...
    logprob_floor: float = -1.0  # ...and not confident about the text
    hopeless_logprob: float = -1.6  # text this unlikely is dropped whatever VAD says
    weak_speech_ms: int = 600  # VAD evidence below this, or...
    weak_mean_prob: float = 0.5  # ...a mean probability below this, is "weak"

    def keep(self, text: str, *, avg_logprob: float, no_speech_prob: float, speech_ms: int, mean_prob: float) -> bool:
        if not text.strip():
            return False
        if no_speech_prob > self.no_speech_prob and avg_logprob < self.logprob_floor:
            return False
        if avg_logprob < self.hopeless_logprob:
            return False
        weak = speech_ms < self.weak_speech_ms or mean_prob < self.weak_mean_prob
        if weak and normalise_phrase(text) in SILENCE_HALLUCINATIONS:
            return False
        if weak and avg_logprob < self.logprob_floor:
            return False
        return True
