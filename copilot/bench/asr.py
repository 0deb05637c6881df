"""`copilot bench asr`: real-time factor, end-of-utterance latency, streaming vs one-shot WER, memory.

- RTF: the files streamed as fast as possible through both layers (fragments and turns, no
  partials), wall time / audio time; also CPU seconds (all threads) / audio time.
- Latency: the files replayed at real-time pace by a feeder thread (20 ms chunks, 1.5 s of
  silence after each file so the last utterance ends the way it would live); the engine runs
  in this thread. For every final segment: wall time when it was emitted minus wall time when
  the chunk holding the end of its audio was fed (its last word's end, or the end of the
  speech region per faster-whisper's batch VAD when alignment stretched the word into silence).
- WER (jiwer, lowercase, no punctuation) per channel against the reference transcripts, for
  the fragments, the settled turns, and faster-whisper's own one-shot `transcribe` of the whole
  channel: greedy (beam 1, temperature 0, VAD filter) and with its defaults (beam 5, VAD filter).
- Peak RSS of this process (ru_maxrss).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import resource
import statistics
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

from copilot.asr.options import add_asr_arguments
from copilot.config import shared_data_dir

SHARED_AUDIO = shared_data_dir() / "audio"
TARGETS = {"latency_median_s": 1.5, "latency_p95_s": 3.0, "turn_latency_median_s": 1.5, "rtf": 0.3, "peak_rss_mb": 700}


@dataclass
class Case:
    name: str
    path: Path
    references: list[str] | None  # one reference transcript per channel (None: no WER)
    mono: bool | None = None  # FileSource's `mono` (None: auto)
    kind: str = "real"  # real | synthetic


@dataclass
class CaseResult:
    name: str
    kind: str
    audio_s: float
    channels: int
    segments: int = 0
    stream_wer: float | None = None
    turn_wer: float | None = None
    oneshot_wer: float | None = None
    oneshot5_wer: float | None = None
    turns: int = 0
    ref_words: int = 0
    rtf: float = 0.0  # wall time / audio time
    cpu_rtf: float = 0.0  # CPU seconds (all threads) / audio time: less sensitive to a busy machine
    latencies_s: list[float] = field(default_factory=list)
    turn_latencies_s: list[float] = field(default_factory=list)
    stream_text: list[str] = field(default_factory=list)
    turn_text: list[str] = field(default_factory=list)


def default_cases() -> list[Case]:
    cases: list[Case] = []
    if SHARED_AUDIO.is_dir():
        cases += [
            Case(
                "jfk",
                SHARED_AUDIO / "jfk.flac",
                [
                    "And so my fellow Americans, ask not what your country can do for you, "
                    "ask what you can do for your country."
                ],
            ),
            Case(
                "stereo",
                SHARED_AUDIO / "stereo_diarization.wav",
                [
                    "He began a confused complaint against the wizard, who had vanished behind the curtain on the left.",
                    "The horizon seems extremely distant.",
                ],
                mono=False,
            ),
            Case(
                "ami",
                SHARED_AUDIO / "ami" / "ES2011a.Headset-0-40s-46s.wav",
                ["I'm Abigail Claflin. You can call me Abbie."],
            ),
        ]
    from copilot.audio.demo import DEMO_AUDIO, DEMO_SCRIPT

    refs = [" ".join(t["text"] for t in DEMO_SCRIPT if t["channel"] == ch) for ch in (0, 1)]
    cases.append(Case("demo", Path(DEMO_AUDIO), refs, mono=False, kind="synthetic"))
    return cases


# ------------------------------------------------------------------ text and WER

_PUNCT = re.compile(r"[^\w' ]+")


def normalize_text(text: str) -> str:
    """Lowercase, punctuation removed (apostrophes kept), whitespace collapsed."""
    return " ".join(_PUNCT.sub(" ", text.lower().replace("-", " ")).split())


def word_errors(reference: str, hypothesis: str) -> tuple[int, int]:
    """(errors, reference words) after normalisation."""
    import jiwer

    ref, hyp = normalize_text(reference), normalize_text(hypothesis)
    n = len(ref.split())
    if n == 0:
        return len(hyp.split()), 0
    out = jiwer.process_words(ref, hyp)
    return out.substitutions + out.deletions + out.insertions, n


def wer(reference: str, hypothesis: str) -> float:
    errors, n = word_errors(reference, hypothesis)
    return errors / max(1, n)


# ------------------------------------------------------------------ runs


def stream_fast(model, case: Case, **kwargs) -> tuple[list, list, float, float, float]:
    """Stream a file as fast as possible: (segments, turns, wall s, process CPU s, audio s)."""
    from copilot.asr.streaming import StreamingTranscriber
    from copilot.asr.turns import TurnTranscriber
    from copilot.audio.file_source import FileSource
    from copilot.events import Segment, Turn

    source = FileSource(case.path, mono=case.mono)
    transcriber = TurnTranscriber(StreamingTranscriber(model, source.speakers, **kwargs))
    out = []
    t0, c0 = time.perf_counter(), time.process_time()
    for chunk in source.chunks():
        out += transcriber.feed(chunk)
    out += transcriber.flush()
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return (
        [o for o in out if isinstance(o, Segment)],
        [o for o in out if isinstance(o, Turn)],
        wall,
        cpu,
        source.duration_ms / 1000,
    )


def stream_realtime(
    model, case: Case, *, tail_s: float = 1.5, chunk_ms: int = 20, **kwargs
) -> tuple[list, list[float], list[float]]:
    """Replay at real-time pace; returns (segments, latency in seconds per final segment, per turn)."""
    import numpy as np

    from copilot.asr.streaming import StreamingTranscriber
    from copilot.asr.turns import TurnTranscriber
    from copilot.audio.base import SAMPLE_RATE, AudioChunk
    from copilot.audio.file_source import FileSource
    from copilot.events import Segment, Turn

    source = FileSource(case.path, mono=case.mono)
    x = source.samples
    x = np.concatenate([x, np.zeros((x.shape[0], int(tail_s * SAMPLE_RATE)), dtype=np.float32)], axis=1)
    speech = [speech_regions(x[ch]) for ch in range(x.shape[0])]
    transcriber = TurnTranscriber(StreamingTranscriber(model, source.speakers, realtime=True, **kwargs))
    q: queue.Queue = queue.Queue()
    fed: list[tuple[int, float]] = []  # (chunk end ms, wall time it was handed over)
    step = SAMPLE_RATE * chunk_ms // 1000

    def feeder() -> None:
        t0 = time.monotonic()
        for begin in range(0, x.shape[1], step):
            end = min(begin + step, x.shape[1])
            delay = t0 + end / SAMPLE_RATE - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.monotonic()
            fed.append((end * 1000 // SAMPLE_RATE, now))
            for ch, speaker in enumerate(source.speakers):
                q.put(AudioChunk(x[ch, begin:end].copy(), ch, speaker, begin * 1000 // SAMPLE_RATE))
        q.put(None)

    thread = threading.Thread(target=feeder, daemon=True)
    thread.start()
    segments: list = []
    latencies: list[float] = []
    turn_latencies: list[float] = []
    done = False
    while not done:
        items = [q.get()]
        while True:  # drain what queued up while the model ran
            try:
                items.append(q.get_nowait())
            except queue.Empty:
                break
        for chunk in items:
            if chunk is None:
                done = True
                break
            for out in transcriber.feed(chunk):
                if isinstance(out, (Segment, Turn)):
                    now = time.monotonic()
                    end_ms = speech_end(speech[out.channel], out.end_ms)
                    fed_at = next((t for fed_ms, t in list(fed) if fed_ms >= end_ms), now)
                    if isinstance(out, Turn):
                        turn_latencies.append(now - fed_at)
                    else:
                        segments.append(out)
                        latencies.append(now - fed_at)
    segments += [s for s in transcriber.flush() if isinstance(s, Segment)]
    thread.join()
    return segments, latencies, turn_latencies


def speech_regions(samples) -> list[tuple[int, int]]:
    """Where speech really is (ms), by faster-whisper's batch VAD without padding."""
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    opts = VadOptions(min_silence_duration_ms=100, speech_pad_ms=0)
    return [(r["start"] // 16, r["end"] // 16) for r in get_speech_timestamps(samples, opts)]


def speech_end(regions: list[tuple[int, int]], end_ms: int) -> int:
    """The moment the audio of a segment ending at `end_ms` really ended.

    Word alignment can stretch a last word into the following silence; latency is counted
    from the end of the speech, not from the stretched timestamp.
    """
    before = [r for r in regions if r[0] <= end_ms]
    if before and before[-1][1] < end_ms:
        return before[-1][1]
    return end_ms


def la2_baseline(model, samples, *, chunk_s: float = 1.0, max_buffer_s: float = 15.0) -> tuple[str, list[float]]:
    """The comparison point: a plain LocalAgreement-2 loop over 1 s chunks (whisper_streaming style).

    Every second, faster-whisper transcribes the whole uncommitted buffer (30 s padding, word
    timestamps, its VAD filter, committed text as prompt); words two successive hypotheses agree on are
    committed; the buffer is trimmed at the last committed word once it exceeds 15 s. Latency
    is simulated on a virtual clock: each step starts when its audio has arrived and the
    previous step has finished, and costs its measured compute time; a commit's latency is
    that clock minus the end of its last word. Returns (text, latencies).
    """
    from copilot.asr.commit import normalise_word

    rate = 16_000
    duration = len(samples) / rate
    buffer_start = committed_end = clock = 0.0
    previous: list[tuple[str, float, float]] = []
    committed: list[str] = []
    latencies: list[float] = []
    t = chunk_s
    while True:
        t = min(t, duration)
        clock = max(clock, t)
        t0 = time.perf_counter()
        segs, _ = model.transcribe(
            samples[int(buffer_start * rate) : int(t * rate)],
            beam_size=1,
            temperature=0.0,
            condition_on_previous_text=False,
            word_timestamps=True,
            vad_filter=True,
            initial_prompt=" ".join(committed)[-200:] or None,
        )
        words = [(w.word, buffer_start + w.start, buffer_start + w.end) for seg in segs for w in seg.words or []]
        clock += time.perf_counter() - t0
        words = [w for w in words if w[1] >= committed_end - 0.05]
        final = t >= duration
        agreed = words if final else []
        if not final:
            for new, old in zip(words, previous):
                if normalise_word(new[0]) != normalise_word(old[0]):
                    break
                agreed.append(new)
        if agreed:
            committed += [w[0].strip() for w in agreed]
            committed_end = agreed[-1][2]
            latencies.append(max(0.0, clock - float(committed_end)))
        previous = words[len(agreed) :]
        if t - buffer_start > max_buffer_s and committed_end > buffer_start:
            buffer_start = committed_end
        if final:
            return " ".join(committed), latencies
        t += chunk_s


def one_shot(model, case: Case, beam_size: int = 1) -> list[str]:
    """faster-whisper's own transcription of each whole channel: greedy (beam 1, temperature 0,
    no conditioning) or, with `beam_size=5`, its defaults (temperature fallback, conditioning)."""
    from copilot.audio.file_source import FileSource

    source = FileSource(case.path, mono=case.mono)
    texts = []
    options = {"temperature": 0.0, "condition_on_previous_text": False} if beam_size == 1 else {}
    for ch in range(source.samples.shape[0]):
        segs, _ = model.transcribe(source.samples[ch], beam_size=beam_size, vad_filter=True, **options)
        texts.append(" ".join(s.text.strip() for s in segs))
    return texts


def channel_texts(segments: Sequence, channels: int) -> list[str]:
    return [
        " ".join(s.text for s in sorted(segments, key=lambda s: s.start_ms) if s.channel == ch)
        for ch in range(channels)
    ]


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ------------------------------------------------------------------ command


def add_arguments(p: argparse.ArgumentParser) -> None:
    add_asr_arguments(p)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--files",
        nargs="+",
        default=None,
        metavar="FILE",
        help="audio files to use instead of the default set (no WER without references)",
    )
    p.add_argument("--no-realtime", action="store_true", help="skip the real-time replay (no latency figures)")
    p.add_argument(
        "--baseline",
        action="store_true",
        help="also run a plain LocalAgreement-2 loop over 1 s chunks on the synthetic interview",
    )


def run(args: argparse.Namespace) -> int:
    from copilot.asr.device import cpu_cores
    from copilot.asr.engine import load_model
    from copilot.audio.file_source import FileSource

    if args.files:
        cases = [Case(Path(f).stem, Path(f), None) for f in args.files]
        for case in cases:
            FileSource(case.path)  # fail fast, naming the file
    else:
        cases = default_cases()
    model = load_model(args.model, args.device, args.compute_type)
    device = getattr(model, "copilot_device", None)
    results: list[CaseResult] = []
    for case in cases:
        segs, turns, wall, cpu, audio_s = stream_fast(model, case, emit_partials=False)
        channels = FileSource(case.path, mono=case.mono).samples.shape[0]
        r = CaseResult(
            case.name,
            case.kind,
            round(audio_s, 2),
            channels,
            len(segs),
            rtf=wall / audio_s,
            cpu_rtf=cpu / audio_s,
            turns=len(turns),
        )
        r.stream_text = channel_texts(segs, channels)
        r.turn_text = channel_texts(turns, channels)
        if case.references:
            r.ref_words = sum(len(normalize_text(ref).split()) for ref in case.references)
            r.stream_wer = _case_wer(case.references, r.stream_text)
            r.turn_wer = _case_wer(case.references, r.turn_text)
            r.oneshot_wer = _case_wer(case.references, one_shot(model, case))
            r.oneshot5_wer = _case_wer(case.references, one_shot(model, case, beam_size=5))
        if not args.no_realtime:
            _, r.latencies_s, r.turn_latencies_s = stream_realtime(model, case)
        results.append(r)
    report = summarize(results, args, device, cpu_cores())
    if args.baseline:
        report["baseline_la2_1s"] = run_baseline(model, [c for c in cases if c.references])
    if args.json:
        print(json.dumps(report, indent=1))
    else:
        print_report(report)
    return 0


def _case_wer(references: Sequence[str], texts: Sequence[str]) -> float:
    errs = n = 0
    for ref, hyp in zip(references, texts):
        e, k = word_errors(ref, hyp)
        errs, n = errs + e, n + k
    return errs / max(1, n)


def run_baseline(model, cases: list[Case]) -> dict:
    """LA-2 over 1 s chunks on the synthetic interview (or the first file with references)."""
    from copilot.audio.file_source import FileSource

    case = next((c for c in cases if c.kind == "synthetic"), cases[0] if cases else None)
    if case is None:
        return {}
    source = FileSource(case.path, mono=case.mono)
    lat: list[float] = []
    errs = n = 0
    for ch, ref in enumerate(case.references or []):
        text, latencies = la2_baseline(model, source.samples[ch])
        lat += latencies
        e, k = word_errors(ref, text)
        errs, n = errs + e, n + k
    return {
        "file": case.name,
        "latency_median_s": round(float(statistics.median(lat)), 3) if lat else None,
        "latency_p95_s": round(float(percentile(lat, 0.95)), 3) if lat else None,
        "commits": len(lat),
        "wer": round(errs / max(1, n), 4),
        "note": "simulated clock; each channel on its own worker (optimistic for the baseline)",
    }


def summarize(results: list[CaseResult], args, device, cores: int) -> dict:
    lat = [x for r in results for x in r.latencies_s]
    turn_lat = [x for r in results for x in r.turn_latencies_s]
    total_audio = sum(r.audio_s for r in results)

    def group_wer(kind: str, attr: str) -> float | None:
        rs = [r for r in results if r.kind == kind and getattr(r, attr) is not None]
        n = sum(r.ref_words for r in rs)
        return round(sum(getattr(r, attr) * r.ref_words for r in rs) / n, 4) if n else None

    report = {
        "model": args.model,
        "device": device.describe() if device else args.device,
        "cpu_cores": cores,
        "rtf": round(sum(r.rtf * r.audio_s for r in results) / total_audio, 3) if total_audio else None,
        "cpu_rtf": round(sum(r.cpu_rtf * r.audio_s for r in results) / total_audio, 3) if total_audio else None,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "latency_median_s": round(statistics.median(lat), 3) if lat else None,
        "latency_p95_s": round(percentile(lat, 0.95), 3) if lat else None,
        "latency_max_s": round(max(lat), 3) if lat else None,
        "latency_segments": len(lat),
        "turn_latency_median_s": round(statistics.median(turn_lat), 3) if turn_lat else None,
        "turn_latency_p95_s": round(percentile(turn_lat, 0.95), 3) if turn_lat else None,
        "latency_turns": len(turn_lat),
        "wer": {
            kind: {
                "streaming": group_wer(kind, "stream_wer"),
                "turns": group_wer(kind, "turn_wer"),
                "one_shot": group_wer(kind, "oneshot_wer"),
                "one_shot_beam5": group_wer(kind, "oneshot5_wer"),
            }
            for kind in ("real", "synthetic")
        },
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "targets": TARGETS,
        "files": [
            {
                k: (round(v, 4) if isinstance(v, float) else v)
                for k, v in asdict(r).items()
                if k not in ("latencies_s", "turn_latencies_s")
            }
            | {"latency_median_s": round(statistics.median(r.latencies_s), 3) if r.latencies_s else None}
            for r in results
        ],
    }
    return report


def print_report(rep: dict) -> None:
    def ok(key: str, value) -> str:
        if value is None:
            return ""
        return "ok" if value <= TARGETS[key] else "MISSED"

    print(f"copilot bench asr: model {rep['model']} on {rep['device']} ({rep['cpu_cores']} cores)")
    print(f"  (load average {rep['load_average']}: other work on this machine inflates wall-clock figures)")
    print(
        f"  real-time factor      {rep['rtf']}   (target <= {TARGETS['rtf']}) {ok('rtf', rep['rtf'])}   "
        f"CPU-seconds per audio second {rep['cpu_rtf']}"
    )
    print(
        f"  latency median        {rep['latency_median_s']} s (target <= {TARGETS['latency_median_s']}) "
        f"{ok('latency_median_s', rep['latency_median_s'])}"
    )
    print(
        f"  latency p95           {rep['latency_p95_s']} s (target <= {TARGETS['latency_p95_s']}) "
        f"{ok('latency_p95_s', rep['latency_p95_s'])}   max {rep['latency_max_s']} s over "
        f"{rep['latency_segments']} segments"
    )
    print(
        f"  turn settles after    {rep['turn_latency_median_s']} s median "
        f"(target <= {TARGETS['turn_latency_median_s']}) {ok('turn_latency_median_s', rep['turn_latency_median_s'])}"
        f"   p95 {rep['turn_latency_p95_s']} s over {rep['latency_turns']} turns"
    )
    for kind, w in rep["wer"].items():
        if w["streaming"] is not None:
            print(
                f"  WER {kind:<10}        fragments {w['streaming']:.3f}   turns {w['turns']:.3f}   "
                f"one-shot beam 1 {w['one_shot']:.3f}   beam 5 {w['one_shot_beam5']:.3f}"
            )
    print(
        f"  peak RSS              {rep['peak_rss_mb']} MB (target <= {TARGETS['peak_rss_mb']}) "
        f"{ok('peak_rss_mb', rep['peak_rss_mb'])}"
    )
    base = rep.get("baseline_la2_1s")
    if base:
        print(
            f"  baseline LA-2 / 1 s   latency median {base['latency_median_s']} s, p95 {base['latency_p95_s']} s, "
            f"WER {base['wer']:.3f} on {base['file']} ({base['note']})"
        )
    for f in rep["files"]:
        sw = "-" if f["stream_wer"] is None else f"{f['stream_wer']:.3f}"
        ow = "-" if f["oneshot_wer"] is None else f"{f['oneshot_wer']:.3f}"
        tw = "-" if f["turn_wer"] is None else f"{f['turn_wer']:.3f}"
        o5 = "-" if f["oneshot5_wer"] is None else f"{f['oneshot5_wer']:.3f}"
        print(
            f"    {f['name']:<8} {f['audio_s']:>6.1f} s  rtf {f['rtf']:.3f} (cpu {f['cpu_rtf']:.3f})  WER fragments {sw} "
            f"turns {tw} one-shot {ow} / beam 5 {o5}  "
            f"latency median {f['latency_median_s']}"
        )
