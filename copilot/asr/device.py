"""Where the model runs: pick CUDA float16 when CTranslate2 sees a GPU, else CPU int8."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable

from copilot.errors import ModelError

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class DeviceChoice:
    device: str  # "cpu" | "cuda"
    compute_type: str  # a CTranslate2 compute type: int8, float16, float32, int8_float16, ...
    cpu_threads: int  # 0 on CUDA (CTranslate2's default)

    def describe(self) -> str:
        threads = f", {self.cpu_threads} threads" if self.device == "cpu" else ""
        return f"{self.device} {self.compute_type}{threads}"


def cuda_device_count() -> int:
    """GPUs CTranslate2 can use (0 when its CUDA runtime is missing)."""
    try:
        import ctranslate2

        return int(ctranslate2.get_cuda_device_count())
    except Exception:  # a broken CUDA install is "no GPU", not a crash
        return 0


def cpu_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def select_device(
    requested: str = "auto",
    compute_type: str | None = None,
    *,
    gpu_count: Callable[[], int] = cuda_device_count,
    cores: Callable[[], int] = cpu_cores,
) -> DeviceChoice:
    """Resolve `--device` / `--compute-type` into what CTranslate2 is given.

    `gpu_count` and `cores` are injectable so the choice is testable on any machine.
    """
    requested = (requested or "auto").lower()
    if requested not in DEVICES:
        raise ModelError(f"unknown device {requested!r}: use one of {', '.join(DEVICES)}")
    gpus = gpu_count() if requested in ("auto", "cuda") else 0
    if requested == "cuda" and gpus == 0:
        raise ModelError("device cuda requested but CTranslate2 sees no CUDA GPU: use --device cpu or auto")
    if requested == "cuda" or (requested == "auto" and gpus > 0):
        return DeviceChoice("cuda", compute_type or "float16", 0)
    return DeviceChoice("cpu", compute_type or "int8", max(1, cores()))
