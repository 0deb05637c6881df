"""Client -> server websocket messages: validated, then turned into events of the session log.

Also the connection's own parameters (`after`, `rater`): everything a client sends is checked
here, and anything refused is a one-line `BadMessage`, never an exception that closes the socket.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from copilot import actors
from copilot.events import MAX_SESSION_MS, Event, Note, Tag, TagUpdate
from copilot.safejson import JSONRefused, loads_bounded

MAX_MESSAGE_BYTES = 8 * 1024
MAX_MESSAGE_DEPTH = 4  # {"op": ..., "segment_ids": [...]} is 2
MAX_SEQ = 2**63 - 1  # SQLite's INTEGER: a larger `after` cannot name any event
# A name: letters/digits (any script), `. _ @ -` and inner spaces; no control characters, no
# leading or trailing space. Used with fullmatch, so "dave\n" is refused (`$` would match before it).
_RATER = re.compile(r"[\w.@-](?:[\w.@ -]{0,38}[\w.@-])?")


class _Op(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: "100" and true are not ints


class Confirm(_Op):
    op: Literal["confirm"]
    tag_id: str = Field(min_length=1, max_length=64)


class Reject(_Op):
    op: Literal["reject"]
    tag_id: str = Field(min_length=1, max_length=64)


class Edit(_Op):
    op: Literal["edit"]
    tag_id: str = Field(min_length=1, max_length=64)
    tag: str | None = Field(default=None, min_length=1, max_length=64)
    evidence: str | None = Field(default=None, max_length=2000)


class AddTag(_Op):
    op: Literal["add_tag"]
    tag: str = Field(min_length=1, max_length=64)
    at_ms: int | None = Field(default=None, ge=0, le=MAX_SESSION_MS)
    segment_ids: list[Annotated[str, Field(max_length=64)]] | None = Field(default=None, max_length=50)


class AddNote(_Op):
    op: Literal["note"]
    text: str = Field(min_length=1, max_length=4000)
    at_ms: int | None = Field(default=None, ge=0, le=MAX_SESSION_MS)


ClientOp = Annotated[Union[Confirm, Reject, Edit, AddTag, AddNote], Field(discriminator="op")]
_ADAPTER: TypeAdapter[Confirm | Reject | Edit | AddTag | AddNote] = TypeAdapter(ClientOp)


class BadMessage(Exception):
    """A client message that is refused; the text goes back to that client as an error status."""


def parse_rater(raw: str | None) -> str:
    """The connection's `rater` parameter (default `interviewer`), or BadMessage."""
    if raw is None or raw == "":
        return "interviewer"
    if not _RATER.fullmatch(raw):
        raise BadMessage("bad 'rater' parameter (letters, digits, . _ @ - and inner spaces; up to 40)")
    return raw


def parse_after(raw: str | None) -> int:
    """The connection's `after` parameter (default 0), or BadMessage: negative, non-integer and
    beyond-any-seq values are refused, never clamped."""
    if raw is None or raw == "":
        return 0
    if not raw.isascii() or not raw.isdigit() or len(raw) > 19 or int(raw) > MAX_SEQ:
        raise BadMessage(f"bad 'after' parameter (an integer from 0 to {MAX_SEQ})")
    return int(raw)


def parse_message(raw: str | bytes) -> Confirm | Reject | Edit | AddTag | AddNote:
    size = len(raw.encode() if isinstance(raw, str) else raw)
    if size > MAX_MESSAGE_BYTES:
        raise BadMessage(f"message too large: {size} bytes (limit {MAX_MESSAGE_BYTES})")
    try:
        obj = loads_bounded(raw, max_depth=MAX_MESSAGE_DEPTH)
    except JSONRefused as exc:
        raise BadMessage(f"message refused: {exc}") from None
    if not isinstance(obj, dict):
        raise BadMessage("message must be a JSON object")
    if "op" not in obj:
        raise BadMessage("message has no 'op' (expected confirm, reject, edit, add_tag or note)")
    if obj["op"] not in ("confirm", "reject", "edit", "add_tag", "note"):
        raise BadMessage(f"unknown op {str(obj['op'])[:40]!r} (expected confirm, reject, edit, add_tag or note)")
    try:
        return _ADAPTER.validate_python(obj)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"][1:]) or "message"
        msg = first["msg"].splitlines()[0] if first["msg"] else "invalid"
        raise BadMessage(f"invalid {obj['op']} message: {where}: {msg}") from None


def op_to_event(
    op: Confirm | Reject | Edit | AddTag | AddNote,
    *,
    session_id: str,
    rater: str,
    tag_exists: Any,
    rubric_tag_ids: set[str] | None,
    segments: Any,
) -> Event:
    """Build the event a valid op stands for, or raise BadMessage when the session refuses it.

    `tag_exists(tag_id) -> bool`; `segments(ids or None) -> list[segment dict]` in log order;
    `rubric_tag_ids` is None when the rubric could not be loaded (then any tag id is accepted).
    """

    def check_rubric(tag: str) -> None:
        if rubric_tag_ids is not None and tag not in rubric_tag_ids:
            raise BadMessage(f"unknown rubric tag {tag!r} (rubric has: {', '.join(sorted(rubric_tag_ids))})")

    who = actors.human(rater)  # the connection's rater is a person
    if isinstance(op, (Confirm, Reject, Edit)):
        if not tag_exists(op.tag_id):
            raise BadMessage(f"no tag {op.tag_id!r} in this session")
        if isinstance(op, Confirm):
            upd = TagUpdate(tag_id=op.tag_id, status="confirmed", by=who)
        elif isinstance(op, Reject):
            upd = TagUpdate(tag_id=op.tag_id, status="rejected", by=who)
        else:
            if op.tag is None and op.evidence is None:
                raise BadMessage("edit needs 'tag' or 'evidence'")
            if op.tag is not None:
                check_rubric(op.tag)
            upd = TagUpdate(tag_id=op.tag_id, status="edited", by=who, tag=op.tag, evidence=op.evidence)
        return Event.of(session_id, upd)
    if isinstance(op, AddTag):
        check_rubric(op.tag)
        return Event.of(session_id, _human_tag(op, rater, segments))
    return Event.of(session_id, Note(text=op.text, at_ms=op.at_ms, by=who))


def _human_tag(op: AddTag, rater: str, segments: Any) -> Tag:
    """A human's tag on the moment they mean: the segments named, else the one at `at_ms`, else the latest."""
    chosen: list[dict[str, Any]]
    if op.segment_ids:
        chosen = segments(op.segment_ids)
        missing = set(op.segment_ids) - {s["id"] for s in chosen}
        if missing:
            raise BadMessage(f"no segment {sorted(missing)[0]!r} in this session")
    else:
        all_segs = segments(None)
        chosen = []
        if op.at_ms is not None:
            before = [s for s in all_segs if s["start_ms"] <= op.at_ms]
            containing = [s for s in before if s["end_ms"] >= op.at_ms]
            chosen = containing[-1:] or before[-1:]
        elif all_segs:
            chosen = all_segs[-1:]
    if chosen:
        start = min(s["start_ms"] for s in chosen)
        end = max(s["end_ms"] for s in chosen)
        speaker = chosen[-1].get("speaker", "")
        evidence = " ".join(s.get("text", "") for s in chosen).strip()
    else:
        start = end = op.at_ms or 0
        speaker = ""
        evidence = ""
    return Tag(
        tag=op.tag,
        segment_ids=[s["id"] for s in chosen],
        start_ms=start,
        end_ms=end,
        speaker=speaker,
        evidence=evidence,
        confidence=1.0,
        source=actors.human(rater),
    )
