"""The speech recognizer's settings and their defaults, in one place.

`transcribe`, `live`, `replay` and the benchmarks all offer the model, the device and the
compute type; their defaults live here, beside the recognizer, so that no command module
has to import another (the benchmarks once imported the CLI for `DEFAULT_MODEL`, and the
CLI registers the benchmarks: a cycle).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from copilot.asr.device import DEVICES

DEFAULT_MODEL = "tiny.en"


@dataclass(frozen=True)
class AsrOptions:
    """What `load_model` is given: a model name from `copilot models` (or a directory), a device
    (`auto`: CUDA float16 when CTranslate2 sees a GPU, else CPU int8) and a compute type
    (None: by device)."""

    model: str = DEFAULT_MODEL
    device: str = "auto"
    compute_type: str | None = None


def add_asr_arguments(
    parser: argparse.ArgumentParser, *, device_flag: str = "--device", default_model: str = DEFAULT_MODEL
) -> None:
    """--model, the device flag (`--asr-device` where `--device` is the microphone) and --compute-type."""
    group = parser.add_argument_group("speech recognition")
    group.add_argument(
        "--model",
        default=default_model,
        help=f"model name from `copilot models` or a model directory (default: {default_model})",
    )
    group.add_argument(
        device_flag,
        dest=device_flag.lstrip("-").replace("-", "_"),
        default="auto",
        choices=list(DEVICES),
        help="auto: CUDA float16 when CTranslate2 sees a GPU, else CPU int8 (default: auto)",
    )
    group.add_argument(
        "--compute-type",
        default=None,
        metavar="TYPE",
        help="CTranslate2 compute type, e.g. int8, int8_float16, float16, float32 "
        "(default: float16 on CUDA, int8 on CPU)",
    )


def options_from_args(args: argparse.Namespace, *, device_flag: str = "--device") -> AsrOptions:
    device = getattr(args, device_flag.lstrip("-").replace("-", "_"))
    return AsrOptions(model=args.model, device=device, compute_type=getattr(args, "compute_type", None))
