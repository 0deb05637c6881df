"""The shared vocabulary: every fact the copilot records is one of these events.

A session is an append-only log of `Event`s. Each event has a per-session `seq`
(assigned by the store when it is persisted), a `type`, and a typed payload in
`data`. Payload models below are the documented schema; `SCHEMA_VERSION` is the
`v` field on the wire. Times inside payloads are milliseconds of session audio;
`Event.ts` is wall-clock seconds (Unix time) when the event was created.

This module sits at the bottom of the dependency graph: it imports nothing from
the rest of the package but `copilot.actors` (stdlib only).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from copilot.actors import is_human

SCHEMA_VERSION = 1

EventType = Literal[
    "session.started",
    "session.ended",
    "segment.partial",
    "segment.final",
    "turn.final",
    "tag.proposed",
    "tag.updated",
    "tag.added",
    "note.added",
    "consent.confirmed",
    "status",
    "control",
]


def new_id(prefix: str) -> str:
    """Short random id with a readable prefix (`seg_`, `tag_`, `note_`, `ses_`)."""
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Word(_Payload):
    text: str
    start_ms: int
    end_ms: int
    probability: float | None = None


class SessionStarted(_Payload):
    title: str = ""
    mode: Literal["live", "replay", "import"] = "live"
    rubric: str = "default"
    speakers: list[str] = Field(default_factory=lambda: ["interviewer", "candidate"])
    source: str = ""  # device name(s) or file path, for the record
    config: dict[str, Any] = Field(default_factory=dict)


class SessionEnded(_Payload):
    reason: str = "stopped"
    duration_ms: int | None = None


class PartialSegment(_Payload):
    """An unstable hypothesis for the utterance in progress on one channel."""

    speaker: str
    channel: int = 0
    start_ms: int
    end_ms: int
    text: str


class Segment(_Payload):
    """A committed piece of transcript: never changes once emitted."""

    id: str = Field(default_factory=lambda: new_id("seg"))
    speaker: str
    channel: int = 0
    start_ms: int
    end_ms: int
    text: str
    words: list[Word] = Field(default_factory=list)


class Turn(_Payload):
    """One speaker's continuous speech on one channel, decoded again as a whole once it settled.

    Fragments (`segment.final`) are cut for latency; a turn is what readers quote, tag and
    calibrate on. `segment_ids` are the fragments it settles. A later `turn.final` with the same
    `id` and a higher `revision` (a post-call pass with a bigger model) supersedes it; the log
    stays append-only. `model` says which model produced this revision's text.
    """

    id: str = Field(default_factory=lambda: new_id("turn"))
    speaker: str
    channel: int = 0
    start_ms: int
    end_ms: int
    text: str
    words: list[Word] = Field(default_factory=list)
    segment_ids: list[str] = Field(default_factory=list)
    revision: int = 0
    model: str = ""

    def as_segment(self) -> Segment:
        """The whole turn as one `Segment` with the turn's id: taggers and the turn decoder read
        segments."""
        return Segment(
            id=self.id,
            speaker=self.speaker,
            channel=self.channel,
            start_ms=self.start_ms,
            end_ms=self.end_ms,
            text=self.text,
            words=self.words,
        )


# `retracted`: the machine withdrew its own proposal (merged into the same tag on the settled
# turn, or no longer holding there). Unlike `rejected`, nobody judged it wrong.
TagStatus = Literal["proposed", "confirmed", "rejected", "edited", "retracted"]


class Tag(_Payload):
    """A rubric tag on a span of transcript, with its evidence.

    `source` is who made it: `rules`, `llm:<model>`, `human:<name>`.
    """

    id: str = Field(default_factory=lambda: new_id("tag"))
    tag: str
    segment_ids: list[str] = Field(default_factory=list)
    start_ms: int
    end_ms: int
    speaker: str = ""
    evidence: str = ""  # a verbatim span of the transcript
    rationale: str = ""
    confidence: float = Field(default=1.0, ge=0.0, le=1.0)
    source: str = "rules"
    turn_id: str | None = None  # the turn it belongs to, once that turn has settled


class TagUpdate(_Payload):
    """A change to an existing tag: a human's verdict, or the LLM refining a rules tag.

    `by` is an actor (`human:<name>`, `rules`, `llm:<model>`; see `copilot.actors`). How updates
    fold into a tag's current state is decided in `copilot.session.fold`."""

    tag_id: str
    status: TagStatus
    by: str
    tag: str | None = None  # new tag id when edited
    evidence: str | None = None
    rationale: str | None = None
    confidence: float | None = Field(default=None, ge=0.0, le=1.0)
    # A tag carried from its fragments to their settled turn: where it points now.
    turn_id: str | None = None
    segment_ids: list[str] | None = None
    start_ms: int | None = None
    end_ms: int | None = None


class Note(_Payload):
    id: str = Field(default_factory=lambda: new_id("note"))
    text: str
    at_ms: int | None = None
    by: str = ""


