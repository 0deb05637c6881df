"""`copilot tag --tagger llm|hybrid` as a user runs it, against the fake OpenAI-compatible server."""

from __future__ import annotations

import json
import re

import pytest

from tests.conftest import run_copilot as run
from tests.fake_llm_server import FakeLLMServer, Reply

ITEMS = [
    {"id": "steer", "text": "ok let's go with postgres and revisit sharding later", "speaker": "candidate"},
    {
        "id": "ask",
        "text": "how many users do we expect in the first year",
        "speaker": "candidate",
        "context": "design a photo sharing app",
    },
]


def quote_first_words(body: dict) -> str:
    """Tags the target with requirement_gathering if it asks something, else steering; quotes 4 words."""
    m = re.search(r"^>> \[(?P<id>[^\]]+)\] \w+: (?P<text>.*)$", body["messages"][-1]["content"], re.M)
    tag = "requirement_gathering" if m["text"].startswith("how") else "steering_decision"
    quote = " ".join(m["text"].split()[:4]).upper()  # the model's copy differs in case
    return json.dumps(
        {"tags": [{"segment_id": m["id"], "tag": tag, "quote": quote, "rationale": "r", "confidence": 0.8}]}
    )


@pytest.mark.slow  # a subprocess that imports litellm and waits on the fake server
def test_tag_command_hybrid():
    stdin = "".join(json.dumps(item) + "\n" for item in ITEMS)
    with FakeLLMServer() as server:
        server.default = Reply(content_fn=quote_first_words)
        # (the plain llm path is covered in-process by test_llm_tagger.py)
        proc = run(
            "tag", "--tagger", "hybrid", "--llm", "openai/fake-model", "--api-base", server.api_base, "-", stdin=stdin
        )
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


def test_eval_and_bench_report_per_call_llm_figures(tmp_path):
    """`copilot eval --tagger llm --llm M --api-base URL --limit N --json` and `copilot bench tagger --llm`:
    macro-F1 plus schema-valid rate, timeouts, latency first/warm, tokens (issue 12)."""
    data = tmp_path / "labelled.jsonl"
    rows = [
        {**ITEMS[0], "label": "steering_decision"},
        {**ITEMS[1], "label": "requirement_gathering"},
        {
            "id": "bad",
            "text": "so how do we shard the links table",
            "speaker": "candidate",
            "label": "requirement_gathering",
        },
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with FakeLLMServer() as server:
        # the third answer is not JSON: refused, and counted as not schema-valid
        server.script(
            Reply(content_fn=quote_first_words, prompt_tokens=900, completion_tokens=40),
            Reply(content_fn=quote_first_words, prompt_tokens=120, completion_tokens=40),
            Reply(content="sure! the tag is requirement_gathering", prompt_tokens=120, completion_tokens=9),
        )
        proc = run(
            "eval",
            "--tagger",
            "llm",
            "--llm",
            "openai/fake-model",
            "--api-base",
            server.api_base,
            "--data",
            str(data),
            "--json",
        )
        assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    llm = report["llm"]
    assert report["items"] == 3 and report["tags"]["steering_decision"]["f1"] == 1.0
    assert (llm["calls"], llm["answered"], llm["schema_valid"], llm["timeouts"]) == (3, 3, 2, 0)
    assert llm["schema_valid_rate"] == round(2 / 3, 4) and llm["errors"] == {"output": 1}
    assert llm["tokens_total"] == {"prompt": 1140, "completion": 89}
    assert llm["latency_ms"]["first"] > 0 and llm["latency_ms"]["warm_p95"] >= llm["latency_ms"]["warm_median"] > 0
    assert llm["cost_usd"] is None  # an unpriced model: unknown, not zero

    with FakeLLMServer() as server:
        server.default = Reply(content_fn=quote_first_words, prompt_tokens=100, completion_tokens=30)
        proc = run(
            "bench", "tagger", "--llm", "openai/fake-model", "--api-base", server.api_base, "--limit", "5", "--json"
        )
        assert proc.returncode == 0, proc.stderr
        calls = server.calls()
    bench = json.loads(proc.stdout)
    assert bench["items"] == 5 and bench["llm"]["schema_valid_rate"] == 1.0 and 0 <= bench["macro_f1"] <= 1
    assert bench["llm"]["calls"] == calls >= 4  # one per taggable item (interviewer speech costs no call)
