"""Fold a session's event log into its current state: the one definition of segments, turns, tags
and notes as they stand now.

The log is the truth; this is a pure, typed view of it. The REST views, review, exports,
calibration and tag files all read it, and the panel's JS fold (`TagBook` in web/common.js)
follows the same rules; `tests/data/fold_cases.json` runs against both. The rules, in log order
(docs/events.md, "Folding"):

- `tag.proposed` starts a tag `proposed` by its source; `tag.added` starts it `confirmed` by that
  person. A second start for an id already known changes nothing (ids are unique).
- `tag.updated` sets `status` and `by` and overwrites `tag` / `evidence` / `rationale` /
  `confidence` and the move fields (`turn_id` / `segment_ids` / `start_ms` / `end_ms`) where given.
- A person's verdict outranks a later machine update: once a person added, confirmed, rejected or
  edited a tag, an update by `rules` / `llm:*` no longer changes its status, its tag id or who
  set it; it may still refine rationale, confidence and the move fields (the tag follows its
  fragments to the settled turn and keeps the person's verdict), and the evidence only if no
  person set the evidence. A machine `retracted` after a person's verdict changes nothing.
- `rejected` and `retracted` tags do not stand (not in active tags, counts, exports or
  calibration); only `rejected` counts as a rejection.
- An update of an unknown tag id changes nothing.
- `turn.final`: turns by id; the highest `revision` wins (ties: the later event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from copilot import actors
from copilot.events import (
    Event,
    Note,
    Segment,
    SessionEnded,
    SessionStarted,
    Status,
    Tag,
    TagStatus,
    TagUpdate,
    Turn,
)

NOT_STANDING: frozenset[str] = frozenset({"rejected", "retracted"})
_MOVE_FIELDS = ("turn_id", "segment_ids", "start_ms", "end_ms")
TagKind = Literal["tag.proposed", "tag.added"]


@dataclass
class TagState:
    """A tag as it stands now, plus where it came from."""

    tag: Tag  # current values (tag id / evidence / place ... after updates)
    original_tag: str  # the tag id when it was first proposed or added
    kind: TagKind
    status: TagStatus
    by: str  # the actor (canonical, see copilot.actors) who set the current status
    seq: int | None = None
    updated_seq: int | None = None
    history: list[TagUpdate] = field(default_factory=list)  # every update of this tag, oldest first
    human_verdict_given: bool = False  # a person added, confirmed, rejected or edited it
    human_evidence: bool = False  # a person wrote the evidence (their own tag, or an edit of it)

    @property
    def id(self) -> str:
        return self.tag.id

    @property
    def source(self) -> str:
        return self.tag.source

    @property
    def standing(self) -> bool:
        """Counts as a tag now: neither rejected nor retracted."""
        return self.status not in NOT_STANDING

    @property
    def human(self) -> bool:
        """A person's own tag."""
        return self.kind == "tag.added" or actors.is_human(self.tag.source)

    def human_verdict(self) -> tuple[str, str] | None:
        """(status, plain name) of the last verdict a person gave on this tag, if any."""
        for upd in reversed(self.history):
            if actors.is_human(upd.by):
                return upd.status, actors.display_name(upd.by)
        return None

    def human_endorsed(self) -> bool:
        """A person stands behind it: their own tag, or their last verdict confirmed or edited it."""
        verdict = self.human_verdict()
        if verdict is not None:
            return verdict[0] in ("confirmed", "edited")
        return self.human

    def apply(self, upd: TagUpdate, seq: int | None) -> None:
        """One `tag.updated`, by the rules in the module doc."""
        upd = upd.model_copy(update={"by": actors.canonical(upd.by)})
        self.history.append(upd)
        human = actors.is_human(upd.by)
        given = upd.model_dump(exclude_none=True)
        if self.human_verdict_given and not human:
            if upd.status == "retracted":
                return  # the machine cannot withdraw what a person ruled on
            names = ["rationale", "confidence", *_MOVE_FIELDS] + ([] if self.human_evidence else ["evidence"])
        else:
            self.status = upd.status
            self.by = upd.by
            names = ["tag", "evidence", "rationale", "confidence", *_MOVE_FIELDS]
            if human:
                self.human_verdict_given = True
                self.human_evidence = self.human_evidence or upd.evidence is not None
        changes = {k: given[k] for k in names if k in given}
        if changes:
            self.tag = self.tag.model_copy(update=changes)
        self.updated_seq = seq

    def to_json(self) -> dict[str, Any]:
        out = self.tag.model_dump(mode="json")
        out.update(
            status=self.status,
            by=self.by,
            standing=self.standing,
            original_tag=self.original_tag,
            kind=self.kind,
            source_group=actors.group(self.tag.source),
            seq=self.seq,
            updated_seq=self.updated_seq,
            history=[u.model_dump(mode="json", exclude_none=True) for u in self.history],
        )
        return out