class Consent(_Payload):
    """The interviewer confirmed that the candidate was told about the recording and agreed.

    Recorded before any audio is captured. `method`: `browser` (the capture page's checkbox),
    `flag` (`copilot live --consent-confirmed`), `terminal` (answered at the prompt). When it
    was confirmed is the event's `ts`.
    """

    by: str
    notice: str
    method: Literal["browser", "flag", "terminal"]


class Status(_Payload):
    """Operational facts the interviewer should see (ASR lag, tagger backend, errors)."""

    level: Literal["info", "warning", "error"] = "info"
    component: str = ""  # "asr", "tagger", "llm", "audio", "server"
    message: str = ""
    asr_lag_ms: int | None = None
    tagger: str | None = None
    details: dict[str, Any] = Field(default_factory=dict)


# --- control: protocol facts keyed by `kind`, never by message text -----------------------------------

ControlKind = Literal["caught_up", "audio_clock", "asr_lag"]


class Control(_Payload):
    """A machine-readable fact about the session's plumbing; `kind` says which one."""

    kind: ControlKind


class CaughtUp(Control):
    """To one websocket client: every stored event up to `last_seq` was sent (`sent` of them). Never stored."""

    kind: Literal["caught_up"] = "caught_up"
    last_seq: int
    sent: int


class AudioClock(Control):
    """The wall time (Unix s) at which session audio 0 ms was captured (a replay: paced by its speed).

    Stored: a client (the pipeline bench) turns `end_ms` into "when it was said" with it."""

    kind: Literal["audio_clock"] = "audio_clock"
    audio_t0: float


class AsrLag(Control):
    """Live reading, every second: captured audio the recognizer has not consumed yet. Never stored
    (stale a second later)."""

    kind: Literal["asr_lag"] = "asr_lag"
    asr_lag_ms: int
    audio_queue: int = 0  # chunks waiting
    audio_ms: int = 0  # audio captured so far
    asr_ms: int = 0  # audio transcribed so far
    dropped_ms: int = 0  # audio dropped because the recognizer fell behind
    levels_db: list[float] = Field(default_factory=list)  # loudest 100 ms per channel since the last reading (dBFS)


CONTROL_KINDS: dict[str, type[Control]] = {"caught_up": CaughtUp, "audio_clock": AudioClock, "asr_lag": AsrLag}
# Only the audio clock is a fact worth keeping; the others matter to one client, or for one second.
PERSISTED_CONTROL = frozenset({"audio_clock"})


PAYLOADS: dict[str, type[BaseModel]] = {
    "session.started": SessionStarted,
    "session.ended": SessionEnded,
    "segment.partial": PartialSegment,
    "segment.final": Segment,
    "turn.final": Turn,
    "tag.proposed": Tag,
    "tag.updated": TagUpdate,
    "tag.added": Tag,
    "note.added": Note,
    "consent.confirmed": Consent,
    "status": Status,
    "control": Control,
}

# Not persisted: they are superseded within a second and only matter live.
EPHEMERAL_TYPES = frozenset({"segment.partial"})

P = TypeVar("P", bound=BaseModel)


class Event(BaseModel):
    """The envelope on the wire and in the store."""

    model_config = ConfigDict(extra="forbid")

    v: int = SCHEMA_VERSION
    session_id: str
    seq: int | None = None  # assigned by the store; None for ephemeral events
    type: EventType
    ts: float = Field(default_factory=time.time)
    data: dict[str, Any]

    @classmethod
    def of(cls, session_id: str, payload: BaseModel, *, type: EventType | None = None) -> "Event":
        """Wrap a payload; the type is inferred except where two types share a model."""
        if type is None:
            type = _infer_type(payload)
        expected = PAYLOADS[type]
        if not isinstance(payload, expected):
            raise TypeError(f"{type} carries {expected.__name__}, not {payload.__class__.__name__}")
        return cls(session_id=session_id, type=type, data=payload.model_dump(mode="json"))

    def payload(self) -> BaseModel:
        """The typed payload (validated); a `control` event gives its kind's model."""
        if self.type == "control":
            kind = self.data.get("kind")
            if kind not in CONTROL_KINDS:
                raise ValueError(f"unknown control kind {kind!r} (expected one of {', '.join(CONTROL_KINDS)})")
            return CONTROL_KINDS[kind].model_validate(self.data)
        return PAYLOADS[self.type].model_validate(self.data)

    @property
    def persisted(self) -> bool:
        """Whether the store keeps this event (else it is only broadcast, with `seq: null`)."""
        if self.type == "control":
            return self.data.get("kind") in PERSISTED_CONTROL
        return self.type not in EPHEMERAL_TYPES


def _infer_type(payload: BaseModel) -> EventType:
    if isinstance(payload, Tag):
        # A machine tag is a proposal; a human's own tag is an addition.
        return "tag.added" if is_human(payload.source) else "tag.proposed"
    if isinstance(payload, Control):
        return "control"
    for name, model in PAYLOADS.items():
        if type(payload) is model:
            return name  # type: ignore[return-value]
    raise TypeError(f"not an event payload: {payload.__class__.__name__}")


# The longest session time any input may name (a week of audio, in ms). Times from outside (tag
# files, websocket messages) beyond it are input errors, refused before they reach the log.
MAX_SESSION_MS = 7 * 24 * 3600 * 1000
