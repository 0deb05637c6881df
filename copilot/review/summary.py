"""What review adds on top of the folded session (`copilot.session.fold`): per-tag summaries with
their strongest quotes, where a tag sits in the transcript, and session times as text."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

from copilot import actors
from copilot.events import Tag
from copilot.session.fold import SessionView, TagState, Unit


def unit_at(units: Sequence[Unit], ms: int) -> Unit | None:
    """The unit (turn) containing `ms`, else the last one that began before it."""
    best = None
    for u in units:
        if u.start_ms <= ms < u.end_ms:
            return u
        if u.start_ms <= ms:
            best = u
    return best


def tag_unit(t: Tag, units: Sequence[Unit], unit_of: dict[str, str]) -> Unit | None:
    """The unit (turn) a tag sits on: its turn, or the one holding its first listed fragment,
    else the one at its start time. `unit_of` is `SessionView.unit_of(units)`."""
    by_id = {u.id: u for u in units}
    for key in ([t.turn_id] if t.turn_id else []) + list(t.segment_ids):
        if key in unit_of:
            return by_id[unit_of[key]]
    return unit_at(units, t.start_ms)


# --- summaries -------------------------------------------------------------------------------------


@dataclass
class Quote:
    tag_id: str
    text: str
    start_ms: int
    end_ms: int
    speaker: str
    source: str
    status: str
    confidence: float
    segment_id: str | None
    support: int = 1  # distinct raters (taggers and people) behind this moment for this tag
    source_group: str = ""  # `rules`, `llm` or `human:<name>` (copilot.actors.group of source)


@dataclass
class TagSummary:
    tag: str
    label: str
    count: int
    first_ms: int | None
    last_ms: int | None
    confirmed: int  # endorsed by a person: their own tag, or confirmed / edited by them
    rejected: int
    proposed: int
    by_source: dict[str, int]
    quotes: list[Quote]

    def to_json(self) -> dict[str, Any]:
        d = self.__dict__.copy()
        d["quotes"] = [q.__dict__ for q in self.quotes]
        return d


def _strength(t: TagState) -> tuple[int, int, float, int]:
    # A person's word outranks a machine's: human-endorsed first, then machine-confirmed or
    # edited, then unreviewed or disputed proposals; within each, the fuller verbatim evidence (it
    # shows the reader more), then confidence.
    rank = 0 if t.human_endorsed() else (1 if t.status in ("confirmed", "edited") else 2)
    return (rank, -len(t.tag.evidence), -t.tag.confidence, t.tag.start_ms)


def summarize(view: SessionView, labels: dict[str, str] | None = None, max_quotes: int = 3) -> list[TagSummary]:
    """Per-tag summary: rubric tags first (in rubric order), then any other tag ids seen."""
    labels = labels or {}
    order = list(labels) + sorted({t.tag.tag for t in view.tags} - set(labels))
    out: list[TagSummary] = []
    units = view.units()
    unit_of = view.unit_of(units)
    for tag_id in order:
        all_tags = [t for t in view.tags if t.tag.tag == tag_id]
        standing = [t for t in all_tags if t.standing]
        by_source: dict[str, int] = {}
        for t in standing:
            g = actors.group(t.source)
            by_source[g] = by_source.get(g, 0) + 1
        # One quote per moment (turn): the moments most raters stand behind come first, each
        # quoted by its strongest tag (a person's word, then confidence, then the longer evidence).
        moments: dict[str, list[TagState]] = {}
        for t in standing:
            seg = tag_unit(t.tag, units, unit_of)
            moments.setdefault(seg.id if seg else t.id, []).append(t)
        ranked = []
        for key, group in moments.items():
            backers = {actors.canonical(t.source) for t in group} | {
                u.by for t in group for u in t.history if u.status in ("confirmed", "edited")
            }
            best = min(group, key=_strength)
            ranked.append((-len(backers), _strength(best), key, best, len(backers)))
        quotes = []
        for _, _, _key, t, support in sorted(ranked)[:max_quotes]:
            seg = tag_unit(t.tag, units, unit_of)
            text = t.tag.evidence or (seg.text if seg else "")
            speaker = t.tag.speaker or (seg.speaker if seg else "")
            quotes.append(
                Quote(
                    t.id,
                    text,
                    t.tag.start_ms,
                    t.tag.end_ms,
                    speaker,
                    t.source,
                    t.status,
                    t.tag.confidence,
                    seg.id if seg else None,
                    support,
                    actors.group(t.source),
                )
            )
        out.append(
            TagSummary(
                tag=tag_id,
                label=labels.get(tag_id, tag_id),
                count=len(standing),
                first_ms=min((t.tag.start_ms for t in standing), default=None),
                last_ms=max((t.tag.start_ms for t in standing), default=None),
                confirmed=sum(1 for t in all_tags if t.human_endorsed()),
                rejected=sum(1 for t in all_tags if t.status == "rejected"),
                proposed=sum(1 for t in standing if t.status == "proposed" and t.kind == "tag.proposed"),
                by_source=by_source,
                quotes=quotes,
            )
        )
    return out


def fmt_ms(ms: int | None) -> str:
    """`mm:ss` (or `h:mm:ss`) for a time in milliseconds."""
    if ms is None:
        return "-"
    s = int(ms) // 1000
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"
