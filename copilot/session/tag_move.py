"""A machine tag carried onto a settled turn: the one way the live pipeline (`TagStage.on_turn`)
and post-call refinement (`refine.py`) move a tag, so a chip keeps its id (and a person's
verdict on it) when its fragments become a turn or the turn a new revision (docs/turns.md)."""

from __future__ import annotations

from typing import Any

from copilot.events import Tag, TagUpdate, Turn


def turn_place(turn: Turn) -> dict[str, Any]:
    """Where a tag on `turn` points: the move fields of `Tag` and `TagUpdate`."""
    return {
        "turn_id": turn.id,
        "segment_ids": list(turn.segment_ids),
        "start_ms": turn.start_ms,
        "end_ms": turn.end_ms,
    }


def place_on_turn(tag: Tag, turn: Turn, **changes: Any) -> Tag:
    """`tag` (with `changes`) pointing at `turn`."""
    return tag.model_copy(update={**changes, **turn_place(turn)})


def move_to_turn(
    tag_id: str,
    source: str,
    turn: Turn,
    *,
    evidence: str,
    rationale: str | None = None,
    confidence: float | None = None,
) -> TagUpdate:
    """The `tag.updated` that carries a machine tag onto `turn`: the same tag id, still `proposed`
    by its own `source`, with its evidence from the turn's text."""
    return TagUpdate(
        tag_id=tag_id,
        status="proposed",
        by=source,
        evidence=evidence,
        rationale=rationale,
        confidence=confidence,
        **turn_place(turn),
    )
