"""What the LLM is asked and how its answer is checked: the prompt and the answer's validation.

One call covers one or more *target* segments shown inside a rolling window of the turns
before them. The model answers JSON (`{"tags": [{segment_id, tag, quote, rationale,
confidence}]}`); every tag must cite a target segment and a quote that is a verbatim span
of that segment's text. Anything else is dropped, never shown: an invented quote, an
unknown tag id, a tag on speech the rubric does not tag (interviewer turns).
"""

from __future__ import annotations

import json
import re
from typing import Any, Sequence

from copilot.events import Segment, Tag
from copilot.tagging.rubric import Rubric, RubricTag

DEFAULT_CONFIDENCE = 0.7
MAX_EXAMPLES = 6  # per tag and list: bounds the prompt, and examples beyond this add little


# --------------------------------------------------------------------------- prompt

SYSTEM_PROMPT = """\
You tag the transcript of a live senior engineering interview against a rubric.
The interviewer watches for the moments the rubric defines in the CANDIDATE's speech.

Rules:
- Tag only the segments marked ">>" in the transcript. Earlier turns are context.
- A segment may have no tag (most do not), one tag, or occasionally two.
- Use only the tag ids listed below. Respect "applies to": never tag a speaker the tag does not apply to.
- Near misses look similar but are NOT the tag: do not tag them.
- Speech-recognizer text: lowercase, missing punctuation and disfluencies are normal; judge the meaning.
- "quote" must be copied word for word from the cited segment: the shortest span that shows the behaviour.
  Never paraphrase, never join words from different segments.
- "confidence" is your probability (0 to 1) that the tag is right.

Answer with one JSON object and nothing else:
{"tags": [{"segment_id": "<id from the transcript>", "tag": "<tag id>", "quote": "<verbatim words>",
           "rationale": "<one short sentence>", "confidence": 0.0}]}
If nothing applies, answer {"tags": []}.
"""

RESPONSE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "tags": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "segment_id": {"type": "string"},
                    "tag": {"type": "string"},
                    "quote": {"type": "string"},
                    "rationale": {"type": "string"},
                    "confidence": {"type": "number"},
                },
                "required": ["segment_id", "tag", "quote", "rationale", "confidence"],
                "additionalProperties": False,
            },
        }
    },
    "required": ["tags"],
    "additionalProperties": False,
}


def rubric_prompt(rubric: Rubric) -> str:
    """The rubric as the model reads it: definition, examples and near misses per tag."""
    lines = [f"Rubric: {rubric.title}", ""]
    for tag in rubric.tags:
        lines.append(f"### {tag.id} ({tag.label})")
        lines.append(f"Applies to: {tag.applies_to} speech")
        lines.append(f"Definition: {' '.join(tag.definition.split())}")
        if tag.examples:
            lines.append("Examples (this tag):")
            lines += [f"- {ex}" for ex in tag.examples[:MAX_EXAMPLES]]
        if tag.near_misses:
            lines.append("Near misses (NOT this tag):")
            lines += [f"- {ex}" for ex in tag.near_misses[:MAX_EXAMPLES]]
        lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def transcript_prompt(window: Sequence[Segment], targets: set[str]) -> str:
    lines = ["Transcript (oldest first; [segment id] SPEAKER: text; >> marks the segments to tag):"]
    for seg in window:
        mark = ">>" if seg.id in targets else "  "
        speaker = (seg.speaker or "unknown").upper()
        lines.append(f"{mark} [{seg.id}] {speaker}: {' '.join(seg.text.split())}")
    return "\n".join(lines) + "\n"


def build_window(segments: Sequence[Segment], context: Sequence[Segment], window_turns: int) -> list[Segment]:
    """Targets plus up to `window_turns` context turns before the first of them, in time order.

    Context turns that fall between targets (an interviewer's reply between two candidate
    turns) stay in, so the model reads the conversation as it happened. Equal start times
    (batch items without timing) keep the given order: context first, then targets.
    """
    if not segments:
        return []
    target_ids = {s.id for s in segments}
    by_id: dict[str, Segment] = {}
    for seg in list(context) + list(segments):
        by_id.setdefault(seg.id, seg)
    ordered = sorted(by_id.values(), key=lambda s: s.start_ms)  # stable: ties keep their order
    first = next(i for i, s in enumerate(ordered) if s.id in target_ids)
    before = ordered[:first][-window_turns:] if window_turns > 0 else []
    return before + ordered[first:]


# --------------------------------------------------------------------------- parsing

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)


