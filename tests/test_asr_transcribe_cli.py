"""`copilot transcribe` end to end through a subprocess: output formats and bad inputs."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import requires_shared, run_copilot, shared_audio

pytestmark = [pytest.mark.audio]


def transcribe(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return run_copilot("transcribe", *args, timeout=timeout)


def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode != 0
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("copilot: error: ") and "Traceback" not in proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> Path:
    from tests.synth import write_audio

    path = tmp_path_factory.mktemp("cli") / "tone.wav"
    t = np.arange(16000 * 2) / 16000
    write_audio((0.1 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)[None], path)
    return path


def test_missing_file(tmp_path):
    missing = tmp_path / "nope.wav"
    assert_one_line_error(transcribe(str(missing)), str(missing))


def test_empty_file(tmp_path):
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    assert_one_line_error(transcribe(str(empty)), str(empty))


def test_truncated_file(tmp_path, wav):
    cut = tmp_path / "cut.wav"
    cut.write_bytes(wav.read_bytes()[: 44 + 1000])
    assert_one_line_error(transcribe(str(cut)), str(cut))


def test_non_audio_file(tmp_path):
    text = tmp_path / "notes.wav"
    text.write_text("these are meeting notes, not audio\n" * 50)
    assert_one_line_error(transcribe(str(text)), str(text))


def test_unknown_model_and_nothing_written(tmp_path, wav):
    out = tmp_path / "out.vtt"
    proc = transcribe(str(wav), "--model", "no-such-model", "--format", "vtt", "-o", str(out))
    assert_one_line_error(proc, "no-such-model")
    assert list(tmp_path.iterdir()) == []


@requires_shared
def test_missing_device():
    import ctranslate2

    if ctranslate2.get_cuda_device_count() > 0:
        pytest.skip("this machine has a CUDA GPU, so --device cuda is not missing")
    proc = transcribe(str(shared_audio("jfk.flac")), "--device", "cuda")
    assert_one_line_error(proc, "cuda")


@requires_shared
def test_jsonl_prints_one_object_per_final_segment(tmp_path):
    proc = transcribe(str(shared_audio("stereo_diarization.wav")), "--speakers", "alice,bob")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert rows and all(set(r) == {"speaker", "start_ms", "end_ms", "text"} for r in rows)
    assert all(isinstance(r["start_ms"], int) and r["start_ms"] < r["end_ms"] for r in rows)
    by = {r["speaker"]: " ".join(x["text"] for x in rows if x["speaker"] == r["speaker"]).lower() for r in rows}
    assert "horizon" in by["bob"] and "wizard" in by["alice"]


@requires_shared
def test_partials_and_vtt_output(tmp_path):
    proc = transcribe(str(shared_audio("jfk.flac")), "--partials")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert any(r.get("partial") for r in rows) and any("partial" not in r for r in rows)
    out = tmp_path / "jfk.vtt"
    proc = transcribe(str(shared_audio("jfk.flac")), "--format", "vtt", "-o", str(out))
    assert proc.returncode == 0 and proc.stdout == ""
    vtt = out.read_text()
    assert vtt.startswith("WEBVTT") and "-->" in vtt and "country" in vtt.lower()
    assert [p.name for p in tmp_path.iterdir()] == ["jfk.vtt"]


def test_speaker_names_must_match_channels(wav):
    assert_one_line_error(transcribe(str(wav), "--speakers", "a,b"), str(wav))
