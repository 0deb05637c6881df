"""`--llm local:PATH.gguf` / `--llm local:smollm2`: an in-process llama.cpp server, no Ollama needed.

The optional `local-llm` extra installs `xllamacpp` (llama.cpp's own server, compiled, in a
wheel). `start_local(spec)` loads the GGUF, serves it on 127.0.0.1 on a free port with half the
machine's cores (`default_threads`) and one slot (so every call reuses the KV cache of the rubric prefix), and
returns the litellm model string and api_base to talk to it as an OpenAI-compatible server.
One server per GGUF per process; `stop_all()` (also run at exit) stops them.

A name rather than a path (`local:smollm2`) is a GGUF model of `models/manifest.json`,
installed by `copilot models install NAME` and checked against its sha256 (the manifest is read
here, not through `copilot.asr.models`: `tagging` sits beside `asr`, not above it). SmolLM2-135M only
proves the plumbing; a real user picks a 3-8B instruct GGUF (docs/llm.md).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib import error as urlerror
from urllib import request as urlrequest

from copilot.errors import CopilotError

log = logging.getLogger(__name__)

PREFIX = "local:"
EXTRA = "local-llm"
DEFAULT_CTX = 4096  # rubric prefix (~1.5k tokens) + window + answer, with room for a larger rubric
START_TIMEOUT_S = 120.0


class LocalLLMError(CopilotError):
    """The local model cannot be served (extra not installed, no such GGUF, server did not start)."""


def is_local(model: str | None) -> bool:
    return bool(model) and str(model).strip().startswith(PREFIX)


def xllamacpp_version() -> str | None:
    """The installed xllamacpp's version, or None (without importing its 100 MB library)."""
    from importlib import metadata

    try:
        return metadata.version("xllamacpp")
    except metadata.PackageNotFoundError:
        return None


@dataclass(frozen=True)
class GGUFModel:
    """A manifest model whose files include a GGUF (`copilot models install NAME` assembles it)."""

    name: str
    files: tuple[str, ...]
    sha256: dict[str, str]


VERIFIED_STAMP = ".verified.json"  # written by `copilot models install` (copilot/asr/models.py): file -> stat, sha256


def gguf_models() -> dict[str, GGUFModel]:
    """Manifest models whose files include a .gguf: name -> GGUFModel."""
    from copilot.config import models_manifest

    path = models_manifest()
    try:
        raw = json.loads(path.read_text())
        return {
            name: GGUFModel(name, tuple(m["files"]), dict(m["sha256"]))
            for name, m in raw["models"].items()
            if any(f.endswith(".gguf") for f in m["files"])
        }
    except OSError as exc:
        raise LocalLLMError(f"model manifest not readable: {path}: {exc.strerror or exc}") from None
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise LocalLLMError(f"model manifest {path} is malformed: {exc!r}") from None


def verified(directory: Path, model: GGUFModel) -> bool:
    """Every file of `model` is in `directory` with the manifest's sha256. A file that the install's
    stamp lists with its current size and mtime is not hashed again."""
    try:
        stamp = json.loads((directory / VERIFIED_STAMP).read_text())
    except (OSError, ValueError):
        stamp = {}
    if not isinstance(stamp, dict):
        stamp = {}
    for target in model.files:
        expected = model.sha256.get(target)
        path = directory / target
        if not expected or not path.is_file():
            return False
        st = path.stat()
        seen = stamp.get(target)
        if (
            isinstance(seen, dict)
            and seen.get("stat") == [st.st_size, st.st_mtime_ns]
            and seen.get("sha256") == expected
        ):
            continue
        h = hashlib.sha256()
        with open(path, "rb") as f:
            while block := f.read(1 << 20):
                h.update(block)
        if h.hexdigest() != expected:
            return False
    return True


def resolve_gguf(spec: str) -> Path:
    """The GGUF file `local:X` names: a path to a .gguf, or an installed, verified manifest model."""
    text = spec.strip()
    if text.startswith(PREFIX):
        text = text[len(PREFIX) :].strip()
    if not text:
        raise LocalLLMError("--llm local: needs a GGUF file or a model name, e.g. local:smollm2 or local:./model.gguf")
    path = Path(text).expanduser()
    if path.suffix.lower() == ".gguf" or path.exists():
        if not path.is_file():
            raise LocalLLMError(f"no GGUF file at {text}")
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                raise LocalLLMError(f"{text} is not a GGUF model file")
        return path.resolve()
    from copilot.config import models_dir

    specs = gguf_models()
    if text not in specs:
        known = ", ".join(specs) or "none"
        raise LocalLLMError(f"unknown local model {text!r}: give a path to a .gguf file or one of: {known}")
    mspec = specs[text]
    directory = models_dir() / text
    gguf = directory / next(f for f in mspec.files if f.endswith(".gguf"))
    if not gguf.is_file():
        raise LocalLLMError(f"local model {text!r} is not installed; run `copilot models install {text}`")
    if not verified(directory, mspec):
        raise LocalLLMError(
            f"local model {text!r} in {directory} fails its sha256 check; "
            f"run `copilot models install {text}` to reinstall it"
        )
    return gguf


