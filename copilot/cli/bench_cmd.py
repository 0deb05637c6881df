"""`copilot bench asr|tagger|pipeline|turns|echo|browser|soak`: each benchmark lives in `copilot/bench/<name>.py`.

A benchmark module exposes `add_arguments(parser)` and `run(args) -> int`.
"""

from __future__ import annotations

import argparse

from copilot.bench import asr, browser, echo, pipeline, soak, tagger, turns

BENCHMARKS = {
    "asr": (asr, "streaming transcription: latency, real-time factor, WER, memory"),
    "tagger": (tagger, "tagger throughput and quality on the labelled sets"),
    "pipeline": (pipeline, "replay through the live server: segment and tag latency at websocket clients, fan-out"),
    "turns": (
        turns,
        "machine chips per spoken turn on a labelled dialogue: duplicates, turn-level precision and recall",
    ),
    "echo": (echo, "echo/crosstalk gate: misattributed words on sox echo mixes, double-talk WER, gate CPU"),
    "browser": (browser, "browser capture (Chromium, capture page, websocket) -> fragment latency, vs the file replay"),
    "soak": (soak, "hours of looped audio through the live pipeline with 5 clients: RSS growth, ASR lag, nothing lost"),
}


def register(sub: argparse._SubParsersAction) -> None:
    bench = sub.add_parser("bench", help="measure performance on this machine")
    which = bench.add_subparsers(dest="benchmark", metavar="BENCHMARK", required=True)
    for name, (module, help_text) in BENCHMARKS.items():
        p = which.add_parser(name, help=help_text)
        module.add_arguments(p)
        p.set_defaults(handler=module.run)
