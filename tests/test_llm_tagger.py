"""The LLM tagger end to end through litellm and real HTTP to a fake OpenAI-compatible server."""

from __future__ import annotations

import asyncio
import json
import socket
import time

import pytest

from copilot.errors import CopilotError
from copilot.tagging.llm import LLMTagger
from copilot.tagging.llm_client import LLMError, import_litellm
from copilot.tagging.llm_prompt import OutputError, find_verbatim, parse_output
from copilot.tagging.select import build_tagger
from tests.fake_llm_server import FakeLLMServer, Reply
from tests.llm_fixtures import FAKE_MODEL, conversation, fake_tagger, tags_json


@pytest.fixture()
def server():
    with FakeLLMServer() as s:
        yield s


def test_valid_tags_get_the_transcripts_exact_span_and_the_prompt_holds_rubric_and_window(rubric, server):
    segs = conversation()
    # The model copies the words with its own case, spacing and punctuation.
    server.script(
        Reply(
            content=tags_json(
                ("seg_c1", "requirement_gathering", "HOW MANY new links   per day are we expecting"),
                ("seg_c1", "requirement_gathering", "do links ever expire"),  # same tag twice on a segment: one kept
            )
        )
    )
    tagger = fake_tagger(rubric, server)
    tags = tagger.tag(segs[1], segs[:1])

    assert len(tags) == 1
    tag = tags[0]
    assert tag.tag == "requirement_gathering"
    assert tag.evidence == "how many new links per day are we expecting"  # the transcript's own characters
    assert tag.evidence in segs[1].text
    assert tag.segment_ids == ["seg_c1"]
    assert (tag.start_ms, tag.end_ms, tag.speaker) == (segs[1].start_ms, segs[1].end_ms, "candidate")
    assert tag.source == "llm:openai/fake-model" == tagger.name
    assert tag.confidence == pytest.approx(0.9)

    req = server.requests[0]
    prompt = req.prompt
    for rtag in rubric.tags:
        assert " ".join(rtag.definition.split()) in prompt
        assert rtag.near_misses[0] in prompt
        assert rtag.examples[0] in prompt
    assert "[seg_i1] INTERVIEWER: Let's design a URL shortener" in prompt
    assert ">> [seg_c1] CANDIDATE: Before I start" in prompt
    # An OpenAI-compatible api_base is a self-hosted server: a strict json_schema that its grammar enforces,
    # with the call's target as the only segment id, the target's clauses as the only quotes, and
    # max_tokens sized to that schema (issue 12).
    fmt = req.body["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["strict"] is True
    item = fmt["json_schema"]["schema"]["properties"]["tags"]["items"]["properties"]
    assert item["tag"]["enum"] == rubric.tag_ids
    assert item["segment_id"]["enum"] == ["seg_c1"]
    assert "how many new links per day are we expecting," in item["quote"]["enum"]
    assert all(q in segs[1].text for q in item["quote"]["enum"])
    assert 100 <= req.body["max_tokens"] <= 250
    assert req.body["model"] == "fake-model"
    assert req.body.get("stream") in (None, False)


def test_window_is_bounded_and_interleaved_context_kept(rubric, server):
    segs = conversation()
    tagger = fake_tagger(rubric, server, window_turns=2)
    result = asyncio.run(tagger.atag_window([segs[3], segs[4]], segs[:3]))
    assert result.ok and result.tags == []
    prompt = server.requests[0].prompt
    assert "seg_i1" not in prompt  # beyond the window of 2
    assert "   [seg_c1] CANDIDATE" in prompt and "   [seg_i2] INTERVIEWER" in prompt
    assert ">> [seg_c2]" in prompt and ">> [seg_c3]" in prompt


def test_invented_quote_unknown_tag_wrong_segment_and_interviewer_speech_are_dropped(rubric, server):
    segs = conversation()
    server.script(
        Reply(
            content=tags_json(
                ("seg_c2", "tradeoff_articulation", "scales the writes well but we lose ad hoc queries"),
                ("seg_c2", "steering_decision", "we should definitely use Cassandra"),  # not in the transcript
                ("seg_c2", "vibes", "a key value store"),  # not a rubric tag
                ("seg_i2", "requirement_gathering", "a hundred million a day"),  # interviewer context, not a target
                ("seg_zz", "tradeoff_articulation", "a key value store"),  # no such segment
                {"segment_id": "seg_c2", "tag": "tradeoff_articulation"},  # no quote at all
            )
        )
    )
    tagger = fake_tagger(rubric, server)
    result = asyncio.run(tagger.atag_window([segs[2], segs[3]], segs[:2]))  # interviewer turn given as a target
    assert result.ok
    assert [(t.segment_ids[0], t.tag) for t in result.tags] == [("seg_c2", "tradeoff_articulation")]
    assert result.tags[0].evidence == "scales the writes well but we lose ad hoc queries"
    assert result.usage.dropped_tags == 5
    assert result.unverified == {("seg_c2", "steering_decision")}  # claimed, but not with the transcript's words
    # The interviewer's turn is shown as context only, never as a target.
    assert "   [seg_i2] INTERVIEWER" in server.requests[0].prompt


def test_code_fenced_json_is_parsed(rubric, server):
    segs = conversation()
    fenced = (
        "Here you go:\n```json\n" + tags_json(("seg_c3", "steering_decision", "let's go with base62 ids")) + "\n```"
    )
    server.script(Reply(content=fenced))
    tags = fake_tagger(rubric, server).tag(segs[4], segs[:4])
    assert [t.tag for t in tags] == ["steering_decision"]
    assert tags[0].evidence == "let's go with base62 ids"


def test_malformed_json_is_a_failure_not_a_crash(rubric, server):
    segs = conversation()
    server.script(Reply(content='{"tags": [{"segment_id": "seg_c3", "tag": '))
    tagger = fake_tagger(rubric, server)
    result = asyncio.run(tagger.atag_window([segs[4]], segs[:4]))
    assert not result.ok and result.error_kind == "output"
    assert "not valid JSON" in result.error
    assert result.tags == []
    # The sync Tagger path: a bad answer is an empty result, not an exception.
    server.script(Reply(content="I think this is a steering decision."))
    assert tagger.tag(segs[4], segs[:4]) == []
    assert tagger.usage.failures == 2
    assert server.calls() == 2  # a malformed answer is not retried


def test_429_then_success_retries_with_backoff(rubric, server):
    segs = conversation()
    server.script(
        Reply(status=429),
        Reply(status=429),
        Reply(content=tags_json(("seg_c3", "steering_decision", "skip custom aliases for now"))),
    )
    tagger = fake_tagger(rubric, server, max_retries=2, backoff_s=0.1)
    result = asyncio.run(tagger.atag_window([segs[4]], segs[:4]))
    assert result.ok, result.error
    assert [t.tag for t in result.tags] == ["steering_decision"]
    assert server.calls() == 3
    assert result.usage.retries == 2 and result.usage.calls == 3
    gaps = [b.at - a.at for a, b in zip(server.requests, server.requests[1:])]
    assert gaps[0] >= 0.08 and gaps[1] >= 0.16  # 0.1 s, then 0.2 s (+-20% jitter)


def test_persistent_500_is_a_failure_after_the_retries(rubric, server):
    server.default = Reply(status=500)
    tagger = fake_tagger(rubric, server, max_retries=2)
    result = tagger.tag_window([conversation()[4]])
    assert not result.ok and result.error_kind == "transient"
    assert "HTTP 500" in result.error
    assert server.calls() == 3


def test_timeout_bounds_the_whole_attempt(rubric, server):
    server.default = Reply(delay_s=2.0)
    tagger = fake_tagger(rubric, server, timeout_s=0.5)
    started = time.monotonic()
    result = asyncio.run(tagger.atag_window([conversation()[4]]))
    elapsed = time.monotonic() - started
    assert not result.ok and result.error_kind == "timeout"
    assert result.error == "LLM timeout after 0.5 s"
    assert elapsed < 1.5


def test_streaming_sse_is_parsed_with_usage(rubric, server):
    segs = conversation()
    server.script(
        Reply(
            content=tags_json(("seg_c2", "tradeoff_articulation", "we lose ad hoc queries")),
            prompt_tokens=333,
            completion_tokens=44,
        )
    )
    tagger = fake_tagger(rubric, server, stream=True)
    result = asyncio.run(tagger.atag_window([segs[3]], segs[:3]))
    assert result.ok, result.error
    assert [t.evidence for t in result.tags] == ["we lose ad hoc queries"]
    body = server.requests[0].body
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert (result.usage.prompt_tokens, result.usage.completion_tokens) == (333, 44)
    # and the sync streaming path
    server.script(Reply(content=tags_json(("seg_c2", "tradeoff_articulation", "scales the writes well"))))
    assert [t.evidence for t in tagger.tag(segs[3], segs[:3])] == ["scales the writes well"]


def test_tokens_and_cost_from_usage(rubric, server):
    segs = conversation()
    server.default = Reply(content=tags_json(), prompt_tokens=1000, completion_tokens=100)
    # A priced model name served by the fake server: cost comes from litellm's local price map.
    priced = fake_tagger(rubric, server, model="openai/gpt-4o-mini")
    priced.tag(segs[4], segs[:4])
    priced.tag(segs[5], segs[:5])
    litellm = import_litellm()
    p, c = litellm.cost_per_token(model="gpt-4o-mini", prompt_tokens=1000, completion_tokens=100)
    assert priced.usage.prompt_tokens == 2000 and priced.usage.completion_tokens == 200
    assert priced.usage.cost_known and priced.usage.cost_usd == pytest.approx(2 * (p + c))
    assert priced.usage.cost_usd > 0
    # litellm knows gpt-4o-mini supports json_schema: the strict schema is sent
    assert server.requests[0].body["response_format"]["type"] == "json_schema"
    # An unpriced (local) model: tokens counted, cost unknown rather than an error.
    local = fake_tagger(rubric, server)
    local.tag(segs[4], segs[:4])
    assert local.usage.total_tokens == 1100
    assert not local.usage.cost_known and local.usage.cost_usd == 0.0


def test_mock_response_without_a_server(rubric):
    segs = conversation()
    answer = tags_json(("seg_c3", "steering_decision", "let's go with base62 ids from a counter"))
    tagger = LLMTagger(rubric, "openai/gpt-4o-mini", extra_params={"mock_response": answer}, timeout_s=5)
    tags = tagger.tag(segs[4], segs[:4])
    assert [(t.tag, t.evidence) for t in tags] == [("steering_decision", "let's go with base62 ids from a counter")]
    assert tagger.usage.calls == 1 and tagger.usage.total_tokens > 0


def test_unreachable_server_is_a_clear_error_on_the_sync_path(rubric):
    with socket.socket() as sock:  # a port with nobody listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    tagger = LLMTagger(
        rubric,
        FAKE_MODEL,
        api_base=f"http://127.0.0.1:{port}/v1",
        api_key="test",
        timeout_s=3,
        max_retries=1,
        backoff_s=0.05,
    )
    with pytest.raises(LLMError, match=f"cannot reach LLM openai/fake-model at http://127.0.0.1:{port}/v1"):
        tagger.tag(conversation()[4])