THREADS_ENV = "COPILOT_LLM_THREADS"


def cpu_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_threads() -> int:
    """Half the machine's cores (at least 1), or $COPILOT_LLM_THREADS.

    llama.cpp's threads meet at a barrier after every op, so one thread that the OS parks stalls
    them all. A live session also runs the speech model on these cores: measured on 2 busy cores,
    2 llama.cpp threads generated 0.2-0.8 tokens/s and 1 thread 12-22 tokens/s (docs/llm.md).
    """
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise LocalLLMError(f"{THREADS_ENV}={env!r} is not a number of threads") from None
    return max(1, cpu_cores() // 2)


def free_port(host: str = "127.0.0.1") -> int:
    with contextlib.closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class LocalServer:
    """A running llama.cpp server for one GGUF."""

    path: Path
    port: int
    threads: int
    n_ctx: int
    handle: Any  # xllamacpp.Server
    started_s: float  # seconds from start to healthy

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_base(self) -> str:
        return self.url + "/v1"

    @property
    def model(self) -> str:
        """The litellm model string: an OpenAI-compatible server (the name is informational)."""
        return f"openai/{self.path.stem}"

    def stop(self) -> None:
        handle, self.handle = self.handle, None
        if handle is None:
            return
        for name in ("stop", "shutdown", "close"):
            fn = getattr(handle, name, None)
            if callable(fn):
                with contextlib.suppress(Exception):
                    fn()
                break
        del handle  # xllamacpp stops its server when the object is freed


_servers: dict[Path, LocalServer] = {}
_lock = threading.Lock()


def start_local(
    spec: str, *, threads: int | None = None, n_ctx: int = DEFAULT_CTX, timeout_s: float = START_TIMEOUT_S
) -> LocalServer:
    """Serve the GGUF that `spec` names (reusing this process's server for it); raises LocalLLMError."""
    path = resolve_gguf(spec)
    with _lock:
        running = _servers.get(path)
        if running is not None and running.handle is not None:
            return running
        server = _start(path, threads or default_threads(), n_ctx, timeout_s)
        _servers[path] = server
        return server


def _start(path: Path, threads: int, n_ctx: int, timeout_s: float) -> LocalServer:
    # llama.cpp's OpenMP threads spin while they wait; on cores shared with the ASR, sleep instead.
    # (Read when the runtime loads, i.e. at this import.)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        import xllamacpp as xlc
    except ImportError:
        raise LocalLLMError(
            f"--llm local: needs the optional xllamacpp server: pip install "
            f"'interview-copilot[{EXTRA}]' (or `make setup`)"
        ) from None
    params = xlc.CommonParams()
    params.model.path = str(path)
    params.n_ctx = n_ctx
    params.n_parallel = 1  # one slot: every call lands where the rubric prefix is already cached
    for cpu in (params.cpuparams, params.cpuparams_batch):
        cpu.n_threads = threads
        # No busy-wait between ops: on a machine whose cores are also busy (the ASR, a browser) spinning
        # threads starve each other; measured here, polling made 2 threads 100x slower than 1.
        cpu.poll = 0
    # Flash attention off: llama.cpp's CPU kernel made each generated token 1.75x slower with the ~1,000-token
    # rubric prefix in context (SmolLM2, 1 thread, calls interleaved under the same load: 74.5 vs 42.2 ms a token;
    # docs/llm.md). "auto" turns it on for the CPU backend.
    params.flash_attn_type = xlc.llama_flash_attn_type.LLAMA_FLASH_ATTN_TYPE_DISABLED
    params.hostnames = ["127.0.0.1"]  # never reachable from the network
    params.port = port = free_port()
    params.warmup = True
    t0 = time.monotonic()
    try:
        handle = xlc.Server(params)
    except Exception as exc:  # noqa: BLE001 (a bad GGUF, no memory: one line for the user)
        raise LocalLLMError(f"llama.cpp could not load {path.name}: {exc}") from None
    server = LocalServer(path, port, threads, n_ctx, handle, 0.0)
    deadline = t0 + timeout_s
    while not _healthy(server.url):
        if time.monotonic() > deadline:
            server.stop()
            raise LocalLLMError(f"llama.cpp server for {path.name} not ready after {timeout_s:g} s")
        time.sleep(0.1)
    server.started_s = time.monotonic() - t0
    log.info(
        "llama.cpp serving %s on %s (%d threads, n_ctx %d) in %.1f s",
        path.name,
        server.url,
        threads,
        n_ctx,
        server.started_s,
    )
    return server


def _healthy(url: str) -> bool:
    try:
        with urlrequest.urlopen(url + "/health", timeout=2.0) as resp:  # noqa: S310 (our own 127.0.0.1 server)
            body = json.loads(resp.read() or b"{}")
            return resp.status == 200 and body.get("status", "ok") == "ok"
    except (urlerror.URLError, OSError, ValueError):
        return False


def stop_all() -> None:
    with _lock:
        servers = list(_servers.values())
        _servers.clear()
    for server in servers:
        server.stop()


atexit.register(stop_all)
