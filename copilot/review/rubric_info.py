"""The rubric's tags as plain dicts, for labels, colours and validating imported tag ids.

Uses the tagger's `load_rubric` (validated pydantic model). The review side only needs
id, label, colour, hotkey and definition.
"""

from __future__ import annotations

from typing import Any

from copilot.errors import RubricError


def rubric_tags(name: str) -> dict[str, dict[str, Any]]:
    """`{tag id: {id, label, colour, hotkey, definition}}` in rubric order; RubricError if unknown."""
    from copilot.tagging.rubric import load_rubric

    keep = {"id", "label", "colour", "hotkey", "definition"}
    return {t.id: t.model_dump(mode="json", include=keep) for t in load_rubric(name).tags}


def rubric_tags_or_empty(name: str) -> dict[str, dict[str, Any]]:
    """Same, but a missing or broken rubric gives `{}` (a review still renders with raw tag ids)."""
    try:
        return rubric_tags(name)
    except (RubricError, OSError):
        return {}


def labels(name: str) -> dict[str, str]:
    return {k: (v.get("label") or k) for k, v in rubric_tags_or_empty(name).items()}
