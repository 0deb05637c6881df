"""Redaction before a cloud LLM (issue 11, beyond the findings): emails, phone numbers, URLs and long
digit strings never reach a remote endpoint; the quotes that come back are mapped to the real
transcript; the log says how many, never what. Real HTTP through litellm to the fake server."""

from __future__ import annotations

import logging

import pytest

from copilot.events import Segment
from copilot.tagging.llm import LLMTagger
from copilot.tagging.redact import Redactor, is_local_endpoint
from copilot.tagging.rubric import load_rubric
from tests.fake_llm_server import FakeLLMServer, Reply
from tests.llm_fixtures import fake_tagger, tags_json

SECRET = ["jane.doe@example.com", "+44 20 7946 0958", "https://github.com/janedoe/secret-project", "4929123456781234"]


def test_redactor_replaces_and_restores():
    r = Redactor()
    text = (
        f"email {SECRET[0]}, phone {SECRET[1]}, repo {SECRET[2]}. card {SECRET[3]}; "
        f"again {SECRET[0]}; we expect 100 million links in 2026 at 99.9 percent"
    )
    out = r.redact(text)
    for s in SECRET:
        assert s not in out
    assert out.count("[EMAIL_1]") == 2 and "[URL_1]." in out  # one value, one placeholder; punctuation kept
    assert "100 million links in 2026 at 99.9 percent" in out  # ordinary numbers stay
    assert r.restore(out) == text
    assert dict(r.counts) == {"EMAIL": 2, "PHONE": 1, "URL": 1, "NUMBER": 1}


@pytest.mark.parametrize(
    "model, api_base, local",
    [
        ("openai/gpt-4o-mini", None, False),
        ("anthropic/claude-3-5-haiku", None, False),
        ("ollama/llama3.1", None, True),
        ("openai/x", "http://127.0.0.1:8080/v1", True),
        ("openai/x", "http://localhost:11434", True),
        ("openai/x", "https://llm.example.com/v1", False),
        ("ollama/llama3.1", "http://10.0.0.5:11434", False),
    ],
)
def test_local_or_remote(model, api_base, local):
    assert is_local_endpoint(model, api_base) is local
    tagger = LLMTagger(load_rubric("default"), model, api_base=api_base, api_key="k")
    assert (tagger.redactor is None) is local  # on by default for remote endpoints only


def test_remote_llm_sees_placeholders_and_evidence_is_the_real_text(caplog):
    rubric = load_rubric("default")
    seg = Segment(
        id="seg_c1",
        speaker="candidate",
        start_ms=0,
        end_ms=4000,
        text=f"Before I start, can I send the spec to {SECRET[0]} and who are the users?",
    )
    caplog.set_level(logging.INFO, logger="copilot.tagging.llm")
    with FakeLLMServer() as server:
        # The model quotes the placeholder back, as a model would.
        server.script(
            Reply(
                content=tags_json(
                    ("seg_c1", "requirement_gathering", "can I send the spec to [EMAIL_1] and who are the users")
                )
            )
        )
        tagger = fake_tagger(rubric, server, redact=True)  # the fake server is local: force it on
        tags = tagger.tag(seg)
        prompt = server.requests[0].prompt
    assert SECRET[0] not in prompt and "[EMAIL_1]" in prompt
    assert len(tags) == 1 and tags[0].evidence == f"can I send the spec to {SECRET[0]} and who are the users"
    logged = " ".join(r.getMessage() for r in caplog.records)
    assert "redacted" in logged and "EMAIL 1" in logged and SECRET[0] not in logged


def test_no_redact_sends_the_text_as_is():
    rubric = load_rubric("default")
    seg = Segment(
        id="seg_c1", speaker="candidate", start_ms=0, end_ms=4000, text=f"mail {SECRET[0]} who are the users?"
    )
    with FakeLLMServer() as server:
        server.script(Reply(content='{"tags": []}'))
        fake_tagger(rubric, server, redact=False).tag(seg)
        assert SECRET[0] in server.requests[0].prompt
