"""ASR options shared by `transcribe`, `live`, `replay` and `bench asr`: model, device, compute type."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

DEFAULT_MODEL = "tiny.en"


def add_asr_arguments(parser: argparse.ArgumentParser, *, default_model: str = DEFAULT_MODEL) -> None:
    group = parser.add_argument_group("speech recognition")
    group.add_argument("--model", default=default_model,
                       help=f"model name from `copilot models` or a model directory (default: {default_model})")
    group.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                       help="auto: CUDA float16 when CTranslate2 sees a GPU, else CPU int8 (default: auto)")
    group.add_argument("--compute-type", default=None, metavar="TYPE",
                       help="CTranslate2 compute type, e.g. int8, int8_float16, float16, float32 "
                            "(default: float16 on CUDA, int8 on CPU)")


def load_model_from_args(args: argparse.Namespace) -> "WhisperModel":
    from copilot.asr.engine import load_model

    return load_model(args.model, device=args.device, compute_type=args.compute_type)
