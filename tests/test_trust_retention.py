"""Retention (issue 11, beyond the findings): `sessions purge --older-than DAYS [--dry-run]` and a
configured `retention_days` applied at start-up delete old sessions' events and audio, and VACUUM
gives the space back. Real SQLite, real CLI subprocesses."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from copilot.events import Event, Segment, SessionEnded, SessionStarted
from copilot.session.store import SessionStore

REPO = Path(__file__).resolve().parent.parent
DAY = 86_400


def _cli(*args: str, data: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "copilot", *args, "--data-dir", str(data)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def _populate(data: Path) -> dict[str, str]:
    """Sessions last active 90 days ago (ended), 40 days ago (left live by a crash) and now."""
    now = time.time()
    ids = {}
    with SessionStore(data) as store:
        for name, age_days, end in (("old", 90, True), ("crashed", 40, False), ("recent", 0, True)):
            sid = store.create_session(SessionStarted(title=name))
            ts = now - age_days * DAY
            store.append_many(
                [
                    Event.of(sid, Segment(speaker="c", start_ms=i, end_ms=i + 1, text=f"{name} " * 200)).model_copy(
                        update={"ts": ts}
                    )
                    for i in range(300)
                ]
            )
            if end:
                store.append(Event.of(sid, SessionEnded()).model_copy(update={"ts": ts}))
            (data / "sessions").mkdir(exist_ok=True)
            store.audio_path(sid).write_bytes(b"fLaC" + b"\0" * 1000)
            ids[name] = sid
    return ids


def test_purge_dry_run_then_for_real(tmp_path):
    data = tmp_path / "data"
    ids = _populate(data)
    size_before = (data / "sessions.db").stat().st_size

    dry = _cli("sessions", "purge", "--older-than", "30", "--dry-run", data=data)
    assert dry.returncode == 0, dry.stderr
    assert ids["old"] in dry.stdout and ids["crashed"] in dry.stdout and ids["recent"] not in dry.stdout
    assert "would delete 2 session(s)" in dry.stdout
    with SessionStore(data) as store:
        assert len(store.list_sessions()) == 3

    real = _cli("sessions", "purge", "--older-than", "30", data=data)
    assert real.returncode == 0, real.stderr
    assert "deleted 2 session(s) older than 30 days" in real.stdout
    with SessionStore(data) as store:
        assert [s["id"] for s in store.list_sessions()] == [ids["recent"]]
    files = sorted(p.name for p in (data / "sessions").iterdir())
    assert files == [f"{ids['recent']}.flac"]
    assert (data / "sessions.db").stat().st_size < size_before * 0.6  # VACUUM gave the space back
    blob = b"".join(p.read_bytes() for p in data.iterdir() if p.is_file())
    assert b"old old" not in blob and b"crashed crashed" not in blob

    none = _cli("sessions", "purge", data=data, env={"COPILOT_CONFIG": str(tmp_path / "absent.toml")})
    assert none.returncode == 2 and "give --older-than DAYS" in none.stderr and "Traceback" not in none.stderr
    bad = _cli("sessions", "purge", "--older-than", "-3", data=data)
    assert bad.returncode == 2 and "more than 0 days" in bad.stderr


def test_configured_retention_is_applied_at_start_up(tmp_path):
    data = tmp_path / "data"
    ids = _populate(data)
    config = tmp_path / "config.toml"
    config.write_text("retention_days = 60\n")
    env = {**os.environ, "COPILOT_CONFIG": str(config), "COPILOT_TOKEN": "t", "PYTHONUNBUFFERED": "1"}
    env.pop("COPILOT_RETENTION_DAYS", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "copilot", "serve", "--no-browser", "--data-dir", str(data)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        line = ""
        while time.monotonic() < deadline and not line.startswith("COPILOT_PORT="):
            line = proc.stdout.readline()
            assert line or proc.poll() is None, proc.stderr.read()
    finally:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=20)
    assert f"retention 60 days: deleted 1 session(s) ({ids['old']})" in err
    with SessionStore(data) as store:
        assert sorted(s["id"] for s in store.list_sessions()) == sorted([ids["crashed"], ids["recent"]])

    config.write_text('retention_days = "forever"\n')
    bad = _cli("sessions", "purge", data=data, env={"COPILOT_CONFIG": str(config)})
    assert bad.returncode == 2 and "retention_days must be a number of days" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
