"""The streaming engine on real recordings and synthetic speech, with the real tiny.en model."""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np
import pytest

from copilot.asr.engine import load_model, transcribe_utterance
from copilot.asr.streaming import StreamingTranscriber, transcribe_stream
from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.audio.file_source import FileSource
from copilot.bench.asr import normalize_text, wer
from copilot.events import PartialSegment, Segment
from tests.conftest import requires_shared, shared_audio

pytestmark = [pytest.mark.audio]

JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."


def stream(model, chunks, speakers, **kwargs) -> tuple[list[Segment], list[PartialSegment]]:
    t = StreamingTranscriber(model, speakers, **kwargs)
    out = []
    for chunk in chunks:
        out += t.feed(chunk)
    out += t.flush()
    return [o for o in out if isinstance(o, Segment)], [o for o in out if isinstance(o, PartialSegment)]


def chunked(x: np.ndarray, channel: int = 0, speaker: str = "speaker", ms: int = 100, offset_ms: int = 0):
    step = SAMPLE_RATE * ms // 1000
    for i in range(0, len(x), step):
        yield AudioChunk(x[i : i + step].astype(np.float32), channel, speaker, offset_ms + i * 1000 // SAMPLE_RATE)


def text_of(segments) -> str:
    return " ".join(s.text for s in segments)


@pytest.fixture(scope="module")
def jfk() -> np.ndarray:
    return FileSource(shared_audio("jfk.flac")).samples[0] if shared_audio("jfk.flac").exists() else None


# ------------------------------------------------------------------ real recordings


@requires_shared
def test_jfk_word_error_rate_at_most_10_percent(model):
    segments = list(transcribe_stream(FileSource(shared_audio("jfk.flac")), model, emit_partials=True))
    finals = [s for s in segments if isinstance(s, Segment)]
    assert any(isinstance(s, PartialSegment) for s in segments)
    assert wer(JFK, text_of(finals)) <= 0.10, text_of(finals)
    # Times are session milliseconds, in order, words inside their segment.
    assert all(a.end_ms <= b.start_ms + 50 for a, b in zip(finals, finals[1:]))
    for s in finals:
        assert s.speaker == "speaker" and s.words
        assert s.start_ms <= s.words[0].start_ms and s.words[-1].end_ms <= s.end_ms <= 11_000
        assert " ".join(w.text for w in s.words) == s.text


def test_loading_a_model_caps_onednn_primitive_cache(monkeypatch):
    # One cached oneDNN primitive set per encoder input length grew the soak by 150 MB an
    # hour; loading a model must cap the cache, and leave a user's own setting alone.
    monkeypatch.delenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", raising=False)
    load_model("tiny.en", "cpu")
    assert 0 < int(os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"]) <= 64
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "1024")
    load_model("tiny.en", "cpu")
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "1024"


@requires_shared
def test_short_encoder_window_keeps_the_text_of_whisper_30s_padding(model, jfk):
    short = transcribe_utterance(model, jfk, pad_s=1.0)
    full = transcribe_utterance(model, jfk, pad_s=None)
    assert short.encoder_frames < 1300 and full.encoder_frames == 3000
    assert wer(full.text, short.text) <= 0.05
    assert wer(JFK, short.text) <= 0.10
    assert [w.text for w in short.words] == short.text.split() or len(short.words) >= 20


@requires_shared
def test_stereo_file_gives_each_sentence_to_its_speaker(model):
    source = FileSource(shared_audio("stereo_diarization.wav"), speakers="interviewer,candidate")
    finals = [s for s in transcribe_stream(source, model, emit_partials=False) if isinstance(s, Segment)]
    left = normalize_text(text_of(s for s in finals if s.speaker == "interviewer"))
    right = normalize_text(text_of(s for s in finals if s.speaker == "candidate"))
    assert (
        wer("He began a confused complaint against the wizard, who had vanished behind the curtain on the left.", left)
        <= 0.2
    ), left
    assert wer("The horizon seems extremely distant.", right) <= 0.2, right
    assert "horizon" not in left and "wizard" not in right
    assert {s.channel for s in finals if s.speaker == "candidate"} == {1}


@requires_shared
def test_ami_clip_yields_both_speakers_words(model):
    source = FileSource(shared_audio("ami/ES2011a.Headset-0-40s-46s.wav"))
    finals = [s for s in transcribe_stream(source, model, emit_partials=False) if isinstance(s, Segment)]
    text = normalize_text(text_of(finals))
    assert "abigail" in text  # first speaker: "I'm Abigail Claflin."
    assert "call me" in text  # second speaker: "You can call me Abbie."
    assert len(finals) >= 2


@requires_shared
def test_session_offset_is_carried_into_segment_and_word_times(model, jfk):
    finals, _ = stream(model, chunked(jfk[: 3 * SAMPLE_RATE], offset_ms=60_000), ["speaker"], emit_partials=False)
    assert finals and all(60_000 <= s.start_ms < s.end_ms <= 63_100 for s in finals)
    assert all(60_000 <= w.start_ms <= w.end_ms for s in finals for w in s.words)


# ------------------------------------------------------------------ no invented text


def test_silence_and_white_noise_produce_no_text(model):
    silence = np.zeros(10 * SAMPLE_RATE, dtype=np.float32)
    noise = np.random.default_rng(1).normal(0, 0.1, 10 * SAMPLE_RATE).astype(np.float32)
    for audio in (silence, noise):
        finals, partials = stream(model, chunked(audio), ["speaker"], emit_partials=True)
        assert finals == [] and partials == []


@requires_shared
def test_a_30_second_pause_inside_speech_stays_empty(model, jfk):
    audio = np.concatenate([jfk, np.zeros(30 * SAMPLE_RATE, dtype=np.float32), jfk])
    finals, _ = stream(model, chunked(audio), ["speaker"], emit_partials=False)
    pause = (11_000, 41_000)
    assert not [s for s in finals if s.start_ms > pause[0] + 500 and s.end_ms < pause[1] - 500]
    assert wer(JFK + " " + JFK, text_of(finals)) <= 0.15, text_of(finals)


# ------------------------------------------------------------------ synthetic speech (espeak)

# Lines tiny.en transcribes well from espeak in one shot, so that the comparison measures what
# streaming loses, not what espeak's voice costs.
INTERVIEW = [
    ("interviewer", "Today we will build a service that sends email to our customers. How would you begin?"),
    ("candidate", "First I would like to know how many emails we send every day."),
    ("interviewer", "About one million a day, mostly in the morning."),
    (
        "candidate",
        "Then I would put a queue in front of the mail server. Slow sending should never block the checkout page.",
    ),
    ("interviewer", "What if the mail server is down?"),
    (
        "candidate",
        "We keep the messages in the queue and try again later. I would rather send an email late than lose it.",
    ),
]


@pytest.fixture(scope="module")
def interview(tmp_path_factory) -> tuple[Path, list[dict]]:
    from tests.synth import espeak_dialogue

    path = tmp_path_factory.mktemp("synth") / "interview.wav"
    return path, espeak_dialogue(INTERVIEW, path, stereo=True, wpm=145)


def test_streaming_matches_one_shot_on_a_synthetic_interview(model, interview):
    path, ref = interview
    source = FileSource(path, mono=False)
    finals = [s for s in transcribe_stream(source, model, emit_partials=True) if isinstance(s, Segment)]
    stream_err = oneshot_err = 0.0
    for ch in (0, 1):
        reference = " ".join(t["text"] for t in ref if t["channel"] == ch)
        n = len(normalize_text(reference).split())
        hyp = text_of(s for s in finals if s.channel == ch)
        segs, _ = model.transcribe(
            source.samples[ch], beam_size=1, temperature=0.0, condition_on_previous_text=False, vad_filter=True
        )
        one = " ".join(s.text for s in segs)
        stream_err += wer(reference, hyp) * n
        oneshot_err += wer(reference, one) * n
    total = sum(len(normalize_text(t["text"]).split()) for t in ref)
    assert stream_err / total - oneshot_err / total <= 0.03, (stream_err / total, oneshot_err / total)
    # Speaker attribution by channel: every final segment lies inside one of its speaker's turns.
    for s in finals:
        turns = [t for t in ref if t["channel"] == s.channel]
        assert any(t["start_ms"] - 500 <= s.start_ms and s.end_ms <= t["end_ms"] + 600 for t in turns), s


MONOLOGUE = (
    "we send invoices every night and the invoices go out in batches so the invoices for the small "
    "customers are grouped with the invoices for the large customers and then we check every batch "
    "before the invoices leave the building and the team that owns the invoices reviews the numbers "
    "every morning before the customers see their invoices"
)


def test_a_long_monologue_commits_by_agreement_without_splitting_words(model, tmp_path):
    from tests.synth import espeak_say

    path = tmp_path / "monologue.wav"
    espeak_say(MONOLOGUE, path)
    source = FileSource(path)
    transcriber = StreamingTranscriber(model, source.speakers, emit_partials=False)
    emitted: list[tuple[Segment, int]] = []  # (segment, audio fed when it was emitted)
    for chunk in source.chunks():
        for out in transcriber.feed(chunk):
            if isinstance(out, Segment):
                emitted.append((out, transcriber.last_audio_ms))
    final_tail = [s for s in transcriber.flush() if isinstance(s, Segment)]
    assert source.duration_ms > 15_000
    # Committed before the speaker stopped, each piece within a few seconds of its audio.
    early = [(s, at) for s, at in emitted if at < source.duration_ms - 1000]
    assert len(early) >= 2, [s.text for s, _ in emitted]
    assert early[0][1] <= 9_000
    assert all(at - s.end_ms <= 5_000 for s, at in early)
    text = normalize_text(text_of([s for s, _ in emitted] + final_tail))
    assert "in voices" not in text and text.count("invoices") >= 5
    segs, _ = model.transcribe(
        source.samples[0], beam_size=1, temperature=0.0, condition_on_previous_text=False, vad_filter=True
    )
    one_shot = wer(MONOLOGUE, " ".join(s.text for s in segs))
    # Committing every second or so costs some context; it must not cost much more.
    assert wer(MONOLOGUE, text) <= one_shot + 0.10, (text, one_shot)


# ------------------------------------------------------------------ worker thread


@requires_shared
def test_runs_in_a_worker_thread_fed_by_a_bounded_queue(model):
    source = FileSource(shared_audio("stereo_diarization.wav"), speakers="a,b")
    transcriber = StreamingTranscriber(model, source.speakers)
    q: queue.Queue = queue.Queue(maxsize=8)
    results: list = []

    def worker() -> None:
        while (chunk := q.get()) is not None:
            results.extend(transcriber.feed(chunk))
        results.extend(transcriber.flush())

    thread = threading.Thread(target=worker)
    thread.start()
    for chunk in source.chunks():
        q.put(chunk)
    q.put(None)
    thread.join(timeout=120)
    assert not thread.is_alive()
    assert {s.speaker for s in results if isinstance(s, Segment)} == {"a", "b"}
    assert transcriber.last_audio_ms == 5000 and transcriber.stats.decodes >= 2
