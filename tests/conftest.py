"""Shared test fixtures.

Real recordings come from `../shared/data` (present in CI and every checkout of this
workplace; a stranger's clone lacks it, so tests that need it skip with that reason).
HOME and the XDG dirs point at a temp folder: onnxruntime and PulseAudio write there.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = (REPO / ".." / "shared" / "data").resolve()
AUDIO = SHARED_DATA / "audio"

_home = Path(tempfile.mkdtemp(prefix="copilot-test-home-"))
for var, sub in [("HOME", ""), ("XDG_CONFIG_HOME", ".config"), ("XDG_CACHE_HOME", ".cache"),
                 ("XDG_DATA_HOME", ".local/share"), ("XDG_RUNTIME_DIR", "run")]:
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


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    """Where tests leave things a person may want to look at (screenshots)."""
    path = REPO / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path
