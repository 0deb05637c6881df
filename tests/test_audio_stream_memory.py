"""The file source streams (issue 11, soak): a long file replays in memory far below its decoded
size, and damage deep inside a file is a one-line error when the replay reaches it."""

from __future__ import annotations

import subprocess
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from copilot.audio.base import SAMPLE_RATE
from copilot.audio.file_source import FileSource
from copilot.errors import AudioInputError


def sox(*args: str) -> None:
    subprocess.run(["sox", "-D", *args], check=True, capture_output=True)


def dominant_hz(x: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[spectrum.argmax()])


@pytest.mark.slow
def test_a_25_minute_file_streams_in_bounded_memory(tmp_path):
    minutes = 25
    path = tmp_path / "long.flac"
    # 44.1 kHz, so every block also goes through the resampler; two tones, so it stays two speakers.
    sox(
        "-n", "-r", "44100", "-c", "2", "-b", "16", str(path), "synth", str(minutes * 60), "sine", "440", "sine", "1000"
    )
    decoded_bytes = minutes * 60 * SAMPLE_RATE * 2 * 4  # what a whole-file float32 decode holds: 192 MB

    tracemalloc.start()
    try:
        src = FileSource(path, chunk_ms=1000)
        assert src.speakers == ["interviewer", "candidate"]
        n = {0: 0, 1: 0}
        last_end = 0
        middle: dict[int, np.ndarray] = {}
        for chunk in src.chunks():
            n[chunk.channel] += len(chunk.samples)
            last_end = chunk.end_ms
            if chunk.start_ms == 12 * 60_000:
                middle[chunk.channel] = chunk.samples
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert abs(n[0] - minutes * 60 * SAMPLE_RATE) <= 2 and n[0] == n[1]
    assert abs(last_end - minutes * 60_000) <= 1 and abs(src.duration_ms - minutes * 60_000) <= 1
    assert abs(dominant_hz(middle[0]) - 440) < 3 and abs(dominant_hz(middle[1]) - 1000) < 3
    # The old whole-file decode allocated all 192 MB at once; streaming holds a few blocks.
    assert peak < decoded_bytes / 20, f"peak {peak / 2**20:.1f} MB for {decoded_bytes / 2**20:.0f} MB of audio"


def _corrupt_middle(tmp_path: Path) -> Path:
    good = tmp_path / "good.flac"
    sox("-R", "-n", "-r", "16000", "-c", "1", str(good), "synth", "40", "pinknoise")
    data = bytearray(good.read_bytes())
    mid, size = len(data) // 2, len(data) // 8  # about 5 s of frames
    data[mid : mid + size] = np.random.default_rng(1).bytes(size)  # same length: nothing looks truncated
    path = tmp_path / "damaged.flac"
    path.write_bytes(bytes(data))
    return path


def test_damage_past_the_probe_is_one_line_from_chunks(tmp_path):
    path = _corrupt_middle(tmp_path)
    src = FileSource(path)  # the first seconds decode and the packets add up: it starts
    heard_ms = 0
    with pytest.raises(AudioInputError) as err:
        for chunk in src.chunks():
            heard_ms = chunk.end_ms
    message = str(err.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    assert "corrupt or truncated" in message, message
    assert heard_ms > 30_000  # everything that decoded was delivered before the error
