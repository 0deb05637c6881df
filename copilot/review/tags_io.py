"""A rater's tags as a file: export from one session log, import into another copy of it.

Schema (documented in docs/calibration.md):

    {"format": "interview-copilot.tags", "version": 1, "session_id": "ses_...", "rater": "alice",
     "rubric": "default", "exported_at": "...", "coverage": {"start_ms": 0, "end_ms": 600000} | null,
     "tags": [{"id": "tag_...", "tag": "requirement_gathering", "start_ms": 1200, "end_ms": 4800,
               "segment_ids": ["seg_..."], "speaker": "candidate", "evidence": "...", "note": "..."}]}

Import validates the whole file before writing anything, then appends every tag (as
`tag.added` with source `human:<rater>`) plus one `status` event that records the import
(rater, coverage, a digest of the tags) in a single store transaction.

Limits (docs/calibration.md): a file is at most MAX_FILE_BYTES, holds at most MAX_TAGS tags, and
every field has a length cap, so one file cannot bloat the log that every view then folds. Ints
are strict (`true` is not 1) and times are bounded by MAX_SESSION_MS.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from typing import TYPE_CHECKING, Annotated, Any, Sequence

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from copilot import actors
from copilot.errors import CopilotError
from copilot.events import MAX_SESSION_MS, Event, Status, Tag
from copilot.review.calibration import COVERAGE_COMPONENT, claims_by_rater, normalize_rater
from copilot.safejson import JSONRefused, loads_bounded
from copilot.session.fold import SessionView, fold

if TYPE_CHECKING:
    from copilot.session.store import SessionStore

TAGS_FORMAT = "interview-copilot.tags"
TAGS_VERSION = 1
RESERVED_RATERS = frozenset({"rules", "llm", "copilot"})  # `tags export --rater rules` exports the copilot's tags
_RATER = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}")  # used with fullmatch: no "dave\n"

MAX_FILE_BYTES = 2 * 1024 * 1024
MAX_TAGS = 5_000
MAX_SEGMENT_IDS = 200  # per tag
MAX_ID = 80  # tag ids, segment ids, session id
MAX_NAME = 80  # tag, speaker, rubric, exported_at
MAX_TEXT = 4_000  # evidence, note


class TagFileError(CopilotError):
    """A tag file that cannot be imported (malformed, another session, unknown tag, duplicate)."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # strict: a bool is not an int


_Ms = Field(ge=0, le=MAX_SESSION_MS)


class FileTag(_Strict):
    id: str | None = Field(default=None, min_length=1, max_length=MAX_ID)
    tag: str = Field(min_length=1, max_length=MAX_NAME)
    start_ms: int = _Ms
    end_ms: int = _Ms
    segment_ids: list[Annotated[str, Field(max_length=MAX_ID)]] = Field(
        default_factory=list, max_length=MAX_SEGMENT_IDS
    )
    speaker: str = Field(default="", max_length=MAX_NAME)
    evidence: str = Field(default="", max_length=MAX_TEXT)
    note: str = Field(default="", max_length=MAX_TEXT)


class Coverage(_Strict):
    start_ms: int | None = Field(default=None, ge=0, le=MAX_SESSION_MS)
    end_ms: int | None = Field(default=None, ge=0, le=MAX_SESSION_MS)

    @model_validator(mode="after")
    def _ordered(self) -> "Coverage":
        if self.start_ms is not None and self.end_ms is not None and self.end_ms < self.start_ms:
            raise ValueError(f"coverage ends ({self.end_ms}) before it starts ({self.start_ms})")
        return self


class TagFile(_Strict):
    format: str
    version: int
    session_id: str = Field(max_length=MAX_ID)
    rater: str = Field(max_length=MAX_NAME)
    rubric: str = Field(default="", max_length=MAX_NAME)
    exported_at: str = Field(default="", max_length=MAX_NAME)
    coverage: Coverage | None = None
    tags: list[FileTag] = Field(max_length=MAX_TAGS)


def rater_name(name: str) -> str:
    """`alice` or `human:alice` -> `alice`; anything else is refused."""
    bare = actors.display_name(actors.human(name))
    if not _RATER.fullmatch(bare):
        raise TagFileError(f"bad rater name {name!r} (letters, digits, . _ @ - ; up to 64 characters)")
    return bare