def test_bad_key_is_not_retried_and_stops_the_sync_path(rubric, server):
    server.default = Reply(status=401)
    tagger = fake_tagger(rubric, server)
    with pytest.raises(LLMError, match="^LLM openai/fake-model: authentication failed"):
        tagger.tag(conversation()[4])
    assert server.calls() == 1


def test_interviewer_segment_alone_costs_no_call(rubric, server):
    tagger = fake_tagger(rubric, server)
    assert tagger.tag(conversation()[0]) == []
    assert server.calls() == 0


def test_build_tagger(rubric, server, monkeypatch):
    monkeypatch.delenv("COPILOT_LLM", raising=False)
    monkeypatch.delenv("COPILOT_LLM_API_BASE", raising=False)
    with pytest.raises(CopilotError, match="--tagger llm needs an LLM model"):
        build_tagger("llm", rubric)
    with pytest.raises(CopilotError, match="--tagger hybrid needs an LLM model"):
        build_tagger("hybrid", rubric, llm_model="  ")
    with pytest.raises(CopilotError, match="unknown tagger 'gpt'"):
        build_tagger("gpt", rubric)
    llm = build_tagger("llm", rubric, llm_model=FAKE_MODEL, api_base=server.api_base, timeout_s=2)
    assert isinstance(llm, LLMTagger) and llm.name == "llm:openai/fake-model"
    server.script(Reply(content=tags_json(("seg_c3", "steering_decision", "skip custom aliases"))))
    assert [t.tag for t in llm.tag(conversation()[4])] == ["steering_decision"]
    assert server.requests[-1].body["model"] == "fake-model"
    # the model and server can come from the environment (COPILOT_LLM, COPILOT_LLM_API_BASE)
    monkeypatch.setenv("COPILOT_LLM", "openai/env-model")
    monkeypatch.setenv("COPILOT_LLM_API_BASE", server.api_base)
    hybrid = build_tagger("hybrid", rubric, timeout_s=2)
    assert hybrid.name == "rules+llm:openai/env-model"
    assert build_tagger("rules", rubric).name == "rules"


