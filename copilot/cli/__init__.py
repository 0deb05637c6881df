"""`copilot` command line: one module per command group, each registering its subcommands.

Heavy imports (faster-whisper, spaCy, litellm, FastAPI) happen inside the handlers, so
`copilot --help` and bad-argument errors are instant: measured on a busy 2-core machine, spaCy took 1.7-3.5 s,
faster_whisper 2.4 s, the FastAPI app 1.3 s and litellm many seconds, against 0.14 s for this
package (`python -X importtime`). tests/test_import_graph.py checks that none of them is loaded.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable, Sequence

from copilot.cli import bench_cmd, model_cmd, review_cmd, session_cmd, tag_cmd, transcribe_cmd
from copilot.errors import CopilotError

GROUPS = [model_cmd, transcribe_cmd, tag_cmd, session_cmd, review_cmd, bench_cmd]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="copilot",
        description="Local-first interview copilot: live transcript, rubric tags, review, calibration.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    # Never reach a model hub unless the user explicitly names a hub model on a
    # connected machine (the ASR loader lifts this for that case only).
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Callable[[argparse.Namespace], int | None] = args.handler
    try:
        return int(handler(args) or 0)
    except CopilotError as exc:
        print(f"copilot: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `copilot transcribe ... | head`: the reader left; that is not an error.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 0
