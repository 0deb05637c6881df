"""Fold a session's event log into the model the review page, exports and calibration read.

The log is the truth; this is a pure view of it, typed. How updates apply (in log order:
`confirmed` / `rejected` set the status, `edited` may also change the tag id, evidence,
rationale or confidence) is decided in one place, `copilot.session.view.fold_events`, which the
REST view also uses; this module adds what review needs on top: typed payloads, the tag id as
first proposed, import-coverage status events, and per-tag summaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable

from copilot.events import Event, Note, Segment, SessionEnded, SessionStarted, Status, Tag, TagUpdate
from copilot.session.view import fold_events, is_machine


@dataclass
class TagState:
    """A tag as it stands now, plus where it came from."""

    tag: Tag  # current values (tag id / evidence / ... after edits)
    original_tag: str  # the tag id when it was first proposed or added
    kind: str  # "tag.proposed" or "tag.added"
    status: str = "proposed"
    by: str | None = None  # who made the last update
    history: list[TagUpdate] = field(default_factory=list)
    seq: int | None = None

    @property
    def id(self) -> str:
        return self.tag.id

    @property
    def source(self) -> str:
        return self.tag.source

    @property
    def human(self) -> bool:
        """A person's own tag."""
        return self.kind == "tag.added" or self.tag.source.startswith("human:")

    def human_verdict(self) -> tuple[str, str] | None:
        """(status, who) of the last verdict a person gave on this tag, if any."""
        for upd in reversed(self.history):
            if is_human(upd.by):
                return upd.status, upd.by.removeprefix("human:")
        return None

    def human_endorsed(self) -> bool:
        verdict = self.human_verdict()
        if verdict is not None:
            return verdict[0] in ("confirmed", "edited")
        return self.human

    def to_json(self) -> dict[str, Any]:
        out = self.tag.model_dump(mode="json")
        out.update(
            status=self.status,
            by=self.by,
            original_tag=self.original_tag,
            kind=self.kind,
            source_group=source_group(self.tag.source),
            history=[u.model_dump(mode="json", exclude_none=True) for u in self.history],
        )
        return out


@dataclass
class SessionView:
    session_id: str
    started: SessionStarted | None = None
    started_ts: float | None = None
    ended: SessionEnded | None = None
    segments: list[Segment] = field(default_factory=list)
    tags: list[TagState] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    last_seq: int = 0

    @property
    def rubric(self) -> str:
        return self.started.rubric if self.started else "default"

    @property
    def title(self) -> str:
        return self.started.title if self.started else ""

    def tag(self, tag_id: str) -> TagState | None:
        for t in self.tags:
            if t.id == tag_id:
                return t
        return None

    def active_tags(self) -> list[TagState]:
        """Tags that stand: everything not rejected."""
        return [t for t in self.tags if t.status != "rejected"]

    def segment_index(self) -> dict[str, Segment]:
        return {s.id: s for s in self.segments}

    def duration_ms(self) -> int:
        if self.ended and self.ended.duration_ms is not None:
            return self.ended.duration_ms
        return max((s.end_ms for s in self.segments), default=0)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.session_id,
            "title": self.title,
            "status": "ended" if self.ended else "live",
            "started_at": self.started_ts,
            "mode": self.started.mode if self.started else None,
            "rubric_name": self.rubric,
            "speakers": self.started.speakers if self.started else [],
            "segments": [s.model_dump(mode="json") for s in self.segments],
            "tags": [t.to_json() for t in self.tags],
            "notes": [n.model_dump(mode="json") for n in self.notes],
            "last_seq": self.last_seq,
            "duration_ms": self.duration_ms(),
        }


def is_human(who: str) -> bool:
    """An update's `by` (or a source) names a person unless it is a tagger (`rules`, `llm:*`, `copilot:*`)."""
    return bool(who) and not is_machine(who)


def segment_at(segments: list[Segment], ms: int) -> Segment | None:
    """The segment containing `ms`, else the last one that began before it."""
    best = None
    for s in segments:
        if s.start_ms <= ms < s.end_ms:
            return s
        if s.start_ms <= ms:
            best = s
    return best


