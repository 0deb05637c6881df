"""`copilot bench asr|tagger|pipeline|browser`: each benchmark lives in `copilot/bench/<name>.py`.

A benchmark module exposes `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse
import importlib

BENCHMARKS = {
    "asr": "streaming transcription: latency, real-time factor, WER, memory",
    "tagger": "tagger throughput and quality on the labelled sets",
    "pipeline": "replay through the live server: segment and tag latency at websocket clients, fan-out",
    "browser": "browser capture (Chromium, capture page, websocket) -> fragment latency, vs the file replay",
}


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="measure performance on this machine")
    which = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, help_text in BENCHMARKS.items():
        module = importlib.import_module(f"copilot.bench.{name}")
        p = which.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