def test_parse_output_and_find_verbatim():
    assert parse_output('```\n{"tags": []}\n```') == []
    assert parse_output('[{"segment_id": "s", "tag": "t", "quote": "q"}]')[0]["tag"] == "t"
    assert parse_output('Sure! {"tags": [{"segment_id": "s", "tag": "t"}]} hope that helps')[0]["segment_id"] == "s"
    for bad in ["", "no json here", '{"labels": []}', '{"tags": "none"}', '```json\n{"tags": [\n```']:
        with pytest.raises(OutputError):
            parse_output(bad)
    text = "Well, so: we'd  lose ad-hoc queries,  right?"
    assert find_verbatim("We'd lose ad hoc queries", text) == "we'd  lose ad-hoc queries"
    assert find_verbatim("lose queries", text) is None  # words must be contiguous
    assert find_verbatim("...", text) is None
    assert find_verbatim("ad hoc queries right", text) == "ad-hoc queries,  right"
    assert json.loads(json.dumps(find_verbatim("WELL", text))) == "Well"


def test_window_without_timing_keeps_the_given_order():
    from copilot.events import Segment
    from copilot.tagging.llm_prompt import build_window

    ctx = [Segment(id=f"c{i}", speaker="interviewer", start_ms=0, end_ms=0, text=f"turn {i}") for i in range(5)]
    target = Segment(id="t", speaker="candidate", start_ms=0, end_ms=0, text="so what is the read write ratio")
    assert [s.id for s in build_window([target], ctx, 2)] == ["c3", "c4", "t"]
    assert [s.id for s in build_window([target], ctx, 0)] == ["t"]


