"""FileSource and the decoder: real recordings, any rate/channel count, chunk order, pacing, bad input."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from copilot.audio.base import SAMPLE_RATE
from copilot.audio.decode import decode_audio
from copilot.audio.demo import DEMO_AUDIO, DEMO_SCRIPT, DEMO_SPEAKERS
from copilot.audio.file_source import FileSource
from copilot.errors import AudioInputError, CopilotError
from tests.conftest import requires_shared, shared_audio
from tests.synth import espeak_dialogue

REPO = Path(__file__).resolve().parent.parent


def sox(*args: str) -> None:
    subprocess.run(["sox", "-D", *args], check=True, capture_output=True)


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[spectrum.argmax()])


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


# ---------------------------------------------------------------- real recordings


@requires_shared
def test_jfk_is_one_speaker_at_16k():
    # jfk.flac is 44.1 kHz "stereo" with the same speech on both channels: one speaker, not two.
    src = FileSource(shared_audio("jfk.flac"))
    assert src.speakers == ["speaker"]
    assert src.audio.source_rate == 44100 and src.audio.source_channels == 2 and src.audio.dual_mono
    assert src.samples.dtype == np.float32 and src.samples.shape == (1, 11 * SAMPLE_RATE)
    assert 0.05 < rms(src.samples) < 0.5 and np.abs(src.samples).max() <= 1.0
    # Forcing a split keeps both channels.
    assert FileSource(shared_audio("jfk.flac"), mono=False).speakers == ["interviewer", "candidate"]


@requires_shared
def test_stereo_file_is_two_speakers_one_per_channel():
    src = FileSource(shared_audio("stereo_diarization.wav"))
    assert src.speakers == ["interviewer", "candidate"]
    assert src.samples.shape == (2, 5 * SAMPLE_RATE)
    left, right = src.samples
    assert rms(left) > 0.01 and rms(right) > 0.01 and abs(np.corrcoef(left, right)[0, 1]) < 0.2
    renamed = FileSource(shared_audio("stereo_diarization.wav"), speakers=["a", "b"])
    assert renamed.speakers == ["a", "b"]
    assert {c.speaker for c in renamed.chunks() if c.channel == 1} == {"b"}
    assert FileSource(shared_audio("stereo_diarization.wav"), speakers="x,y").speakers == ["x", "y"]


@requires_shared
def test_ami_clip_decodes():
    src = FileSource(shared_audio("ami/ES2011a.Headset-0-40s-46s.wav"))
    assert src.speakers == ["speaker"] and src.samples.shape == (1, 6 * SAMPLE_RATE)
    assert rms(src.samples) > 0.005


def test_demo_recording_matches_its_script():
    src = FileSource(DEMO_AUDIO)
    assert src.speakers == DEMO_SPEAKERS == ["interviewer", "candidate"]
    assert 60_000 <= src.duration_ms <= 90_000
    assert DEMO_AUDIO.stat().st_size < 1.5e6
    for turn in DEMO_SCRIPT:
        ch = turn["channel"]
        assert DEMO_SPEAKERS[ch] == turn["speaker"]
        a, b = turn["start_ms"] * 16, turn["end_ms"] * 16
        assert rms(src.samples[ch, a:b]) > 0.02, turn  # speech where the script says
        assert np.abs(src.samples[1 - ch, a:b]).max() < 1e-3, turn  # the other channel is silent
    kinds = {t for turn in DEMO_SCRIPT for t in turn["tags"]}
    assert kinds == {"requirement_gathering", "tradeoff_articulation", "steering_decision"}


# ---------------------------------------------------------------- rates, channels, formats


def test_44k1_stereo_is_resampled_per_channel(tmp_path):
    path = tmp_path / "tones.wav"
    sox(
        "-n",
        "-r",
        "44100",
        "-c",
        "2",
        "-b",
        "16",
        str(path),
        "synth",
        "1.5",
        "sine",
        "440",
        "sine",
        "1000",
        "gain",
        "-6",
    )
    src = FileSource(path)
    assert src.audio.source_rate == 44100 and src.speakers == ["interviewer", "candidate"]
    assert abs(src.samples.shape[1] - int(1.5 * SAMPLE_RATE)) <= 2
    assert abs(dominant_hz(src.samples[0]) - 440) < 5
    assert abs(dominant_hz(src.samples[1]) - 1000) < 5
    assert 0.3 < rms(src.samples[0]) < 0.4  # a -6 dBFS sine has RMS 0.354: level kept


def test_more_than_two_channels_keeps_the_first_two(tmp_path):
    path = tmp_path / "quad.flac"
    sox(
        "-n",
        "-r",
        "22050",
        "-c",
        "4",
        str(path),
        "synth",
        "1",
        "sine",
        "300",
        "sine",
        "600",
        "sine",
        "900",
        "sine",
        "1200",
        "gain",
        "-6",
    )
    src = FileSource(path)
    assert src.audio.source_channels == 4 and src.samples.shape[0] == 2
    assert abs(dominant_hz(src.samples[0]) - 300) < 5 and abs(dominant_hz(src.samples[1]) - 600) < 5


@pytest.mark.parametrize("suffix", [".ogg", ".flac", ".mp3"])
def test_compressed_formats(tmp_path, suffix):
    wav = tmp_path / "d.wav"
    espeak_dialogue([("interviewer", "How many users?"), ("candidate", "About a million a day.")], wav)
    path = tmp_path / f"d{suffix}"
    sox(str(wav), str(path))
    src = FileSource(path)
    assert src.speakers == ["interviewer", "candidate"]
    ref = FileSource(wav)
    assert abs(src.duration_ms - ref.duration_ms) < 120  # codecs pad a few ms
    assert rms(src.samples[0]) > 0.01 and rms(src.samples[1]) > 0.01


def test_mono_file_with_custom_name_and_mismatched_names(tmp_path):
    path = tmp_path / "m.wav"
    sox("-n", "-r", "8000", "-c", "1", str(path), "synth", "0.5", "sine", "300")
    assert FileSource(path, speakers=["alice"]).speakers == ["alice"]
    assert FileSource(path).samples.shape == (1, 8000)
    with pytest.raises(AudioInputError, match=r"m\.wav: has one channel \(mono\) but 2 speaker name"):
        FileSource(path, speakers=["a", "b"])
    with pytest.raises(AudioInputError, match="names must differ"):
        FileSource(path, speakers="a,a")


# ---------------------------------------------------------------- chunking, order, pacing


def test_chunks_interleave_channels_in_time_order(tmp_path):
    path = tmp_path / "tones.wav"
    sox("-n", "-r", "16000", "-c", "2", str(path), "synth", "1.05", "sine", "440", "sine", "1000")
    src = FileSource(path, chunk_ms=100)
    chunks = list(src.chunks())
    assert [c.channel for c in chunks] == [0, 1] * 11
    assert [c.start_ms for c in chunks[::2]] == [c.start_ms for c in chunks[1::2]] == list(range(0, 1100, 100))
    assert all(c.samples.dtype == np.float32 and c.samples.ndim == 1 for c in chunks)
    assert [len(c.samples) for c in chunks[:2]] == [1600, 1600] and len(chunks[-1].samples) == 800
    assert chunks[-1].end_ms == 1050
    for ch in (0, 1):
        joined = np.concatenate([c.samples for c in chunks if c.channel == ch])
        assert np.array_equal(joined, src.samples[ch])
    assert [len(c.samples) for c in FileSource(path, chunk_ms=30).chunks()][:2] == [480, 480]


def test_realtime_pacing_follows_the_clock(tmp_path):
    path = tmp_path / "tone.wav"
    sox("-n", "-r", "16000", "-c", "2", str(path), "synth", "1.5", "sine", "440", "sine", "660")
    src = FileSource(path, realtime=True)
    t0 = time.monotonic()
    lags = []
    for chunk in src.chunks():
        # A chunk is released once its audio has "happened", never before.
        lags.append(time.monotonic() - t0 - chunk.end_ms / 1000)
    elapsed = time.monotonic() - t0
    assert 0.9 * 1.5 <= elapsed < 1.5 + 0.5
    assert min(lags) > -0.02
    fast = FileSource(path, realtime=True, speed=3.0)
    t0 = time.monotonic()
    list(fast.chunks())
    assert 0.45 <= time.monotonic() - t0 < 1.0
    t0 = time.monotonic()
    list(FileSource(path).chunks())
    assert time.monotonic() - t0 < 0.3  # not realtime: as fast as possible


def test_close_stops_a_realtime_replay(tmp_path):
    path = tmp_path / "long.wav"
    sox("-n", "-r", "16000", "-c", "1", str(path), "synth", "10", "sine", "440")
    src = FileSource(path, realtime=True)
    got = []
    thread = threading.Thread(target=lambda: got.extend(src.chunks()))
    thread.start()
    deadline = time.monotonic() + 5
    while len(got) < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    t_close = time.monotonic()
    src.close()
    thread.join(timeout=2)
    assert not thread.is_alive() and time.monotonic() - t_close < 0.5  # close interrupts the wait
    assert 3 <= len(got) <= 5  # not the 100 chunks of the whole file


# ---------------------------------------------------------------- bad input


def _truncated_flac(tmp_path: Path) -> Path:
    good = tmp_path / "good.flac"
    sox("-n", "-r", "16000", "-c", "1", str(good), "synth", "3", "pinknoise")
    data = good.read_bytes()
    path = tmp_path / "cut.flac"
    path.write_bytes(data[: len(data) // 2])
    return path


def _truncated_wav(tmp_path: Path) -> Path:
    good = tmp_path / "good.wav"
    sox("-n", "-r", "16000", "-c", "2", str(good), "synth", "2", "sine", "440", "sine", "660")
    path = tmp_path / "cut.wav"
    path.write_bytes(good.read_bytes()[:20000])
    return path


def _bad(tmp_path: Path, kind: str) -> Path:
    p = tmp_path / f"bad-{kind}.wav"
    if kind == "missing":
        return tmp_path / "nope.wav"
    if kind == "directory":
        p.mkdir()
    elif kind == "empty":
        p.write_bytes(b"")
    elif kind == "text":
        p = tmp_path / "notes.txt"
        p.write_text("this is not audio\n" * 50)
    elif kind == "random":
        p.write_bytes(np.random.default_rng(0).bytes(5000))
    elif kind == "truncated-flac":
        p = _truncated_flac(tmp_path)
    elif kind == "truncated-wav":
        p = _truncated_wav(tmp_path)
    elif kind == "header-only":
        good = tmp_path / "g.wav"
        sox("-n", "-r", "16000", "-c", "1", str(good), "trim", "0", "0")
        p = good
    return p


BAD = {
    "missing": "no such file",
    "directory": "is a directory",
    "empty": "empty file",
    "text": "not an audio file",
    "random": "not an audio file",
    "truncated-flac": "truncated",
    "truncated-wav": "truncated WAV",
    "header-only": "no audio samples",
}


@pytest.mark.parametrize("kind", list(BAD))
def test_bad_input_is_one_line_naming_the_file(tmp_path, kind):
    path = _bad(tmp_path, kind)
    with pytest.raises(AudioInputError) as err:
        FileSource(path)
    message = str(err.value)
    assert isinstance(err.value, CopilotError)
    assert message.startswith(f"{path}: ") and BAD[kind] in message and "\n" not in message, message


def test_decode_rejects_a_file_without_audio_stream(tmp_path):
    import av

    path = tmp_path / "video.mkv"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("ffv1", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((32, 32, 3), i * 40, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with pytest.raises(AudioInputError, match=r"video\.mkv: has no audio stream"):
        decode_audio(path)


@pytest.mark.audio
def test_cli_transcribe_bad_input_is_one_line(tmp_path):
    from copilot.cli import build_parser

    try:
        build_parser().parse_args(["transcribe", "x.wav"])
    except SystemExit:
        pytest.fail("`copilot transcribe` is not registered yet (A2's command)")
    for kind in ("missing", "empty", "text", "truncated-wav"):
        path = _bad(tmp_path, kind)
        proc = subprocess.run(
            [sys.executable, "-m", "copilot", "transcribe", str(path)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=60,
            env=dict(os.environ),
        )
        assert proc.returncode == 2, (kind, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("copilot: error: ") and str(path) in lines[0], proc.stderr
        assert BAD[kind] in lines[0] and proc.stdout == ""
