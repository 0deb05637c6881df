"""`copilot bench turns`: what the interviewer's panel ends with, per turn, on a labelled dialogue.

A labelled dialogue (the bundled demo interview by default: stereo audio and a script whose
turns carry the rubric moments they were written to show) goes through the live pipeline as
fast as the CPU allows (FileSource, no pacing; real SQLite store; rules tagger), once with the
turn layer and once fragments only. The log is then folded, and each standing machine tag is
placed on the spoken turn it points at (the script turn of its channel that overlaps it most).

Reported per mode: standing machine chips, duplicates (more than one chip for a (turn, tag)),
and turn-level precision and recall of the (turn, tag) pairs against the script's labels.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pydantic stays out of `copilot --help` (tests/test_import_graph.py)
    from copilot.events import Event


@dataclass
class TurnTagScore:
    mode: str
    chips: int  # standing machine tags at the end
    duplicates: int  # chips beyond the first for a (turn, tag)
    pairs: int  # distinct (turn, tag) pairs the panel shows
    correct: int
    labelled: int  # (turn, tag) pairs in the script
    precision: float
    recall: float
    turns: int  # settled turns (latest revisions)
    fragments: int


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--script",
        default=None,
        metavar="JSON",
        help="a labelled dialogue script like copilot/audio/demo_data/demo_interview.json "
        '(its "audio" beside it); default: the bundled demo interview',
    )
    p.add_argument("--model", default="tiny.en", help="ASR model (default %(default)s)")
    p.add_argument("--rubric", default="default")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from copilot.asr.engine import load_model
    from copilot.audio.demo import DEMO_SCRIPT_PATH

    script_path = Path(args.script or DEMO_SCRIPT_PATH)
    info = json.loads(script_path.read_text())
    audio = script_path.parent / info["audio"]
    model = load_model(args.model, "cpu")
    scores = [score_run(model, audio, info, args.rubric, turns=t) for t in (True, False)]
    if args.json:
        print(json.dumps([asdict(s) for s in scores], indent=1))
        return 0
    print(f"copilot bench turns: {script_path.name}, {len(info['turns'])} spoken turns, model {args.model}")
    for s in scores:
        print(
            f"  {s.mode:<15} chips {s.chips:>3}  duplicates {s.duplicates:>2}  (turn, tag) pairs {s.pairs:>3}  "
            f"precision {s.precision:.2f}  recall {s.recall:.2f}  ({s.turns} turns, {s.fragments} fragments)"
        )
    return 0


def score_run(model: Any, audio: Path, info: dict, rubric_name: str, *, turns: bool) -> TurnTagScore:
    from copilot.asr.streaming import StreamingTranscriber
    from copilot.asr.turns import TurnTranscriber
    from copilot.audio.file_source import FileSource
    from copilot.events import SessionStarted
    from copilot.session.bus import Bus
    from copilot.session.log import SessionLog
    from copilot.session.pipeline import Pipeline
    from copilot.session.store import SessionStore
    from copilot.tagging.rubric import load_rubric
    from copilot.tagging.rules import RulesTagger

    speakers = info.get("speakers") or ["interviewer", "candidate"]
    with tempfile.TemporaryDirectory(prefix="copilot-bench-turns-") as tmp:
        store = SessionStore(Path(tmp))
        sid = store.create_session(SessionStarted(title="bench turns", mode="replay", speakers=speakers))
        source = FileSource(audio, mono=False, speakers=",".join(speakers))
        fragments = StreamingTranscriber(model, source.speakers)
        transcriber = TurnTranscriber(fragments) if turns else fragments
        pipe = Pipeline(
            session_id=sid,
            log=SessionLog(store, Bus()),
            source=source,
            transcriber=transcriber,
            tagger=RulesTagger(load_rubric(rubric_name)),
            turns=turns,
        )
        asyncio.run(pipe.run())
        events = store.events(sid)
        store.close()
    return score_events(events, info["turns"], mode="turns" if turns else "fragments only")


def score_events(events: "list[Event]", script: list[dict], *, mode: str) -> TurnTagScore:
    """Fold the log and score its standing machine tags per spoken turn of `script`."""
    from copilot.session.fold import fold

    view = fold(events)
    segments = view.segment_index()
    standing = [t.tag for t in view.tags if t.kind == "tag.proposed" and t.standing]
    chips: dict[tuple[int, str], int] = {}
    for t in standing:
        seg = segments.get(t.segment_ids[0]) if t.segment_ids else None
        channel = seg.channel if seg else 0
        turn = _spoken_turn(script, channel, t.start_ms, t.end_ms)
        if turn is not None:
            chips[(turn, t.tag)] = chips.get((turn, t.tag), 0) + 1
    labelled = {(i, tag) for i, turn in enumerate(script) for tag in turn.get("tags", [])}
    correct = len(set(chips) & labelled)
    return TurnTagScore(
        mode=mode,
        chips=len(standing),
        duplicates=sum(n - 1 for n in chips.values()),
        pairs=len(chips),
        correct=correct,
        labelled=len(labelled),
        precision=round(correct / len(chips), 3) if chips else 0.0,
        recall=round(correct / len(labelled), 3) if labelled else 0.0,
        turns=len(view.turns),
        fragments=len(segments),
    )


def _spoken_turn(script: list[dict], channel: int, start_ms: int, end_ms: int) -> int | None:
    best, best_overlap = None, 0
    for i, turn in enumerate(script):
        if turn["channel"] != channel:
            continue
        overlap = min(end_ms, turn["end_ms"] + 500) - max(start_ms, turn["start_ms"] - 500)
        if overlap > best_overlap:
            best, best_overlap = i, overlap
    return best
