"""`copilot transcribe FILE`: stream a recording through the live transcription engine."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, Iterable, TextIO

from copilot.asr.options import add_asr_arguments
from copilot.fileio import write_text_atomic

if TYPE_CHECKING:
    from copilot.events import Segment, Turn

FORMATS = ("jsonl", "text", "vtt", "srt")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "transcribe",
        help="transcribe an audio file with the streaming engine",
        description="Transcribe an audio file (any format FFmpeg reads; a stereo file is one speaker per "
        "channel). jsonl and text print each segment the moment it commits.",
    )
    p.add_argument("file", help="audio file")
    add_asr_arguments(p)
    p.add_argument("--realtime", action="store_true", help="replay at real-time pace, as if live")
    p.add_argument(
        "--speakers",
        default=None,
        metavar="A,B",
        help="speaker name per channel (default: speaker, or interviewer,candidate for stereo)",
    )
    p.add_argument(
        "--no-echo-gate",
        dest="echo_gate",
        action="store_false",
        help="stereo: transcribe each channel as it is, even where it is the other channel's echo "
        "(default: the echo gate silences the other speaker's leak, see docs/asr.md)",
    )
    p.add_argument("--format", default="jsonl", choices=FORMATS, help="output format (default: jsonl)")
    p.add_argument(
        "--layer",
        choices=("turns", "fragments"),
        default=None,
        help="turns: one entry per settled turn, decoded as a whole; fragments: the pieces cut "
        "for latency (default: fragments for jsonl, turns for text, vtt and srt)",
    )
    p.add_argument(
        "--partials",
        action="store_true",
        help='also print partial hypotheses (jsonl: objects with "partial": true; text: to stderr)',
    )
    p.add_argument(
        "-o", "--output", default=None, metavar="PATH", help="write to PATH (atomically, when done) instead of stdout"
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from copilot.asr.engine import load_model
    from copilot.asr.streaming import transcribe_stream
    from copilot.asr.turns import transcribe_turns
    from copilot.audio.file_source import FileSource
    from copilot.events import PartialSegment, Segment, Turn

    # Input first (decoding fails fast and names the file), then the model.
    source = FileSource(args.file, realtime=args.realtime, speakers=args.speakers)
    model = load_model(args.model, args.device, args.compute_type)
    live = args.output is None and args.format in ("jsonl", "text")
    layer = args.layer or ("fragments" if args.format == "jsonl" else "turns")
    wanted = Turn if layer == "turns" else Segment
    options = {"emit_partials": args.partials, "realtime": args.realtime, "echo_gate": args.echo_gate}
    stream = (
        transcribe_turns(source, model, model_name=Path(args.model).name, **options)
        if layer == "turns"
        else transcribe_stream(source, model, **options)
    )
    segments: list[Segment | Turn] = []
    out = sys.stdout
    for item in stream:
        if not isinstance(item, (PartialSegment, wanted)):
            continue  # the other layer
        if isinstance(item, PartialSegment):
            if live and args.format == "jsonl":
                _write(
                    out,
                    json.dumps(
                        {
                            "partial": True,
                            "speaker": item.speaker,
                            "start_ms": item.start_ms,
                            "end_ms": item.end_ms,
                            "text": item.text,
                        }
                    ),
                )
            elif live:
                print(f"  … {item.speaker}: {item.text}", file=sys.stderr, flush=True)
            continue
        segments.append(item)
        if live:
            _write(out, _format_one(item, args.format))
    if not live:
        text = render(segments, args.format)
        if args.output:
            write_text_atomic(args.output, text)
        else:
            out.write(text)
            out.flush()
    return 0


def _write(out: TextIO, line: str) -> None:
    out.write(line + "\n")
    out.flush()


def _format_one(segment: "Segment | Turn", fmt: str) -> str:
    if fmt == "jsonl":
        return json.dumps(
            {"speaker": segment.speaker, "start_ms": segment.start_ms, "end_ms": segment.end_ms, "text": segment.text}
        )
    return f"[{_clock(segment.start_ms)}] {segment.speaker}: {segment.text}"


def render(segments: Iterable["Segment | Turn"], fmt: str) -> str:
    if fmt in ("jsonl", "text"):
        return "".join(_format_one(s, fmt) + "\n" for s in segments)
    from copilot.review.exports import cues_srt, cues_vtt, segment_cues  # the one subtitle writer

    cues = segment_cues(segments)
    return cues_vtt(cues) if fmt == "vtt" else cues_srt(cues)


def _clock(ms: int) -> str:
    m, rem = divmod(ms, 60_000)
    return f"{m:02d}:{rem / 1000:04.1f}"
