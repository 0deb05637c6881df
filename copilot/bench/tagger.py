"""`copilot bench tagger`: throughput of the offline tagger and its quality on the labelled sets.

Throughput is measured on the held-out utterances repeated to a few thousand, with the blank
English pipeline: the batch path (`tag_many`, classifier through `nlp.pipe`) and the live path
(`tag()` per segment). Both wall-clock and CPU-time rates are printed: on a shared machine the
CPU-time rate is the steadier figure. Quality: macro-F1 of rules-only, classifier-only and combined
on the held-out split and on the real AMI ES2002d meeting (weak proxy labels).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any, Literal

from copilot.config import shared_data_dir

AMI = shared_data_dir() / "dialogue_acts" / "ami_ES2002d.jsonl"
MODES: tuple[Literal["rules-only", "classifier-only", "combined"], ...] = ("rules-only", "classifier-only", "combined")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rubric", default="default", metavar="NAME|PATH")
    p.add_argument("--items", type=int, default=5000, help="utterances per throughput run (default 5000)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    # issue 12: measure any LLM instead of the offline tagger
    p.add_argument(
        "--llm",
        default=None,
        metavar="MODEL",
        help="measure this LLM instead (litellm model string, or local:smollm2 / local:PATH.gguf): "
        "macro-F1, schema-valid rate, latency first/warm, tokens, cost per call",
    )
    p.add_argument("--api-base", default=None, metavar="URL", help="OpenAI-compatible server for --llm")
    p.add_argument("--tagger", choices=("llm", "hybrid"), default="llm", help="with --llm: the LLM alone or rules+LLM")
    p.add_argument(
        "--limit",
        type=int,
        default=40,
        metavar="N",
        help="with --llm: held-out items, taken evenly across the set (default 40)",
    )


def ami_items(path: Path = AMI):
    """AMI dialogue acts as labelled items, each with the previous act as context."""
    from copilot.tagging.textcat import LabelledItem

    items: list[LabelledItem] = []
    prev: dict[str, Any] | None = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        r = json.loads(line)
        items.append(
            LabelledItem(
                id=str(r.get("orig_id", len(items))),
                text=r["text"],
                speaker=str(r["speaker"]),
                context=[{"speaker": str(prev["speaker"]), "text": prev["text"]}] if prev else None,
                labels=[] if r["label"] == "none" else [r["label"]],
            )
        )
        prev = r
    return items


def _throughput(tagger, pairs) -> dict[str, float]:
    w0, c0 = time.perf_counter(), time.process_time()
    tagger.tag_many(pairs)
    wb, cb = time.perf_counter() - w0, time.process_time() - c0
    w0, c0 = time.perf_counter(), time.process_time()
    for seg, ctx in pairs:
        tagger.tag(seg, ctx)
    ws, cs = time.perf_counter() - w0, time.process_time() - c0
    n = len(pairs)
    return {
        "batch_per_s": n / wb,
        "batch_per_s_cpu": n / cb,
        "segment_per_s": n / ws,
        "segment_per_s_cpu": n / cs,
        "segment_ms": 1000 * ws / n,
    }


def run_llm(args: argparse.Namespace) -> int:
    """`--llm MODEL`: one call per held-out item (a turn), scored and timed per call (llm_bench.py)."""
    from copilot.tagging.evaluate import evaluate
    from copilot.tagging.llm_bench import CallLog, llm_of, spread
    from copilot.tagging.rubric import load_rubric
    from copilot.tagging.select import build_tagger
    from copilot.tagging.textcat import HELDOUT_DATA, load_labelled

    rubric = load_rubric(args.rubric)
    items = spread(load_labelled(HELDOUT_DATA), args.limit)
    tagger = build_tagger(args.tagger, rubric, args.llm, args.api_base)
    calls = CallLog.attach(llm_of(tagger))
    report = evaluate(tagger, items, rubric.tag_ids, str(HELDOUT_DATA), label=f"{args.tagger} {args.llm}")
    if args.json:
        print(
            json.dumps(
                {
                    "macro_f1": round(report.macro_f1, 4),
                    "items": report.n_items,
                    "per_tag": _scores(report)["per_tag"],
                    "llm": calls.summary(),
                },
                indent=2,
            )
        )
        return 0
    print(
        f"{report.tagger} on {report.n_items} held-out items: macro-F1 {report.macro_f1:.3f}  ("
        + "  ".join(f"{t.tag} {t.f1:.2f}" for t in report.tags)
        + ")"
    )
    print(calls.to_text())
    return 0


def run(args: argparse.Namespace) -> int:
    if getattr(args, "llm", None):
        return run_llm(args)
    from copilot.tagging.evaluate import evaluate, item_context, item_segment
    from copilot.tagging.rubric import load_rubric
    from copilot.tagging.rules import RulesTagger
    from copilot.tagging.textcat import HELDOUT_DATA, load_classifier, load_labelled

    rubric = load_rubric(args.rubric)
    classifier = load_classifier(rubric.id)
    result: dict[str, Any] = {"rubric": rubric.id, "classifier": classifier is not None}
    heldout = load_labelled(HELDOUT_DATA)
    pairs = [(item_segment(it.id, it.text, it.speaker), item_context(it.context, it.speaker)) for it in heldout]
    pairs = (pairs * (args.items // len(pairs) + 1))[: args.items]

    modes = MODES if classifier is not None else ("rules-only",)
    taggers = {m: RulesTagger(rubric, classifier=classifier if m != "rules-only" else False, mode=m) for m in modes}
    combined = taggers.get("combined", taggers["rules-only"])
    combined.tag_many(pairs[:200])  # warm caches the way a live session would be warm
    result["throughput"] = {"combined" if classifier else "rules-only": _throughput(combined, pairs)}
    if classifier is not None:
        result["throughput"]["rules-only"] = _throughput(taggers["rules-only"], pairs)
    result["throughput_items"] = len(pairs)

    result["heldout"] = {
        m: _scores(evaluate(t, heldout, rubric.tag_ids, str(HELDOUT_DATA))) for m, t in taggers.items()
    }
    if AMI.is_file():
        ami = ami_items()
        result["ami_es2002d"] = {m: _scores(evaluate(t, ami, rubric.tag_ids, str(AMI))) for m, t in taggers.items()}
    else:
        result["ami_es2002d"] = None
        result["ami_skipped"] = f"{AMI} not found (the workplace's shared data); AMI figures skipped"

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    _print(result, classifier is not None)
    return 0


def _scores(rep) -> dict[str, Any]:
    return {
        "macro_f1": round(rep.macro_f1, 4),
        "items": rep.n_items,
        "per_tag": {
            t.tag: {"p": round(t.precision, 3), "r": round(t.recall, 3), "f1": round(t.f1, 3)} for t in rep.tags
        },
        "latency_ms": {"median": round(rep.latency_median_ms, 3), "p95": round(rep.latency_p95_ms, 3)},
    }


def _print(r: dict[str, Any], has_classifier: bool) -> None:
    print(
        f"tagger benchmark, rubric {r['rubric']!r} (blank English pipeline"
        f"{' + trained classifier' if has_classifier else '; no trained classifier: run copilot tagger train'})"
    )
    print(f"\nthroughput over {r['throughput_items']} utterances (wall clock / CPU time):")
    for name, t in r["throughput"].items():
        print(
            f"  {name:<12} batch {t['batch_per_s']:8.0f} / {t['batch_per_s_cpu']:8.0f} utt/s   "
            f"per segment {t['segment_per_s']:8.0f} / {t['segment_per_s_cpu']:8.0f} utt/s "
            f"({t['segment_ms']:.3f} ms each)"
        )
    for key, title in (("heldout", "held-out set"), ("ami_es2002d", "AMI ES2002d (real meeting, weak proxy labels)")):
        data = r.get(key)
        if not data:
            print(f"\n{title}: {r.get('ami_skipped', 'skipped')}")
            continue
        first = next(iter(data.values()))
        print(f"\n{title}, {first['items']} items: macro-F1")
        for mode, s in data.items():
            tags = "  ".join(f"{k[:12]} {v['f1']:.2f}" for k, v in s["per_tag"].items())
            print(
                f"  {mode:<16} {s['macro_f1']:.3f}   ({tags})   latency median {s['latency_ms']['median']:.2f} ms,"
                f" p95 {s['latency_ms']['p95']:.2f} ms"
            )
