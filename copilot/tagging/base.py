"""The tagger interface shared by the rules, LLM and hybrid taggers."""

from __future__ import annotations

from typing import Protocol, Sequence

from copilot.events import Segment, Tag


class Tagger(Protocol):
    """Tags one final segment given the turns before it.

    Must be fast (milliseconds) and never raise on odd text: the live path calls it
    inline after every `segment.final`.
    """

    name: str  # the `source` its tags carry, e.g. "rules" or "llm:openai/gpt-4o-mini"

    def tag(self, segment: Segment, context: Sequence[Segment] = ()) -> list[Tag]: ...
