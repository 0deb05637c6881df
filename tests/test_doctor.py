"""`copilot doctor`: real checks of this environment, a fix for each problem, exit code, no secrets."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from copilot.asr import models
from copilot.cli import doctor

REPO = Path(__file__).resolve().parent.parent
SECRET = "sk-test-do-not-print-0123456789"


def by_name(checks):
    return {c.name: c for c in checks}


def test_missing_default_model_fails_with_its_fix(tmp_path, monkeypatch):
    monkeypatch.setenv("COPILOT_MODELS_DIR", str(tmp_path))
    checks = by_name(doctor.run_checks())
    tiny = checks["model tiny.en"]
    assert tiny.status == doctor.FAIL and tiny.required and tiny.fix == "copilot models install tiny.en"
    assert checks["model base"].status == doctor.WARN and not checks["model base"].required
    assert checks["tagger classifier"].status == doctor.WARN and checks["tagger classifier"].fix
    assert not doctor.healthy(list(checks.values()))
    report = doctor.format_report(list(checks.values()))
    assert "fix: copilot models install tiny.en" in report and "required part(s) missing: model tiny.en" in report


@pytest.mark.slow
def test_installed_model_and_this_venv_are_healthy(tmp_path, monkeypatch):
    monkeypatch.setenv("COPILOT_MODELS_DIR", str(tmp_path))
    models.install("tiny.en", allow_download=False)
    checks = doctor.run_checks()
    named = by_name(checks)
    assert named["model tiny.en"].status == doctor.OK and "verified" in named["model tiny.en"].detail
    assert named["python"].status == doctor.OK
    assert named["audio backend"].status == doctor.OK and "PortAudio" in named["audio backend"].detail
    assert named["spacy"].status == doctor.OK and named["spacy lookups"].status == doctor.OK
    assert "--device auto -> cpu int8" in named["compute"].detail or "cuda" in named["compute"].detail
    assert doctor.healthy(checks), doctor.format_report(checks)
    assert {
        "python",
        "model tiny.en",
        "model base",
        "faster-whisper",
        "compute",
        "audio backend",
        "input devices",
        "spacy",
        "spacy lookups",
        "en_core_web_sm",
        "tagger classifier",
        "llm",
        "browser tests",
    } <= set(named)
    for c in checks:
        # Healthy means every required part is ok; an optional part may only warn, and says how to fix it.
        if c.required:
            assert c.status == doctor.OK, c
        else:
            assert c.status == doctor.OK or (c.status == doctor.WARN and c.fix), c


def test_llm_settings_never_print_the_key(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    monkeypatch.setenv("COPILOT_LLM", "openai/gpt-4o-mini")
    (llm,) = doctor.check_llm()
    assert "OPENAI_API_KEY" in llm.detail and "openai/gpt-4o-mini" in llm.detail and SECRET not in llm.detail


def test_a_crashing_check_is_a_row_not_a_traceback():
    def boom():
        raise RuntimeError("kaput")

    (row,) = doctor._guard("thing", True, boom)
    assert row.status == doctor.FAIL and "kaput" in row.detail and not doctor.healthy([row])


def test_cli_doctor_exit_code_and_json(tmp_path):
    env = dict(os.environ, COPILOT_MODELS_DIR=str(tmp_path), OPENAI_API_KEY=SECRET)
    proc = subprocess.run(
        [sys.executable, "-m", "copilot", "doctor", "--json"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert SECRET not in proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False
    rows = {c["name"]: c for c in report["checks"]}
    assert (
        rows["model tiny.en"]["status"] == "fail" and rows["model tiny.en"]["fix"] == "copilot models install tiny.en"
    )
    assert "OPENAI_API_KEY" in rows["llm"]["detail"]