@dataclass
class TurnState:
    """The latest revision of a turn, and the event that carried it."""

    turn: Turn
    seq: int | None = None

    @property
    def id(self) -> str:
        return self.turn.id

    @property
    def segment_ids(self) -> list[str]:
        """The fragments (`segment.final` ids) this turn settles."""
        return self.turn.segment_ids


@dataclass(frozen=True)
class Unit:
    """One row of the transcript a reader sees: a settled turn, or a fragment no turn settled
    (a session recorded with `--no-turns`, or speech cut off by a crash). Review, exports and
    calibration all count in units, so a tag marks exactly one of them."""

    id: str  # the turn id, or the fragment's own id
    kind: Literal["turn", "fragment"]
    speaker: str
    channel: int
    start_ms: int
    end_ms: int
    text: str
    segment_ids: tuple[str, ...]  # the fragments it covers
    revision: int = 0
    model: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "speaker": self.speaker,
            "channel": self.channel,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "text": self.text,
            "segment_ids": list(self.segment_ids),
            "revision": self.revision,
            "model": self.model,
        }


@dataclass
class SessionView:
    """A session's log, folded: what every reader of "the session now" uses."""

    session_id: str
    started: SessionStarted | None = None
    started_ts: float | None = None
    ended: SessionEnded | None = None
    segments: list[Segment] = field(default_factory=list)  # sorted by time
    turns: list[TurnState] = field(default_factory=list)  # latest revisions, sorted by time
    tags: list[TagState] = field(default_factory=list)  # in the order they were first seen
    notes: list[Note] = field(default_factory=list)
    statuses: list[Status] = field(default_factory=list)
    last_seq: int = 0

    @property
    def rubric(self) -> str:
        return self.started.rubric if self.started else "default"

    @property
    def title(self) -> str:
        return self.started.title if self.started else ""

    @property
    def speakers(self) -> list[str]:
        return list(self.started.speakers) if self.started else []

    def tag(self, tag_id: str) -> TagState | None:
        for t in self.tags:
            if t.id == tag_id:
                return t
        return None

    def active_tags(self) -> list[TagState]:
        """Tags that stand: neither rejected nor retracted."""
        return [t for t in self.tags if t.standing]

    def segment_index(self) -> dict[str, Segment]:
        return {s.id: s for s in self.segments}

    def turn_of_segment(self) -> dict[str, str]:
        """Fragment id -> the id of the turn that settled it."""
        return {sid: t.id for t in self.turns for sid in t.segment_ids}

    def units(self) -> list[Unit]:
        """The transcript as its reader sees it: settled turns (latest revision), plus any
        fragment no turn settled, in time order."""
        settled = self.turn_of_segment()
        out = [
            Unit(
                t.id,
                "turn",
                t.turn.speaker,
                t.turn.channel,
                t.turn.start_ms,
                t.turn.end_ms,
                t.turn.text,
                tuple(t.segment_ids),
                t.turn.revision,
                t.turn.model,
            )
            for t in self.turns
        ]
        out += [
            Unit(s.id, "fragment", s.speaker, s.channel, s.start_ms, s.end_ms, s.text, (s.id,))
            for s in self.segments
            if s.id not in settled
        ]
        return sorted(out, key=lambda u: (u.start_ms, u.end_ms))

    def unit_of(self, units: list[Unit] | None = None) -> dict[str, str]:
        """Fragment id or unit id -> the id of the unit that holds it."""
        out: dict[str, str] = {}
        for u in units if units is not None else self.units():
            out[u.id] = u.id
            for sid in u.segment_ids:
                out[sid] = u.id
        return out

    def duration_ms(self) -> int:
        if self.ended and self.ended.duration_ms is not None:
            return self.ended.duration_ms
        return max((s.end_ms for s in self.segments), default=0)

    def to_json(self) -> dict[str, Any]:
        """The JSON the pages read (`GET /api/sessions/{id}/review`, `GET /api/sessions/{id}`)."""
        return {
            "id": self.session_id,
            "title": self.title,
            "status": "ended" if self.ended else "live",
            "started_at": self.started_ts,
            "mode": self.started.mode if self.started else None,
            "rubric_name": self.rubric,
            "speakers": self.speakers,
            "segments": [s.model_dump(mode="json") for s in self.segments],
            "turns": [t.turn.model_dump(mode="json") for t in self.turns],
            "units": [u.to_json() for u in self.units()],
            "tags": [t.to_json() for t in self.tags],
            "notes": [n.model_dump(mode="json") for n in self.notes],
            "ended": self.ended.model_dump(mode="json") if self.ended else None,
            "last_seq": self.last_seq,
            "duration_ms": self.duration_ms(),
        }


