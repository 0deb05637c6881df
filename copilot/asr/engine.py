"""One short utterance in, text with word times out, without Whisper's 30 s padding.

Whisper was trained on 30 s windows, and faster-whisper pads every window to 3000 mel
frames, so a 2 s utterance costs as much to encode as 30 s of audio. CTranslate2 (4.8.5)
accepts a shorter encoder input: we compute the features of the utterance, pad them only
to the utterance's length plus `pad_s` (about 1 s of silence, which keeps Whisper from
running its last word into the window's end), and call `generate` and `align` ourselves.
tiny.en encodes 1000 frames in about a sixth of the time of 3000, with the same text (see
docs/asr.md for the figures and the WER check).

Decoding is greedy at temperature 0 with no timestamp tokens, one utterance per window,
optionally conditioned on the channel's previous text; word times come from cross-attention
alignment (`Whisper.align`), as in faster-whisper's `word_timestamps=True`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from copilot.asr.commit import TimedWord
from copilot.asr.device import DeviceChoice, select_device
from copilot.asr.models import resolve_model
from copilot.asr.options import DEFAULT_MODEL
from copilot.errors import ModelError

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

SAMPLE_RATE = 16_000
HOP = 160  # samples per mel frame (10 ms)
MAX_FRAMES = 3000  # Whisper's window: 30 s
MAX_CONTEXT_TOKENS = 64  # previous text given as context: enough for a sentence or two
MAX_AUDIO_S = 29.0  # longer audio must be cut by the caller (the commit policy bounds utterances)
# oneDNN (in CTranslate2's CPU kernels) caches compiled primitives per input shape, up to 1024
# by default, and the encoder input here is as long as the utterance (any even frame count from
# 200 to 3000), so nearly every utterance adds entries and memory: RSS stepped up about 150 MB
# per audio hour in `copilot bench soak` while Python's heap stayed flat. A small cache bounds
# it at about 6% more decode time on random lengths and identical output (docs/asr.md).
ONEDNN_CACHE_CAPACITY = "32"


@dataclass(frozen=True)
class WordTiming:
    text: str  # with its leading space, as Whisper spells it (" invoices,")
    start: float  # seconds from the start of the utterance audio
    end: float
    probability: float


@dataclass
class UtteranceResult:
    text: str
    words: list[WordTiming] = field(default_factory=list)
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    encoder_frames: int = 0
    tokens: list[int] = field(default_factory=list)


def load_model(
    name_or_path: str = DEFAULT_MODEL,
    device: str = "auto",
    compute_type: str | None = None,
    *,
    cpu_threads: int | None = None,
) -> "WhisperModel":
    """Load a faster-whisper model from a local directory (resolved by name via `resolve_model`)."""
    choice = select_device(device, compute_type)
    path = _resolve(name_or_path)
    return _load(path, choice, cpu_threads)


def _resolve(name_or_path: str) -> str:
    return resolve_model(name_or_path)  # a local directory, or a clear ModelError


def _load(path: str, choice: DeviceChoice, cpu_threads: int | None) -> "WhisperModel":
    bound_onednn_cache()
    from faster_whisper import WhisperModel

    try:
        model = WhisperModel(
            path,
            device=choice.device,
            compute_type=choice.compute_type,
            cpu_threads=cpu_threads if cpu_threads is not None else choice.cpu_threads,
            local_files_only=True,
        )
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else exc.__class__.__name__
        raise ModelError(f"cannot load model {path} on {choice.describe()}: {first}") from None
    model.copilot_device = choice  # type: ignore[attr-defined]  # for status lines and the bench
    return model


def bound_onednn_cache() -> None:
    """Cap oneDNN's primitive cache (see ONEDNN_CACHE_CAPACITY) unless the user set it.

    oneDNN reads the variable when it creates its first primitive, so this must run before
    the first `encode`; it is called when a model is loaded.
    """
    os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", ONEDNN_CACHE_CAPACITY)


def _tokenizer(model: "WhisperModel", language: str | None):
    from faster_whisper.tokenizer import Tokenizer

    cache = getattr(model, "_copilot_tokenizers", None)
    if cache is None:
        cache = {}
        model._copilot_tokenizers = cache  # type: ignore[attr-defined]
    key = language or "en"
    if key not in cache:
        multilingual = model.model.is_multilingual
        cache[key] = Tokenizer(
            model.hf_tokenizer, multilingual, task="transcribe", language=key if multilingual else "en"
        )
    return cache[key]


def encoder_frames_for(n_samples: int, pad_s: float | None) -> int:
    """Encoder input length: the audio's frames plus `pad_s`, even, at most 3000 (None = 3000)."""
    if pad_s is None:
        return MAX_FRAMES
    frames = n_samples // HOP + 1 + int(pad_s * 100)
    frames += frames % 2  # the encoder's conv stride is 2
    return min(MAX_FRAMES, max(frames, 200))