# --- export ----------------------------------------------------------------------------------------


def export_tags(view: SessionView, rater: str) -> dict[str, Any]:
    """The rater's standing tags in this session (their own, plus copilot tags they confirmed/edited).

    `rules` / `llm` export the copilot's own tags as rater copilot:rules / copilot:llm would count them
    (to be imported elsewhere under a person's name, e.g. as a baseline)."""
    bare = rater_name(rater)
    rid = normalize_rater(bare)
    claims = claims_by_rater(view).get(rid, [])
    segs = view.segment_index()
    tags_out = []
    notes = {t.id: t.tag.rationale for t in view.tags}
    for c in sorted(claims, key=lambda c: (c.start_ms, c.tag_id)):
        speaker = next((segs[s].speaker for s in c.segment_ids if s in segs), "")
        tags_out.append(
            {
                "id": c.tag_id,
                "tag": c.tag,
                "start_ms": c.start_ms,
                "end_ms": c.end_ms,
                "segment_ids": c.segment_ids,
                "speaker": speaker,
                "evidence": c.evidence,
                "note": notes.get(c.tag_id, "") or "",
            }
        )
    coverage = None
    for st in view.statuses:  # an imported rater keeps the coverage they declared
        if st.component == COVERAGE_COMPONENT and st.details.get("rater") == rid:
            coverage = st.details.get("coverage")
    return {
        "format": TAGS_FORMAT,
        "version": TAGS_VERSION,
        "session_id": view.session_id,
        "rater": bare,
        "rubric": view.rubric,
        "exported_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "coverage": coverage,
        "tags": tags_out,
    }


# --- import ----------------------------------------------------------------------------------------


