"""`copilot tag --tagger llm|hybrid` as a user runs it, against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import run_copilot as run
from tests.fake_llm_server import FakeLLMServer, Reply

ITEMS = [
    {"id": "steer", "text": "ok let's go with postgres and revisit sharding later", "speaker": "candidate"},
    {"id": "ask", "text": "how many users do we expect in the first year", "speaker": "candidate",
     "context": "design a photo sharing app"},
]


def quote_first_words(body: dict) -> str:
    """Tags the target with requirement_gathering if it asks something, else steering; quotes 4 words."""
    m = re.search(r"^>> \[(?P<id>[^\]]+)\] \w+: (?P<text>.*)$", body["messages"][-1]["content"], re.M)
    tag = "requirement_gathering" if m["text"].startswith("how") else "steering_decision"
    quote = " ".join(m["text"].split()[:4]).upper()  # the model's copy differs in case
    return json.dumps({"tags": [{"segment_id": m["id"], "tag": tag, "quote": quote, "rationale": "r",
                                 "confidence": 0.8}]})


@pytest.mark.slow  # a subprocess that imports litellm and waits on the fake server
def test_tag_command_hybrid():
    stdin = "".join(json.dumps(item) + "\n" for item in ITEMS)
    with FakeLLMServer() as server:
        server.default = Reply(content_fn=quote_first_words)
        # (the plain llm path is covered in-process by test_llm_tagger.py)
        proc = run("tag", "--tagger", "hybrid", "--llm", "openai/fake-model", "--api-base", server.api_base, "-",
                   stdin=stdin)
        assert proc.returncode == 0, proc.stderr
        assert server.calls() == 2
        assert "design a photo sharing app" in server.requests[1].prompt  # the item's context is in the window
    hybrid = {row["id"]: row for row in map(json.loads, proc.stdout.splitlines())}
    assert hybrid["steer"]["labels"] == ["steering_decision"] and hybrid["ask"]["labels"] == ["requirement_gathering"]
    ask = hybrid["ask"]["tags"][0]
    # the rules tag the question ("how many users...") and the LLM confirms it: its confidence and rationale on it
    assert ask["source"] == "rules"
    assert (ask["confidence"], ask["rationale"]) == (0.8, "r")


def test_tag_command_without_a_model_is_a_one_line_error():
    proc = run("tag", "--tagger", "llm", "-", stdin=json.dumps(ITEMS[0]) + "\n")
    assert proc.returncode == 2
    assert proc.stderr.startswith("copilot: error: --tagger llm needs an LLM model")
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr

