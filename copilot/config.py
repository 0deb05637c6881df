"""Where things live on disk. Environment variables win over defaults so tests can isolate.

The package runs two ways, and nothing else about it differs:
- from a source checkout (`make setup` installs it editable): the web panel, rubrics and model
  manifest are the checkout's `web/`, `rubric_tags/` and `models/manifest.json`, and models are
  assembled into the checkout's `models/`;
- installed (`pip install .`): setuptools copies the same files into the package as
  `copilot/assets/...` (see setup.py), and models go to the user data directory.
"""

from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "interview-copilot"
PACKAGE_DIR = Path(__file__).resolve().parent
ASSETS_DIR = PACKAGE_DIR / "assets"  # only in an installed copy


def checkout_dir() -> Path | None:
    """The source checkout this package is imported from, or None when it is installed."""
    root = PACKAGE_DIR.parent
    if (root / "pyproject.toml").is_file() and (root / "rubric_tags").is_dir() and (root / "web").is_dir():
        return root
    return None


def _asset(env: str, checkout_path: str, installed_path: str) -> Path:
    if os.environ.get(env):
        return Path(os.environ[env])
    root = checkout_dir()
    return root / checkout_path if root is not None else ASSETS_DIR / installed_path


def user_data_dir() -> Path:
    from platformdirs import user_data_dir as platform_user_data_dir

    return Path(platform_user_data_dir(APP_NAME, appauthor=False))


def models_dir() -> Path:
    """Model weights and the trained tagger: COPILOT_MODELS_DIR, else `models/` in a checkout,
    else `models/` in the user data directory."""
    env = os.environ.get("COPILOT_MODELS_DIR")
    if env:
        return Path(env)
    root = checkout_dir()
    return root / "models" if root is not None else user_data_dir() / "models"


def models_manifest() -> Path:
    """The tracked list of known models (COPILOT_MODELS_MANIFEST overrides)."""
    return _asset("COPILOT_MODELS_MANIFEST", "models/manifest.json", "models/manifest.json")


def rubrics_dir() -> Path:
    return _asset("COPILOT_RUBRICS_DIR", "rubric_tags", "rubric_tags")


def web_dir() -> Path:
    return _asset("COPILOT_WEB_DIR", "web", "web")


def shared_data_dir() -> Path:
    """The workplace's real recordings and labelled dialogue (`../shared/data` beside the checkout, else
    beside the working directory; COPILOT_SHARED_DATA overrides). Benchmarks use them when present."""
    env = os.environ.get("COPILOT_SHARED_DATA")
    if env:
        return Path(env)
    base = checkout_dir() or Path.cwd()
    return (base / ".." / "shared" / "data").resolve()


def data_dir() -> Path:
    """Session store directory: COPILOT_DATA_DIR, else the user's data directory."""
    env = os.environ.get("COPILOT_DATA_DIR")
    if env:
        return Path(env)
    return user_data_dir()


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