def read_tag_file(name: str) -> tuple[str, str]:
    """The text of a tag file (`-` = stdin) and the name to report it by; refused past MAX_FILE_BYTES
    before it is read whole."""
    import sys
    from pathlib import Path

    if name == "-":
        data = sys.stdin.buffer.read(MAX_FILE_BYTES + 1)
        where = "stdin"
    else:
        path = Path(name)
        where = str(path)
        try:
            with path.open("rb") as f:
                data = f.read(MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            raise TagFileError(f"{path}: no such file") from None
        except OSError as exc:
            raise TagFileError(f"{path}: cannot read ({exc.__class__.__name__})") from None
    _check_size(len(data), where)
    try:
        return data.decode("utf-8"), where
    except UnicodeDecodeError:
        raise TagFileError(f"{where}: cannot read (not UTF-8 text)") from None


def _check_size(size: int, source_name: str) -> None:
    if size > MAX_FILE_BYTES:
        raise TagFileError(f"{source_name}: larger than the {MAX_FILE_BYTES // (1024 * 1024)} MiB a tag file may be")


def parse_tag_file(text: str, source_name: str = "tag file") -> TagFile:
    _check_size(len(text.encode("utf-8", "surrogatepass")), source_name)
    try:
        raw = loads_bounded(text)
    except JSONRefused as exc:
        raise TagFileError(f"{source_name}: {exc}") from None
    if not isinstance(raw, dict):
        raise TagFileError(f"{source_name}: not a tag file (expected a JSON object)")
    if raw.get("format") != TAGS_FORMAT:
        raise TagFileError(f"{source_name}: not a tag file ('format' must be {TAGS_FORMAT!r})")
    version = raw.get("version")
    if type(version) is not int or version != TAGS_VERSION:  # `true == 1` in Python
        raise TagFileError(
            f"{source_name}: unsupported tag file version {_short(version)} (this copilot reads {TAGS_VERSION})"
        )
    tags = raw.get("tags")
    if isinstance(tags, list) and len(tags) > MAX_TAGS:  # before validating each of them
        raise TagFileError(f"{source_name}: {len(tags)} tags; a tag file holds at most {MAX_TAGS}")
    try:
        return TagFile.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        msg = err["msg"].splitlines()[0] if err["msg"] else "invalid"
        raise TagFileError(f"{source_name}: malformed at {where}: {msg}") from None


def _short(value: Any) -> str:
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def digest(tags: Sequence[FileTag]) -> str:
    """Content identity of a set of tags, independent of order and ids."""
    items = sorted((t.tag, t.start_ms, t.end_ms, tuple(sorted(t.segment_ids))) for t in tags)
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def plan_import(
    view: SessionView,
    tag_file: TagFile,
    rubric_tag_ids: set[str] | None,
    rater: str | None = None,
    source_name: str = "tag file",
) -> list[Event]:
    """Validate `tag_file` against the session and return the events to append (nothing written)."""
    sid = view.session_id
    if tag_file.session_id != sid:
        raise TagFileError(f"{source_name} is for session {tag_file.session_id}, not {sid}")
    bare = rater_name(rater or tag_file.rater)
    if bare in RESERVED_RATERS:
        raise TagFileError(
            f"{source_name}: rater name {bare!r} is reserved for the copilot's own tags; "
            f"import under a person's name with --rater NAME"
        )
    source = actors.human(bare)
    seg_ids = {s.id for s in view.segments}
    existing_ids = {t.id for t in view.tags}
    seen_ids: set[str] = set()
    seen_content: dict[tuple[Any, ...], int] = {}
    for i, t in enumerate(tag_file.tags):
        where = f"{source_name}: tag #{i + 1}"
        if rubric_tag_ids is not None and t.tag not in rubric_tag_ids:
            raise TagFileError(
                f"{where}: unknown tag id {t.tag!r} (rubric {view.rubric} has: {', '.join(sorted(rubric_tag_ids))})"
            )
        if t.end_ms < t.start_ms:
            raise TagFileError(f"{where}: end_ms {t.end_ms} is before start_ms {t.start_ms}")
        missing = [s for s in t.segment_ids if s not in seg_ids]
        if missing:
            raise TagFileError(f"{where}: segment {missing[0]} is not in session {sid}")
        if t.id:
            if t.id in seen_ids:
                raise TagFileError(f"{where}: tag id {t.id} appears twice in the file")
            seen_ids.add(t.id)
        key = (t.tag, t.start_ms, t.end_ms, tuple(sorted(t.segment_ids)))
        if key in seen_content:  # the same judgment twice would count twice in calibration
            raise TagFileError(f"{where}: repeats tag #{seen_content[key] + 1} (same tag, times and segments)")
        seen_content[key] = i
    d = digest(tag_file.tags)
    for st in view.statuses:
        if st.component == COVERAGE_COMPONENT and st.details.get("rater") == source and st.details.get("digest") == d:
            raise TagFileError(
                f"{source_name}: these {len(tag_file.tags)} tags of rater {bare} were already "
                f"imported into session {sid}"
            )
    clash = [t.id for t in tag_file.tags if t.id and t.id in existing_ids]
    if clash:
        raise TagFileError(
            f"{source_name}: tag {clash[0]} is already in session {sid} "
            f"(duplicate import of {len(clash)} of {len(tag_file.tags)} tags)"
        )
    out = []
    for t in tag_file.tags:
        tag = Tag(
            tag=t.tag,
            segment_ids=t.segment_ids,
            start_ms=t.start_ms,
            end_ms=t.end_ms,
            speaker=t.speaker,
            evidence=t.evidence,
            rationale=t.note,
            confidence=1.0,
            source=source,
            **({"id": t.id} if t.id else {}),
        )
        out.append(Event.of(sid, tag, type="tag.added"))
    cov = tag_file.coverage.model_dump() if tag_file.coverage else None
    out.append(
        Event.of(
            sid,
            Status(
                level="info",
                component=COVERAGE_COMPONENT,
                message=f"imported {len(tag_file.tags)} tags from rater {bare}",
                details={"rater": source, "digest": d, "count": len(tag_file.tags), "coverage": cov},
            ),
        )
    )
    return out


def import_tags(
    store: SessionStore,
    session_id: str,
    text: str,
    rubric_tag_ids: set[str] | None,
    rater: str | None = None,
    source_name: str = "tag file",
) -> list[Event]:
    from copilot.errors import SessionError

    if not store.exists(session_id):
        raise SessionError(f"no session {session_id}")
    tag_file = parse_tag_file(text, source_name)
    view = fold(store.events(session_id), session_id)
    planned = plan_import(view, tag_file, rubric_tag_ids, rater, source_name)
    return store.append_many(planned)  # one transaction: all of the file or none of it
