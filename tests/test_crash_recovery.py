"""SIGKILL in the middle of a replay: every event a client saw is in the store afterwards, and the
session can then be ended, or continued by a new run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

from copilot.audio.demo import DEMO_AUDIO as DEMO
from copilot.session.store import SessionStore
from tests.conftest import run_copilot as _cli

pytestmark = [pytest.mark.audio, pytest.mark.slow]

REPO = Path(__file__).resolve().parent.parent
TOKEN = "crash-test-token"


class _Proc:
    """`python -m copilot ...` with its stdout lines collected by a thread."""

    def __init__(self, *args: str, env_extra: dict[str, str] | None = None) -> None:
        env = {**os.environ, "COPILOT_TOKEN": TOKEN, **(env_extra or {})}
        self.p = subprocess.Popen(
            [sys.executable, "-m", "copilot", *args],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self) -> None:
        assert self.p.stdout is not None
        for line in self.p.stdout:
            self.lines.append(line.rstrip("\n"))

    def value(self, key: str, timeout: float = 90) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.lines:
                if line.startswith(key + "="):
                    return line.split("=", 1)[1]
            if self.p.poll() is not None and not self._t.is_alive():
                break
            time.sleep(0.05)
        err = self.p.stderr.read() if self.p.poll() is not None and self.p.stderr else ""
        raise AssertionError(f"no {key}= line; stdout={self.lines!r} stderr={err[-2000:]!r}")

    def kill(self) -> None:
        if self.p.poll() is None:
            self.p.kill()
        self.p.wait(timeout=10)


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


def _kill_mid_replay(data_dir: Path, *extra: str) -> tuple[str, list[dict]]:
    proc = _Proc("replay", str(DEMO), "--no-browser", "--speed", "2", "--data-dir", str(data_dir), *extra)
    received: list[dict] = []
    try:
        sid = proc.value("COPILOT_SESSION")
        port = proc.value("COPILOT_PORT")
        with connect(f"ws://127.0.0.1:{port}/ws/sessions/{sid}?after=0&token={TOKEN}", open_timeout=10) as ws:
            finals = 0
            deadline = time.monotonic() + 120
            while finals < 3 and time.monotonic() < deadline:
                msg = json.loads(ws.recv(timeout=60))
                received.append(msg)
                finals += msg["type"] == "segment.final"
            assert finals >= 3, "no segments before the deadline"
            os.kill(proc.p.pid, signal.SIGKILL)
            # Drain what was already on the wire before the kill.
            try:
                while True:
                    received.append(json.loads(ws.recv(timeout=2)))
            except Exception:
                pass
    finally:
        proc.kill()
    assert proc.p.returncode == -signal.SIGKILL
    return sid, received


def _check_all_received_are_stored(data_dir: Path, sid: str, received: list[dict]) -> SessionStore:
    store = SessionStore(data_dir)
    stored = {e.seq: e.model_dump(mode="json") for e in store.events(sid)}
    persisted = [m for m in received if m["seq"] is not None]
    assert len(persisted) >= 4
    for m in persisted:
        assert stored.get(m["seq"]) == m, f"event seq {m['seq']} was broadcast but is not in the store"
    assert sorted(stored) == list(range(1, len(stored) + 1))
    assert store.session_info(sid)["status"] == "live"  # nobody ended it
    return store


def test_sigkill_loses_nothing_that_was_broadcast_and_session_can_be_ended(data_dir):
    sid, received = _kill_mid_replay(data_dir)
    store = _check_all_received_are_stored(data_dir, sid, received)
    last = store.last_seq(sid)
    store.close()

    # `copilot serve` shows the interrupted session, still live, with everything stored.
    proc = _Proc("serve", "--no-browser", "--data-dir", str(data_dir))
    try:
        port = proc.value("COPILOT_PORT", timeout=30)
        view = httpx.get(
            f"http://127.0.0.1:{port}/api/sessions/{sid}", headers={"Authorization": f"Bearer {TOKEN}"}
        ).json()
        assert view["status"] == "live" and view["last_seq"] == last
        assert len(view["segments"]) >= 3
    finally:
        proc.p.send_signal(signal.SIGINT)
        proc.p.wait(timeout=20)
    assert proc.p.returncode == 0

    done = _cli("sessions", "end", sid, data=data_dir)
    assert done.returncode == 0, done.stderr
    store = SessionStore(data_dir)
    assert store.session_info(sid)["status"] == "ended"
    assert store.events(sid)[-1].type == "session.ended" and store.last_seq(sid) == last + 1
    again = _cli("sessions", "end", sid, data=data_dir)
    assert again.returncode == 2 and "already ended" in again.stderr and "Traceback" not in again.stderr


def test_sigkill_then_continue_the_session(data_dir):
    sid, received = _kill_mid_replay(data_dir)
    store = _check_all_received_are_stored(data_dir, sid, received)
    before = store.events(sid)
    last_end = max(e.data["end_ms"] for e in before if e.type == "segment.final")
    store.close()
    stereo = REPO / ".." / "shared" / "data" / "audio" / "stereo_diarization.wav"
    if not stereo.exists():
        stereo = DEMO
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot",
            "replay",
            str(stereo),
            "--continue",
            sid,
            "--no-browser",
            "--exit-when-done",
            "--speed",
            "4",
            "--data-dir",
            str(data_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COPILOT_TOKEN": TOKEN},
    )
    assert run.returncode == 0, run.stderr
    store = SessionStore(data_dir)
    after = store.events(sid)
    assert [e.model_dump() for e in after[: len(before)]] == [e.model_dump() for e in before]
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    new_segs = [e for e in after[len(before) :] if e.type == "segment.final"]
    assert new_segs and min(e.data["start_ms"] for e in new_segs) > last_end  # later on the session's clock
    assert after[-1].type == "session.ended" and store.session_info(sid)["status"] == "ended"


def test_sigkill_with_keep_audio_then_continue_keeps_the_audio_of_both_runs(data_dir):
    """Issue 11 finding 1: `--continue --keep-audio` appends to the recording the killed run left."""
    import numpy as np

    from copilot.audio.base import SAMPLE_RATE
    from copilot.audio.decode import decode_audio
    from copilot.session.audio_keeper import recorded_ms, recording_path

    sid, _ = _kill_mid_replay(data_dir, "--keep-audio")
    store = SessionStore(data_dir)
    flac = store.audio_path(sid)
    store.close()
    assert recording_path(flac).exists() and not flac.exists()
    kept_ms = recorded_ms(flac)
    assert kept_ms > 2000
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot",
            "replay",
            str(DEMO),
            "--continue",
            sid,
            "--keep-audio",
            "--no-browser",
            "--exit-when-done",
            "--speed",
            "4",
            "--data-dir",
            str(data_dir),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COPILOT_TOKEN": TOKEN},
    )
    assert run.returncode == 0, run.stderr
    assert not recording_path(flac).exists()
    store = SessionStore(data_dir)
    new_start = min(
        e.data["start_ms"] for e in store.events(sid) if e.type == "segment.final" and e.data["start_ms"] >= kept_ms
    )
    store.close()

    demo = decode_audio(DEMO, mono=False).samples
    kept = decode_audio(flac, mono=False).samples
    n = kept_ms * SAMPLE_RATE // 1000 - SAMPLE_RATE // 10
    # The first run's audio is at the start of the FLAC, sample for sample (it used to be silence).
    assert np.sqrt(np.mean(kept[:, :n] ** 2)) > 0.01
    assert np.max(np.abs(kept[:, :n] - demo[:, :n])) < 2e-3
    # The second run's audio follows, on the clock its transcript uses.
    offset = kept.shape[1] - demo.shape[1]
    assert 0 <= offset - kept_ms * SAMPLE_RATE // 1000 <= 3 * SAMPLE_RATE // 2  # the continue offset
    assert new_start >= offset * 1000 // SAMPLE_RATE
    assert np.max(np.abs(kept[:, offset:] - demo)) < 2e-3
