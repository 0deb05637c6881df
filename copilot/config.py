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


def config_file() -> Path:
    """The user's settings (TOML): COPILOT_CONFIG, else config.toml in the user config directory."""
    env = os.environ.get("COPILOT_CONFIG")
    if env:
        return Path(env)
    from platformdirs import user_config_dir

    return Path(user_config_dir("interview-copilot", appauthor=False)) / "config.toml"


def retention_days() -> float | None:
    """How long sessions are kept (days), or None (the default: kept until deleted).

    COPILOT_RETENTION_DAYS wins over `retention_days` in the config file. A bad value is an
    error, never silently "keep forever"."""
    from copilot.errors import CopilotError

    raw: object = os.environ.get("COPILOT_RETENTION_DAYS")
    where = "COPILOT_RETENTION_DAYS"
    if raw is None or raw == "":
        path = config_file()
        if not path.exists():
            return None
        import tomllib

        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8")).get("retention_days")
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise CopilotError(f"{path}: cannot read settings ({str(exc).splitlines()[0]})") from None
        where = f"{path}: retention_days"
        if raw is None:
            return None
    if isinstance(raw, bool):
        raise CopilotError(f"{where} must be a number of days, not {raw!r}")
    try:
        days = float(raw)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise CopilotError(f"{where} must be a number of days, not {raw!r}") from None
    if not days > 0 or days == float("inf"):
        raise CopilotError(f"{where} must be more than 0 days, not {raw!r}")
    return days