class OutputError(ValueError):
    """The model's text is not the JSON asked for."""


def parse_output(text: str) -> list[dict[str, Any]]:
    """The list of raw tag objects in the model's answer; OutputError if there is none.

    Tolerates code fences and prose around one JSON object, and a bare list of tags.
    """
    body = (text or "").strip()
    if not body:
        raise OutputError("empty answer")
    fenced = _FENCE.match(body)
    if fenced:
        body = fenced.group(1).strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        data = _first_json(body)
    if isinstance(data, dict):
        items = data.get("tags")
        if items is None and {"segment_id", "tag"} <= data.keys():
            items = [data]  # a lone tag object
    elif isinstance(data, list):
        items = data
    else:
        items = None
    if not isinstance(items, list):
        raise OutputError('JSON has no "tags" list')
    return [item for item in items if isinstance(item, dict)]


def _first_json(body: str) -> Any:
    start = min((i for i in (body.find("{"), body.find("[")) if i >= 0), default=-1)
    if start < 0:
        raise OutputError("answer is not JSON")
    try:
        data, _ = json.JSONDecoder().raw_decode(body[start:])
    except json.JSONDecodeError as exc:
        raise OutputError(f"answer is not valid JSON ({exc.msg} at char {exc.pos})") from None
    return data


_WORD = re.compile(r"[\w']+")


def _norm(word: str) -> str:
    return word.lower().replace("\u2019", "'").strip("'")


def find_verbatim(quote: str, text: str) -> str | None:
    """The exact span of `text` that `quote` reproduces, or None.

    Matching ignores case, whitespace and punctuation between words (ASR text and a model's
    copy differ there), but every word must appear, in order, contiguously. The returned
    span is the transcript's own characters, not the model's.
    """
    q_words = [_norm(m.group()) for m in _WORD.finditer(quote.replace("\u2019", "'"))]
    q_words = [w for w in q_words if w]
    if not q_words:
        return None
    matches = [m for m in _WORD.finditer(text.replace("\u2019", "'")) if _norm(m.group())]
    t_words = [_norm(m.group()) for m in matches]
    n = len(q_words)
    for i in range(len(t_words) - n + 1):
        if t_words[i : i + n] == q_words:
            return text[matches[i].start() : matches[i + n - 1].end()]
    return None


def _confidence(value: Any) -> float:
    try:
        c = float(value)
    except (TypeError, ValueError):
        return DEFAULT_CONFIDENCE
    if c != c:  # NaN
        return DEFAULT_CONFIDENCE
    if c > 1.0 and c <= 100.0:  # a percentage
        c /= 100.0
    return min(1.0, max(0.0, c))


def validate_tags(
    items: Sequence[dict[str, Any]], rubric: Rubric, targets: Sequence[Segment], source: str
) -> tuple[list[Tag], int, set[tuple[str, str]]]:
    """Turn the model's tag objects into `Tag`s, dropping any that cannot be shown as evidence.

    Returns the tags, how many were dropped, and the (segment id, tag id) pairs the model
    claimed with a quote that is not in the segment: not shown, but not "nothing here" either.
    """
    by_id = {s.id: s for s in targets}
    tags: list[Tag] = []
    seen: set[tuple[str, str]] = set()
    unverified: set[tuple[str, str]] = set()
    dropped = 0
    for item in items:
        seg = by_id.get(str(item.get("segment_id") or item.get("segment") or ""))
        rtag: RubricTag | None = rubric.get(str(item.get("tag") or item.get("tag_id") or ""))
        quote = item.get("quote") or item.get("evidence") or ""
        span = find_verbatim(str(quote), seg.text) if seg is not None and isinstance(quote, str) else None
        if seg is None or rtag is None or span is None or not rtag.applies(seg.speaker):
            dropped += 1
            if seg is not None and rtag is not None and rtag.applies(seg.speaker):
                unverified.add((seg.id, rtag.id))
            continue
        if (seg.id, rtag.id) in seen:  # the same tag twice on one segment: keep the first
            dropped += 1
            continue
        seen.add((seg.id, rtag.id))
        rationale = item.get("rationale")
        tags.append(
            Tag(
                tag=rtag.id,
                segment_ids=[seg.id],
                start_ms=seg.start_ms,
                end_ms=seg.end_ms,
                speaker=seg.speaker,
                evidence=span,
                rationale=" ".join(str(rationale).split())[:300] if rationale else "",
                confidence=_confidence(item.get("confidence")),
                source=source,
            )
        )
    return tags, dropped, unverified - seen
