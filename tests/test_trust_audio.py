"""Issue 11, findings 1 and 2: kept audio survives a crash, and a deleted session leaves nothing behind.

The crash is real: a child process keeps audio with the real AudioKeeper and is SIGKILLed while the
recording is open, so the temporary WAV is exactly what a killed `live --keep-audio` leaves.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.audio.decode import decode_audio
from copilot.events import Event, Note, Segment, SessionStarted
from copilot.session.audio_keeper import AudioKeeper, recorded_ms, recording_path, recover_recording
from copilot.session.store import SessionStore

REPO = Path(__file__).resolve().parent.parent
FREQS = (440.0, 660.0)

_CRASH = r"""
import os, signal, sys, time
import numpy as np
from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.session.audio_keeper import AudioKeeper
final, seconds = sys.argv[1], float(sys.argv[2])
freqs = (440.0, 660.0)
keeper = AudioKeeper(final, 2)
block = SAMPLE_RATE // 10
n = int(seconds * SAMPLE_RATE)
for start in range(0, n, block):
    t = np.arange(start, start + block) / SAMPLE_RATE
    for ch, f in enumerate(freqs):
        keeper.write(AudioChunk((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32), ch, "s", start * 1000 // SAMPLE_RATE))
deadline = time.monotonic() + 30
while keeper._written < n and time.monotonic() < deadline:
    time.sleep(0.01)
os.kill(os.getpid(), signal.SIGKILL)  # the recording is still open, its FLAC never written
"""


def _crash_while_keeping(final: Path, seconds: float) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH, str(final), str(seconds)], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert recording_path(final).exists() and not final.exists()


def _tone_chunks(seconds: float, start_ms: int, freqs=FREQS, block_ms: int = 100):
    for k in range(int(seconds * 1000) // block_ms):
        t0 = k * block_ms
        t = np.arange(t0 * SAMPLE_RATE // 1000, (t0 + block_ms) * SAMPLE_RATE // 1000) / SAMPLE_RATE
        for ch, f in enumerate(freqs):
            yield AudioChunk((0.5 * np.sin(2 * np.pi * f * t)).astype(np.float32), ch, "s", start_ms + t0)


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else 0.0


def _dominant_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x))
    return float(np.fft.rfftfreq(len(x), 1 / SAMPLE_RATE)[int(np.argmax(spec))])


def test_continue_appends_to_the_recording_a_crash_left(tmp_path):
    final = tmp_path / "sessions" / "ses_abc.flac"
    _crash_while_keeping(final, 3.0)
    offset = recorded_ms(final)
    assert offset >= 3000

    keeper = AudioKeeper(final, 2)  # `--continue ID --keep-audio`
    for chunk in _tone_chunks(2.0, offset, freqs=(880.0, 330.0)):
        keeper.write(chunk)
    assert keeper.finish() == final
    assert not recording_path(final).exists()

    audio = decode_audio(final, mono=False).samples  # (channels, samples)
    assert audio.shape[0] == 2
    assert abs(audio.shape[1] / SAMPLE_RATE - 5.0) < 0.15
    first = audio[:, : 3 * SAMPLE_RATE]
    later = audio[:, int(3.1 * SAMPLE_RATE) :]
    # The audio of the crashed run is still there (it used to be replaced by silence).
    assert min(_rms(first[0]), _rms(first[1])) > 0.2
    assert abs(_dominant_hz(first[0][SAMPLE_RATE : 2 * SAMPLE_RATE]) - 440) < 5
    assert abs(_dominant_hz(later[0][:SAMPLE_RATE]) - 880) < 5
    assert abs(_dominant_hz(later[1][:SAMPLE_RATE]) - 330) < 5
    assert (final.stat().st_mode & 0o777) == 0o600


def test_continue_again_after_the_flac_was_written_keeps_both_runs(tmp_path):
    final = tmp_path / "sessions" / "ses_two.flac"
    keeper = AudioKeeper(final, 2)
    for chunk in _tone_chunks(1.0, 0):
        keeper.write(chunk)
    keeper.finish()
    keeper = AudioKeeper(final, 2)  # a FLAC and no WAV: the keeper starts from the FLAC
    for chunk in _tone_chunks(1.0, recorded_ms(final), freqs=(880.0, 330.0)):
        keeper.write(chunk)
    keeper.finish()
    audio = decode_audio(final, mono=False).samples
    assert abs(audio.shape[1] / SAMPLE_RATE - 2.0) < 0.1
    assert abs(_dominant_hz(audio[0][: SAMPLE_RATE // 2]) - 440) < 5
    assert abs(_dominant_hz(audio[0][SAMPLE_RATE + 1000 :]) - 880) < 5


def test_continue_with_other_channels_is_a_clear_error(tmp_path):
    from copilot.errors import CopilotError

    final = tmp_path / "sessions" / "ses_mono.flac"
    _crash_while_keeping(final, 0.5)
    with pytest.raises(CopilotError, match="2 channel"):
        AudioKeeper(final, 1)
    assert recording_path(final).exists()  # refused, and nothing was lost


def _cli(*args: str, data: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "copilot", *args, "--data-dir", str(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_sessions_end_recovers_the_recording_into_the_flac(tmp_path):
    data = tmp_path / "data"
    store = SessionStore(data)
    sid = store.create_session(SessionStarted(title="crashed"))
    final = store.audio_path(sid)
    store.close()
    _crash_while_keeping(final, 2.0)

    done = _cli("sessions", "end", sid, data=data)
    assert done.returncode == 0, done.stderr
    assert "audio kept" in done.stdout
    assert not recording_path(final).exists()
    assert [p.name for p in (data / "sessions").iterdir()] == [final.name]  # no raw audio, no temp file
    audio = decode_audio(final, mono=False).samples
    assert abs(audio.shape[1] / SAMPLE_RATE - 2.0) < 0.15 and _rms(audio[1]) > 0.2
    assert (final.stat().st_mode & 0o777) == 0o600


def test_recover_keeps_a_flac_that_already_holds_everything(tmp_path):
    final = tmp_path / "sessions" / "ses_done.flac"
    keeper = AudioKeeper(final, 2)
    for chunk in _tone_chunks(1.0, 0):
        keeper.write(chunk)
    keeper.finish()
    before = final.read_bytes()
    # A crash between the FLAC's rename and the WAV's removal: a shorter, stale WAV beside it.
    import wave

    wav = recording_path(final)
    with wave.open(str(wav), "wb") as w:
        w.setnchannels(2)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(b"\0\0" * 2 * (SAMPLE_RATE // 2))
    assert recover_recording(final) == final
    assert final.read_bytes() == before and not wav.exists()


MARKER = "zebra-quartz-candidate-secret"


def _files_mentioning(root: Path, needles: list[bytes]) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file():
            blob = path.read_bytes()
            hits += [f"{path.name}: {n.decode()}" for n in needles if n in blob]
    return hits


def test_sessions_delete_leaves_nothing_of_the_session_on_disk(tmp_path):
    data = tmp_path / "data"
    store = SessionStore(data)
    keep = store.create_session(SessionStarted(title="another interview"))
    store.append(Event.of(keep, Segment(speaker="candidate", start_ms=0, end_ms=900, text="kept words")))
    sid = store.create_session(SessionStarted(title=f"title {MARKER}"))
    for i in range(200):  # enough pages that freed ones would still hold the text without secure_delete
        store.append(
            Event.of(
                sid,
                Segment(speaker="candidate", start_ms=i * 1000, end_ms=i * 1000 + 900, text=f"{MARKER} utterance {i}"),
            )
        )
    store.append(Event.of(sid, Note(text=f"note {MARKER}")))
    final = store.audio_path(sid)
    store.close()
    # Kept audio from an earlier run, plus the raw recording of a run killed after it.
    keeper = AudioKeeper(final, 2)
    for chunk in _tone_chunks(0.5, 0):
        keeper.write(chunk)
    keeper.finish()
    _crash_while_keeping_over(final)
    (final.parent / f".{final.name}.x1y2.tmp").write_bytes(b"half an encode")
    assert _files_mentioning(data, [MARKER.encode()])  # the scan finds it while it exists

    gone = _cli("sessions", "delete", sid, data=data)
    assert gone.returncode == 0, gone.stderr
    names = [p.name for p in data.rglob("*")]
    assert not [n for n in names if sid in n], names
    assert _files_mentioning(data, [MARKER.encode(), sid.encode()]) == []
    # The other session is untouched.
    store = SessionStore(data)
    assert [e.data.get("text") for e in store.events(keep) if e.type == "segment.final"] == ["kept words"]
    with pytest.raises(Exception, match="no session"):
        store.session_info(sid)


def _crash_while_keeping_over(final: Path) -> None:
    # Like _crash_while_keeping, but a FLAC already exists (a --continue --keep-audio run killed).
    proc = subprocess.run(
        [sys.executable, "-c", _CRASH, str(final), "0.5"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert recording_path(final).exists() and final.exists()


def test_deleting_an_unknown_session_touches_no_file(tmp_path):
    data = tmp_path / "data"
    store = SessionStore(data)
    sid = store.create_session(SessionStarted())
    (data / "sessions").mkdir()
    other = data / "sessions" / f"{sid}.flac"
    other.write_bytes(b"x")
    store.close()
    bad = _cli("sessions", "delete", sid[:-1], data=data)
    assert bad.returncode == 2 and "no session" in bad.stderr and "Traceback" not in bad.stderr
    assert other.exists()