def fold(events: Iterable[Event], session_id: str | None = None) -> SessionView:
    """The log (in seq order) as a `SessionView`. Events that are never stored are skipped."""
    view = SessionView(session_id=session_id or "")
    tags: dict[str, TagState] = {}
    turns: dict[str, TurnState] = {}
    for ev in events:
        if not ev.persisted:
            continue
        if not view.session_id:
            view.session_id = ev.session_id
        if ev.seq is not None:
            view.last_seq = max(view.last_seq, ev.seq)
        kind = ev.type
        if kind == "session.started":
            if view.started is None:
                view.started = SessionStarted.model_validate(ev.data)
                view.started_ts = ev.ts
        elif kind == "session.ended":
            view.ended = SessionEnded.model_validate(ev.data)
        elif kind == "segment.final":
            view.segments.append(Segment.model_validate(ev.data))
        elif kind == "turn.final":
            turn = Turn.model_validate(ev.data)
            old = turns.get(turn.id)
            if old is None or turn.revision >= old.turn.revision:
                turns[turn.id] = TurnState(turn, ev.seq)
        elif kind == "tag.proposed" or kind == "tag.added":
            tag = Tag.model_validate(ev.data)
            if tag.id in tags:
                continue
            added = kind == "tag.added"
            tags[tag.id] = TagState(
                tag=tag,
                original_tag=tag.tag,
                kind="tag.added" if added else "tag.proposed",
                status="confirmed" if added else "proposed",
                by=actors.canonical(tag.source) if added else tag.source,
                seq=ev.seq,
                updated_seq=ev.seq,
                human_verdict_given=added,
                human_evidence=added and bool(tag.evidence),
            )
        elif kind == "tag.updated":
            upd = TagUpdate.model_validate(ev.data)
            state = tags.get(upd.tag_id)
            if state is not None:  # an update of an unknown tag changes nothing
                state.apply(upd, ev.seq)
        elif kind == "note.added":
            note = Note.model_validate(ev.data)
            view.notes.append(note.model_copy(update={"by": actors.canonical(note.by)}) if note.by else note)
        elif kind == "status":
            view.statuses.append(Status.model_validate(ev.data))
    view.segments.sort(key=lambda s: (s.start_ms, s.end_ms))
    view.turns = sorted(turns.values(), key=lambda t: (t.turn.start_ms, t.turn.end_ms))
    view.tags = list(tags.values())
    return view
