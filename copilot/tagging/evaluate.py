"""Scoring a tagger against labelled utterances: per-tag precision / recall / F1, macro-F1, confusion, latency.

Items are JSONL objects `{"id", "text", "speaker"?, "context"?, "label" | "labels"}`: `label` is one tag
id or `none`; `labels` a list (empty = none). Every item is tagged through the `Tagger` protocol
(`tag(segment, context)`), one call per item, so the latency figures are those of the live path.

The confusion table is for multi-label data: each item adds one count to every (gold, predicted)
pair of its gold tags and predicted tags, with `none` standing in for an empty side. Its diagonal
holds the hits; the `none` row holds false alarms, the `none` column misses.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

from copilot.events import Segment, new_id
from copilot.tagging.base import Tagger
from copilot.tagging.rules import context_turns
from copilot.tagging.textcat import LabelledItem

NONE = "none"


def item_segment(item_id: Any, text: str, speaker: str | None, obj: dict[str, Any] | None = None) -> Segment:
    obj = obj or {}
    start = obj.get("start_ms")
    end = obj.get("end_ms")
    start = int(start) if isinstance(start, (int, float)) else 0
    end = int(end) if isinstance(end, (int, float)) else start
    return Segment(
        id=str(item_id) if item_id is not None else new_id("seg"),
        speaker=speaker or "candidate",
        start_ms=start,
        end_ms=max(start, end),
        text=text,
    )


def item_context(context: Any, speaker: str | None) -> list[Segment]:
    """An item's `context` (previous turn text, a list of them, or [{speaker, text}]) as Segments."""
    return [
        Segment(id=f"ctx_{i}", speaker=sp, start_ms=0, end_ms=0, text=tx)
        for i, (sp, tx) in enumerate(context_turns(context, speaker))
    ]


@dataclass
class TagScore:
    tag: str
    tp: int = 0
    fp: int = 0
    fn: int = 0

    @property
    def support(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


@dataclass
class EvalReport:
    tagger: str
    data: str
    n_items: int
    tags: list[TagScore]
    confusion: dict[str, dict[str, int]]
    latencies_ms: list[float] = field(repr=False, default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)  # misclassified items (for --errors)

    @property
    def macro_f1(self) -> float:
        scored = [t for t in self.tags if t.support > 0]
        return sum(t.f1 for t in scored) / len(scored) if scored else 0.0

    @property
    def latency_median_ms(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else 0.0

    @property
    def latency_p95_ms(self) -> float:
        return _percentile(self.latencies_ms, 95)

    def to_json(self) -> dict[str, Any]:
        return {
            "tagger": self.tagger,
            "data": self.data,
            "items": self.n_items,
            "macro_f1": round(self.macro_f1, 4),
            "tags": {
                t.tag: {
                    "precision": round(t.precision, 4),
                    "recall": round(t.recall, 4),
                    "f1": round(t.f1, 4),
                    "support": t.support,
                    "tp": t.tp,
                    "fp": t.fp,
                    "fn": t.fn,
                }
                for t in self.tags
            },
            "confusion": self.confusion,
            "latency_ms": {"median": round(self.latency_median_ms, 3), "p95": round(self.latency_p95_ms, 3)},
            "errors": self.errors,
        }

    def to_text(self) -> str:
        lines = [f"tagger {self.tagger} on {self.data} ({self.n_items} items)", ""]
        w = max([len(t.tag) for t in self.tags] + [8])
        lines.append(f"{'tag':<{w}}  precision  recall     f1  support")
        for t in self.tags:
            lines.append(f"{t.tag:<{w}}  {t.precision:9.3f}  {t.recall:6.3f}  {t.f1:5.3f}  {t.support:7d}")
        lines.append(f"{'macro-F1':<{w}}  {'':9}  {'':6}  {self.macro_f1:5.3f}")
        lines.append("")
        cols = list(self.confusion)
        short = {c: _abbrev(c) for c in cols}
        lines.append("confusion (rows gold, columns predicted):")
        lines.append(f"{'':<{w}}  " + "  ".join(f"{short[c]:>6}" for c in cols))
        for g in cols:
            lines.append(f"{g:<{w}}  " + "  ".join(f"{self.confusion[g][p]:>6d}" for p in cols))
        lines.append("")
        lines.append(f"latency per item: median {self.latency_median_ms:.2f} ms, p95 {self.latency_p95_ms:.2f} ms")
        return "\n".join(lines)


def _abbrev(tag: str) -> str:
    if tag == NONE:
        return NONE
    parts = tag.split("_")
    return "".join(p[0] for p in parts).upper() if len(parts) > 1 else tag[:6]


def _percentile(xs: Sequence[float], q: float) -> float:
    if not xs:
        return 0.0
    s = sorted(xs)
    k = (len(s) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def evaluate(
    tagger: Tagger,
    items: Sequence[LabelledItem],
    tag_ids: Sequence[str],
    data_name: str = "",
    keep_errors: bool = True,
    label: str | None = None,
) -> EvalReport:
    """Tag every item (one `tag()` call each, timed) and score against the gold labels."""
    tag_ids = list(tag_ids)
    extra = sorted({l for it in items for l in it.labels if l not in tag_ids})
    all_tags = tag_ids + extra
    scores = {t: TagScore(t) for t in all_tags}
    cols = all_tags + [NONE]
    confusion = {g: {p: 0 for p in cols} for g in cols}
    latencies: list[float] = []
    errors: list[dict[str, Any]] = []
    for it in items:
        seg = item_segment(it.id, it.text, it.speaker)
        ctx = item_context(it.context, it.speaker)
        t0 = time.perf_counter()
        tags = tagger.tag(seg, ctx)
        latencies.append((time.perf_counter() - t0) * 1000)
        pred = sorted({t.tag for t in tags})
        gold = set(it.labels)
        for t in all_tags:
            g, p = t in gold, t in pred
            if g and p:
                scores[t].tp += 1
            elif p:
                scores[t].fp += 1
            elif g:
                scores[t].fn += 1
        for gold_tag in sorted(gold) or [NONE]:
            for pred_tag in pred or [NONE]:
                confusion.setdefault(gold_tag, {c: 0 for c in cols}).setdefault(pred_tag, 0)
                confusion[gold_tag][pred_tag] += 1
        if keep_errors and set(pred) != gold:
            errors.append({"id": it.id, "text": it.text, "gold": sorted(gold), "predicted": pred})
    return EvalReport(
        tagger=label or str(getattr(tagger, "name", type(tagger).__name__)),
        data=data_name,
        n_items=len(items),
        tags=[scores[t] for t in all_tags],
        confusion=confusion,
        latencies_ms=latencies,
        errors=errors,
    )
