"""Shared test fixtures.

Real recordings come from `../shared/data` (present in CI and every checkout of this
workplace; a stranger's clone lacks it, so tests that need it skip with that reason).
HOME and the XDG dirs point at a temp folder: onnxruntime and PulseAudio write there.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Mapping

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
AUDIO = SHARED_DATA / "audio"

# pip's cache as the user had it, before HOME moves (the fresh-venv install test reuses it).
PIP_CACHE_DIR = os.environ.get("PIP_CACHE_DIR") or str(
    Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "pip"
)

_home = Path(tempfile.mkdtemp(prefix="copilot-test-home-"))
for var, sub in [
    ("HOME", ""),
    ("XDG_CONFIG_HOME", ".config"),
    ("XDG_CACHE_HOME", ".cache"),
    ("XDG_DATA_HOME", ".local/share"),
    ("XDG_RUNTIME_DIR", "run"),
]:
    path = _home / sub
    path.mkdir(parents=True, exist_ok=True)
    os.environ[var] = str(path)
os.chmod(_home / "run", 0o700)
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
os.environ.setdefault("COPILOT_DATA_DIR", str(_home / "copilot-data"))

requires_shared = pytest.mark.skipif(
    not AUDIO.is_dir(),
    reason="needs ../shared/data (the workplace's real recordings; CI has it, a plain clone does not)",
)


def shared_audio(name: str) -> Path:
    return AUDIO / name


# Debian's chromium, never a downloaded browser; these flags keep it off the network and the GPU.
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
requires_chromium = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="needs Debian's chromium (/usr/bin/chromium)"
)


def run_copilot(
    *args: str, data: Path | None = None, stdin: str = "", env: Mapping[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """`python -m copilot ARGS` from the checkout, as a user runs it; `--data-dir DATA` appended when given."""
    extra = ["--data-dir", str(data)] if data is not None else []
    return subprocess.run(
        [sys.executable, "-m", "copilot", *args, *extra],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


@pytest.fixture(scope="session")
def model():
    """The real tiny.en model on CPU, loaded once for the whole run."""
    from copilot.asr.engine import load_model

    return load_model("tiny.en", "cpu")


@pytest.fixture(scope="session")
def rubric():
    from copilot.tagging.rubric import load_rubric

    return load_rubric("default")


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave things a person may want to look at (screenshots)."""
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