def transcribe_utterance(
    model: "WhisperModel",
    audio: np.ndarray,
    *,
    pad_s: float | None = 1.0,
    beam_size: int = 1,
    word_timestamps: bool = True,
    language: str | None = None,
    max_new_tokens: int | None = None,
    previous_text: str | None = None,
    temperature: float = 0.0,
    best_of: int = 5,
) -> UtteranceResult:
    """Transcribe one utterance (<= 29 s of 16 kHz float32 audio) in a single window.

    `pad_s=None` reproduces Whisper's 30 s padding (for comparison); the default pads the
    encoder input to the utterance plus 1 s. `previous_text` (the channel's last committed
    words) is given to the decoder as context, as Whisper does across its own windows; it
    helps short utterances ("ask not") more than it risks. `temperature > 0` samples `best_of`
    hypotheses instead of searching (faster-whisper's fallback) and keeps the likeliest. Thread-safe: CTranslate2 releases the GIL and
    serialises calls on one model replica.
    """
    from faster_whisper.transcribe import get_ctranslate2_storage, merge_punctuations

    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1:
        raise ValueError("transcribe_utterance takes mono audio")
    if len(audio) > MAX_AUDIO_S * SAMPLE_RATE:
        audio = audio[: int(MAX_AUDIO_S * SAMPLE_RATE)]
    if len(audio) < HOP * 10:
        return UtteranceResult(text="")
    tokenizer = _tokenizer(model, language)
    features = model.feature_extractor(audio)  # (n_mels, frames + 1)
    content_frames = min(features.shape[-1] - 1, MAX_FRAMES)
    n_frames = encoder_frames_for(len(audio), pad_s)
    feats = features[:, :n_frames]
    if feats.shape[-1] < n_frames:
        feats = np.pad(feats, [(0, 0), (0, n_frames - feats.shape[-1])])
    encoder_output = model.model.encode(get_ctranslate2_storage(feats[None]), to_cpu=False)

    prompt = list(tokenizer.sot_sequence) + [tokenizer.no_timestamps]
    if previous_text:
        context = tokenizer.encode(" " + previous_text.strip())[-MAX_CONTEXT_TOKENS:]
        prompt = [tokenizer.sot_prev] + context + prompt
    max_length = min(448, len(prompt) + (max_new_tokens or 224))
    sampling = (
        {"beam_size": 1, "num_hypotheses": best_of, "sampling_topk": 0, "sampling_temperature": temperature}
        if temperature > 0
        else {"beam_size": beam_size}
    )
    result = model.model.generate(
        encoder_output,
        [prompt],
        **sampling,
        max_length=max_length,
        return_scores=True,
        return_no_speech_prob=True,
        suppress_blank=True,
        suppress_tokens=_suppressed(model, tokenizer),
        # No n-gram ban here: natural speech repeats words, and Whisper's loops are cut
        # after decoding (`commit.truncate_repetition`, docs/asr.md).
        no_repeat_ngram_size=0,
    )[0]
    best = max(range(len(result.sequences_ids)), key=lambda i: result.scores[i])
    tokens = [t for t in result.sequences_ids[best] if t < tokenizer.eot]
    text = tokenizer.decode(tokens).strip()
    seq_len = len(tokens)
    # CTranslate2 returns the length-normalised score (length_penalty=1): undo it as
    # faster-whisper does, then average over the tokens plus end-of-text.
    avg_logprob = result.scores[best] * seq_len / (seq_len + 1) if seq_len else -10.0
    out = UtteranceResult(
        text=text,
        avg_logprob=float(avg_logprob),
        no_speech_prob=float(result.no_speech_prob),
        encoder_frames=n_frames,
        tokens=tokens,
    )
    if word_timestamps and tokens:
        alignment = model.find_alignment(tokenizer, [tokens], encoder_output, content_frames)[0]
        merge_punctuations(alignment, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
        duration = len(audio) / SAMPLE_RATE
        out.words = [
            WordTiming(
                text=w["word"],
                start=float(min(w["start"], duration)),
                end=float(min(max(w["end"], w["start"]), duration)),
                probability=float(w["probability"]),
            )
            for w in alignment
            if w["word"]
        ]
    return out


def _suppressed(model: "WhisperModel", tokenizer) -> list[int]:
    cache = getattr(model, "_copilot_suppress", None)
    if cache is None:
        from faster_whisper.transcribe import get_suppressed_tokens

        cache = list(get_suppressed_tokens(tokenizer, [-1]))
        model._copilot_suppress = cache  # type: ignore[attr-defined]
    return cache


def timed_words(result: UtteranceResult, offset_ms: int, duration_ms: int) -> list[TimedWord]:
    """Session-timed words; a first word stretched over a leading pause is shortened.

    Cross-attention alignment tends to start the first word at the window's start even when
    the pre-roll is silent (faster-whisper applies the same correction).
    """
    if not result.words:
        return []
    durations = [w.end - w.start for w in result.words if w.end > w.start]
    median = min(0.7, float(np.median(durations))) if durations else 0.3
    max_dur = max(0.2, 2 * median)
    words = []
    for i, w in enumerate(result.words):
        start, end = w.start, w.end
        if end - start > max_dur and (i == 0 or result.words[i - 1].text.rstrip()[-1:] in ".?!"):
            start = end - max_dur
        words.append(
            TimedWord(
                w.text,
                offset_ms + int(round(start * 1000)),
                offset_ms + int(round(min(end * 1000, duration_ms))),
                w.probability,
            )
        )
    return words
