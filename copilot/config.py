"""Where things live on disk. Environment variables win over defaults so tests can isolate."""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent


def models_dir() -> Path:
    """Local model weights (`models/` in a checkout; COPILOT_MODELS_DIR overrides)."""
    return Path(os.environ.get("COPILOT_MODELS_DIR", REPO_DIR / "models"))


def rubrics_dir() -> Path:
    return Path(os.environ.get("COPILOT_RUBRICS_DIR", REPO_DIR / "rubric_tags"))


def web_dir() -> Path:
    return Path(os.environ.get("COPILOT_WEB_DIR", REPO_DIR / "web"))


def data_dir() -> Path:
    """Session store directory: COPILOT_DATA_DIR, else the user's data directory."""
    env = os.environ.get("COPILOT_DATA_DIR")
    if env:
        return Path(env)
    from platformdirs import user_data_dir

    return Path(user_data_dir("interview-copilot", appauthor=False))
