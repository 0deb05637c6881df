"""Rubrics: the tags an interviewer looks for, loaded from YAML and validated.

A rubric file (`rubric_tags/<name>.yaml`) names its tags with a definition, positive
examples, near misses, a colour and a hotkey for the panel, and optional `cues` that the
rules tagger compiles into patterns. A bad file is a `RubricError` naming the file, the
field and the line: YAML node marks are kept so a pydantic error path maps to a line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from copilot.config import rubrics_dir
from copilot.errors import RubricError

_HEX = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")
_ID = re.compile(r"^[a-z][a-z0-9_]*$")

AppliesTo = Literal["candidate", "interviewer", "any"]


def is_interviewer(speaker: str | None) -> bool:
    """Interviewer speech is context, not tagged: any speaker named `interviewer...`."""
    return speaker is not None and speaker.strip().lower().startswith("interviewer")


def speaker_applies(applies_to: str, speaker: str | None) -> bool:
    if applies_to == "any":
        return True
    if applies_to == "interviewer":
        return is_interviewer(speaker)
    return not is_interviewer(speaker)


class Cues(BaseModel):
    """Hints for the rules tagger; families of generic patterns are built in (see rules.py)."""

    model_config = ConfigDict(extra="forbid")

    families: list[str] = Field(default_factory=list)  # names of built-in cue families
    phrases: list[str] = Field(default_factory=list)  # extra literal phrases (lowercase, matched on lemmas/words)


class RubricTag(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    label: str
    colour: str
    hotkey: str
    definition: str
    examples: list[str] = Field(default_factory=list)
    near_misses: list[str] = Field(default_factory=list)
    applies_to: AppliesTo = "candidate"
    cues: Cues = Field(default_factory=Cues)

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("must be lowercase letters, digits and underscores, starting with a letter")
        return v

    @field_validator("colour")
    @classmethod
    def _colour(cls, v: str) -> str:
        if not _HEX.match(v):
            raise ValueError(f"{v!r} is not a hex colour like #1f77b4")
        return v.lower()

    @field_validator("hotkey", mode="before")
    @classmethod
    def _hotkey(cls, v: Any) -> str:
        if isinstance(v, int) and not isinstance(v, bool):
            v = str(v)  # `hotkey: 1` in YAML is an int
        if not isinstance(v, str) or len(v) != 1 or v.isspace():
            raise ValueError("must be a single key")
        return v

    @field_validator("label", "definition")
    @classmethod
    def _nonempty(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("must not be empty")
        return v

    def applies(self, speaker: str | None) -> bool:
        return speaker_applies(self.applies_to, speaker)


class Rubric(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str
    version: str
    title: str
    description: str = ""
    tags: list[RubricTag] = Field(min_length=1)

    @field_validator("version", mode="before")
    @classmethod
    def _version(cls, v: Any) -> str:
        return str(v) if isinstance(v, (int, float)) else v

    @model_validator(mode="after")
    def _unique(self) -> "Rubric":
        seen_ids: dict[str, int] = {}
        seen_keys: dict[str, int] = {}
        for i, tag in enumerate(self.tags):
            if tag.id in seen_ids:
                raise _FieldError(("tags", i, "id"), f"duplicate tag id {tag.id!r} (also tags[{seen_ids[tag.id]}])")
            seen_ids[tag.id] = i
            key = tag.hotkey.lower()
            if key in seen_keys:
                raise _FieldError(
                    ("tags", i, "hotkey"), f"duplicate hotkey {tag.hotkey!r} (also tags[{seen_keys[key]}])"
                )
            seen_keys[key] = i
        return self

    @property
    def tag_ids(self) -> list[str]:
        return [t.id for t in self.tags]

    def get(self, tag_id: str) -> RubricTag | None:
        for t in self.tags:
            if t.id == tag_id:
                return t
        return None

    def to_json(self) -> dict[str, Any]:
        """The rubric as the web panel and `/api/rubrics/{name}` serve it."""
        return self.model_dump(mode="json")


class _FieldError(ValueError):
    """A model-level error that knows which field it is about (for the line number)."""

    def __init__(self, loc: tuple[Any, ...], msg: str) -> None:
        super().__init__(msg)
        self.loc = loc
        self.msg = msg


# ---------------------------------------------------------------- loading


def resolve_rubric_path(name_or_path: str | Path) -> Path:
    """`default` -> rubric_tags/default.yaml; anything with a slash or suffix is a path."""
    text = str(name_or_path)
    p = Path(text)
    if p.suffix in (".yaml", ".yml") or "/" in text or p.exists():
        if not p.is_file():
            raise RubricError(f"{text}: rubric file not found")
        return p
    for suffix in (".yaml", ".yml"):
        cand = rubrics_dir() / f"{text}{suffix}"
        if cand.is_file():
            return cand
    known = ", ".join(sorted(list_rubrics())) or "none"
    raise RubricError(f"unknown rubric {text!r} (known: {known}; or give a path to a .yaml file)")


def list_rubrics() -> list[str]:
    d = rubrics_dir()
    if not d.is_dir():
        return []
    return sorted({p.stem for p in d.glob("*.y*ml")})


def load_rubric(name_or_path: str | Path = "default") -> Rubric:
    """Load and validate a rubric by name (in `rubric_tags/`) or path. Raises RubricError."""
    path = resolve_rubric_path(name_or_path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RubricError(f"{path}: cannot read rubric: {exc}") from None
    return parse_rubric(text, str(path))


MAX_RUBRIC_BYTES = 1024 * 1024
MAX_RUBRIC_DEPTH = 32  # a rubric nests 4 deep; the YAML composer recurses per level


def _check_shape(text: str, filename: str) -> None:
    """Refuse, before composing, what would make loading explode: a huge file, deep nesting
    (RecursionError) and aliases (`*a`: a few lines of them expand to billions of nodes)."""
    if len(text) > MAX_RUBRIC_BYTES:
        raise RubricError(f"{filename}: larger than {MAX_RUBRIC_BYTES // 1024} KiB; a rubric is a short file")
    depth = 0
    for event in yaml.parse(text, Loader=yaml.SafeLoader):  # an event stream: no recursion
        if isinstance(event, yaml.AliasEvent):
            raise RubricError(
                f"{filename}: line {event.start_mark.line + 1}: YAML aliases (*name) are not allowed in a rubric"
            )
        if isinstance(event, yaml.CollectionStartEvent):
            depth += 1
            if depth > MAX_RUBRIC_DEPTH:
                raise RubricError(
                    f"{filename}: line {event.start_mark.line + 1}: nested deeper than {MAX_RUBRIC_DEPTH} levels"
                )
        elif isinstance(event, yaml.CollectionEndEvent):
            depth -= 1


def parse_rubric(text: str, filename: str = "<rubric>") -> Rubric:
    try:
        _check_shape(text, filename)
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "unknown line"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise RubricError(f"{filename}: {where}: invalid YAML: {problem}") from None
    if not isinstance(data, dict):
        raise RubricError(f"{filename}: line 1: a rubric must be a mapping with id, version, title, tags")
    lines = _line_index(node)
    try:
        return Rubric.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = tuple(err["loc"])
        msg = err["msg"]
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, _FieldError):
            loc, msg = ctx_err.loc, ctx_err.msg
        elif msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        field = _format_loc(loc)
        line = _line_for(lines, loc)
        raise RubricError(f"{filename}: line {line}: field {field}: {msg}") from None


def _format_loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "<root>"


def _line_index(node: yaml.Node | None) -> dict[tuple[Any, ...], int]:
    """Map every field path (('tags', 0, 'hotkey')) to its 1-based line in the file."""
    index: dict[tuple[Any, ...], int] = {}

    def walk(n: yaml.Node, path: tuple[Any, ...]) -> None:
        index[path] = n.start_mark.line + 1
        if isinstance(n, yaml.MappingNode):
            for k, v in n.value:
                key = k.value
                # the key's own line is where a reader looks for the field
                index[path + (key,)] = k.start_mark.line + 1
                walk_child(v, path + (key,), k.start_mark.line + 1)
        elif isinstance(n, yaml.SequenceNode):
            for i, item in enumerate(n.value):
                walk(item, path + (i,))

    def walk_child(n: yaml.Node, path: tuple[Any, ...], key_line: int) -> None:
        walk(n, path)
        index[path] = key_line

    if node is not None:
        walk(node, ())
    return index


def _line_for(lines: dict[tuple[Any, ...], int], loc: tuple[Any, ...]) -> int:
    # A missing field has no line of its own: report its parent's (the tag's first line).
    for cut in range(len(loc), -1, -1):
        if loc[:cut] in lines:
            return lines[loc[:cut]]
    return 1
