"""Device selection, tested without a GPU by injecting what CTranslate2 would report."""

import pytest

from copilot.asr.device import DeviceChoice, select_device
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


def test_real_probe_on_this_machine_is_consistent():
    import ctranslate2

    choice = select_device("auto")
    assert choice.device == ("cuda" if ctranslate2.get_cuda_device_count() > 0 else "cpu")
