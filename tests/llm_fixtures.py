"""A short system-design exchange and helpers shared by the LLM and hybrid tests."""

from __future__ import annotations

import json
from typing import Any

from copilot.events import Segment
from copilot.tagging.llm import LLMTagger

FAKE_MODEL = "openai/fake-model"
BY = f"llm:{FAKE_MODEL}"  # the `source` of the fake model's tags


def fake_tagger(rubric, server, **kw) -> LLMTagger:
    """An LLMTagger on the fake server (`tests.fake_llm_server`), with test-sized timeout and backoff."""
    kw.setdefault("timeout_s", 2.0)
    kw.setdefault("backoff_s", 0.05)
    model = kw.pop("model", FAKE_MODEL)
    return LLMTagger(rubric, model, api_base=server.api_base, api_key="test", **kw)


def conversation() -> list[Segment]:
    """Interviewer and candidate turns with fixed ids, as the ASR would commit them."""
    turns = [
        ("seg_i1", "interviewer", "Let's design a URL shortener for a social network."),
        (
            "seg_c1",
            "candidate",
            "Before I start, how many new links per day are we expecting, and do links ever expire?",
        ),
        ("seg_i2", "interviewer", "Say a hundred million a day. No expiry for now."),
        ("seg_c2", "candidate", "a key value store scales the writes well but we lose ad hoc queries on the links"),
        ("seg_c3", "candidate", "OK let's go with base62 ids from a counter and skip custom aliases for now."),
        ("seg_c4", "candidate", "um so the redirect path just reads the key and returns a 301"),
        ("seg_c5", "candidate", "I'd put a cache in front of it since reads dominate"),
    ]
    out = []
    for i, (sid, speaker, text) in enumerate(turns):
        out.append(
            Segment(
                id=sid,
                speaker=speaker,
                channel=0 if speaker == "interviewer" else 1,
                start_ms=i * 4000,
                end_ms=i * 4000 + 3500,
                text=text,
            )
        )
    return out


def tags_json(*tags: tuple[str, str, str] | dict[str, Any], confidence: float = 0.9) -> str:
    """The model's answer: `(segment_id, tag, quote)` triples (or ready dicts) as {"tags": [...]}."""
    items = []
    for t in tags:
        if isinstance(t, dict):
            items.append(t)
        else:
            seg, tag, quote = t
            items.append(
                {
                    "segment_id": seg,
                    "tag": tag,
                    "quote": quote,
                    "rationale": f"{tag} because.",
                    "confidence": confidence,
                }
            )
    return json.dumps({"tags": items})