def test_server_that_refuses_json_mode_is_asked_again_without_it(rubric, server):
    refusal = json.dumps(
        {
            "error": {
                "message": "response_format json_schema is not supported by this server",
                "type": "invalid_request_error",
            }
        }
    )
    server.script(
        Reply(status=400, raw_body=refusal),
        Reply(content=tags_json(("seg_c3", "steering_decision", "skip custom aliases for now"))),
    )
    tagger = fake_tagger(rubric, server)
    assert [t.tag for t in tagger.tag(conversation()[4])] == ["steering_decision"]
    assert server.calls() == 2
    assert server.requests[0].body["response_format"]["type"] == "json_schema"
    assert "response_format" not in server.requests[1].body
    tagger.tag(conversation()[5])
    assert "response_format" not in server.requests[2].body  # remembered for the session


def test_grammar_mode_sends_llamacpp_gbnf_instead_of_response_format(rubric, server):
    """`local:` asks llama.cpp with its own compact GBNF (no room for indentation), in the request's
    body beside the cache flag; llama.cpp's `timings` are counted: cached prompt tokens, its own ms."""
    segs = conversation()
    server.default = Reply(
        content=tags_json(("seg_c2", "tradeoff_articulation", "scales the writes well")),
        prompt_tokens=980,
        timings={"cache_n": 930, "prompt_n": 50, "prompt_ms": 400.5, "predicted_n": 60, "predicted_ms": 1200.25},
    )
    tagger = fake_tagger(rubric, server, json_mode="grammar", extra_params={"extra_body": {"cache_prompt": True}})
    assert [t.evidence for t in tagger.tag(segs[3], segs[:3])] == ["scales the writes well"]
    body = server.requests[0].body
    assert "response_format" not in body and body["cache_prompt"] is True
    grammar = body["grammar"]
    assert grammar.startswith('root ::= "{\\"tags\\": [" (item)? "]}"')
    assert '"\\"seg_c2\\""' in grammar  # the target's id, the only one allowed
    assert '"\\"well but we lose ad hoc queries on the links\\""' in grammar  # quotes: the target's clauses
    assert "\\n" not in grammar and "\\t" not in grammar  # no newline or indentation anywhere in the answer
    u = tagger.usage
    assert (u.prompt_tokens, u.cached_tokens) == (980, 930)
    assert (u.server_prompt_ms, u.server_gen_ms) == (400.5, 1200.25)


def test_grammar_refused_by_a_server_is_asked_again_without_it(rubric, server):
    refusal = json.dumps({"error": {"message": "failed to parse grammar", "type": "invalid_request_error"}})
    server.script(
        Reply(status=400, raw_body=refusal),
        Reply(content=tags_json(("seg_c3", "steering_decision", "skip custom aliases for now"))),
    )
    tagger = fake_tagger(rubric, server, json_mode="grammar")
    assert [t.tag for t in tagger.tag(conversation()[4])] == ["steering_decision"]
    assert "grammar" in server.requests[0].body and "grammar" not in server.requests[1].body