def tag_segment(view: "SessionView", t: Tag) -> Segment | None:
    """The segment a tag points at: its first listed segment, else the one at its start time."""
    idx = view.segment_index()
    for sid in t.segment_ids:
        if sid in idx:
            return idx[sid]
    return segment_at(view.segments, t.start_ms)


def source_group(source: str) -> str:
    """The filter group of a tag source: `rules`, `llm`, or `human:<name>`."""
    if source.startswith("llm"):
        return "llm"
    if source.startswith("human:"):
        return source
    return source or "rules"


def fold(events: Iterable[Event], session_id: str | None = None) -> SessionView:
    """The log as a `SessionView`, built on the session package's `fold_events` (one folding rule).

    What `fold_events` does not keep (the tag id as first proposed, the session header, status
    events for import coverage), one extra pass over the events picks up.
    """
    events = [e for e in events if e.persisted]
    folded = fold_events(events)
    view = SessionView(session_id=session_id or (events[0].session_id if events else ""))
    first: dict[str, tuple[str, str]] = {}  # tag id -> (event type, tag id as first proposed)
    for ev in events:
        if ev.seq is not None:
            view.last_seq = max(view.last_seq, ev.seq)
        if ev.type == "session.started" and view.started is None:
            view.started = SessionStarted.model_validate(ev.data)
            view.started_ts = ev.ts
        elif ev.type == "session.ended":
            view.ended = SessionEnded.model_validate(ev.data)
        elif ev.type in ("tag.proposed", "tag.added"):
            first.setdefault(ev.data.get("id", ""), (ev.type, ev.data.get("tag", "")))
        elif ev.type == "status":
            view.statuses.append(Status.model_validate(ev.data))
    view.segments = sorted((Segment.model_validate(s) for s in folded["segments"]),
                           key=lambda s: (s.start_ms, s.end_ms))
    view.notes = [Note.model_validate(n) for n in folded["notes"]]
    tag_fields = set(Tag.model_fields)
    for d in folded["tags"]:
        kind, original = first.get(d["id"], ("tag.proposed", d["tag"]))
        history = [TagUpdate.model_validate({k: v for k, v in h.items() if k in TagUpdate.model_fields})
                   for h in d.get("history", [])]
        view.tags.append(TagState(
            tag=Tag.model_validate({k: v for k, v in d.items() if k in tag_fields}),
            original_tag=original, kind=kind, status=d.get("status", "proposed"), by=d.get("by") or None,
            history=history, seq=d.get("seq"),
        ))
    return view


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
    for tag_id in order:
        all_tags = [t for t in view.tags if t.tag.tag == tag_id]
        standing = [t for t in all_tags if t.status != "rejected"]
        by_source: dict[str, int] = {}
        for t in standing:
            g = source_group(t.source)
            by_source[g] = by_source.get(g, 0) + 1
        # One quote per moment (segment): the moments most raters stand behind come first, each
        # quoted by its strongest tag (a person's word, then confidence, then the longer evidence).
        moments: dict[str, list[TagState]] = {}
        for t in standing:
            seg = tag_segment(view, t.tag)
            moments.setdefault(seg.id if seg else t.id, []).append(t)
        ranked = []
        for key, group in moments.items():
            backers = {t.source for t in group} | {u.by for t in group for u in t.history
                                                   if u.status in ("confirmed", "edited")}
            best = min(group, key=_strength)
            ranked.append((-len(backers), _strength(best), key, best, len(backers)))
        quotes = []
        for _, _, _key, t, support in sorted(ranked)[:max_quotes]:
            seg = tag_segment(view, t.tag)
            text = t.tag.evidence or (seg.text if seg else "")
            speaker = t.tag.speaker or (seg.speaker if seg else "")
            quotes.append(Quote(t.id, text, t.tag.start_ms, t.tag.end_ms, speaker, t.source, t.status,
                                t.tag.confidence, seg.id if seg else None, support))
        out.append(TagSummary(
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
        ))
    return out


def fmt_ms(ms: int | None) -> str:
    """`mm:ss` (or `h:mm:ss`) for a time in milliseconds."""
    if ms is None:
        return "-"
    s = int(ms) // 1000
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m:02d}:{sec:02d}"
