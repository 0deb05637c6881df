"""Device selection, tested without a GPU by injecting what CTranslate2 would report."""

import os
import subprocess
from pathlib import Path

import pytest

from copilot.asr.device import DeviceChoice, select_device
from copilot.asr.engine import load_model
from copilot.errors import ModelError


def test_auto_picks_cuda_float16_when_a_gpu_is_seen():
    assert select_device("auto", gpu_count=lambda: 1, cores=lambda: 8) == DeviceChoice("cuda", "float16", 0)


def test_auto_falls_back_to_cpu_int8_with_one_thread_per_core():
    assert select_device("auto", gpu_count=lambda: 0, cores=lambda: 2) == DeviceChoice("cpu", "int8", 2)


def test_explicit_compute_type_wins():
    assert select_device("auto", "int8_float16", gpu_count=lambda: 2).compute_type == "int8_float16"
    assert select_device("cpu", "float32", gpu_count=lambda: 2, cores=lambda: 4) == DeviceChoice("cpu", "float32", 4)


def test_cpu_requested_never_asks_for_gpus():
    def boom() -> int:
        raise AssertionError("should not probe CUDA")

    assert select_device("cpu", gpu_count=boom, cores=lambda: 3).device == "cpu"


def test_cuda_requested_without_gpu_is_a_one_line_model_error():
    with pytest.raises(ModelError) as err:
        select_device("cuda", gpu_count=lambda: 0)
    assert "cuda" in str(err.value) and "\n" not in str(err.value)


def test_unknown_device_is_refused():
    with pytest.raises(ModelError, match="unknown device"):
        select_device("tpu")


def _gpus_seen_by_the_kernel() -> int:
    gpus = Path("/proc/driver/nvidia/gpus")
    return len(list(gpus.iterdir())) if gpus.is_dir() else 0


@pytest.mark.audio
def test_auto_on_this_machine_loads_the_model_where_the_hardware_says():
    """Checked against sources other than CTranslate2: the kernel's NVIDIA driver lists GPUs, `nproc`
    counts the cores this process may use; then the loaded model must really run there."""
    if _gpus_seen_by_the_kernel():
        expected = DeviceChoice("cuda", "float16", 0)
    else:
        env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_THREAD_LIMIT")}
        cores = int(subprocess.run(["nproc"], capture_output=True, text=True, env=env, check=True).stdout)
        expected = DeviceChoice("cpu", "int8", cores)
    assert select_device("auto") == expected
    model = load_model("tiny.en", "auto")
    assert model.model.device == expected.device
    assert model.model.compute_type.startswith(expected.compute_type)  # CTranslate2 names int8 on CPU int8_float32
