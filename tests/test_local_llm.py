"""The LLM tagger against a real llama.cpp server: xllamacpp in-process with the SmolLM2-135M GGUF.

Provisioned by `make setup` (the `local-llm` extra and `copilot models install smollm2`). The model
is too small to judge well; these tests hold the plumbing to account: every answer is valid
against the strict schema, quotes are verbatim or dropped, the rubric prefix is cached, and a
live replay gets the LLM's `tag.updated` events on the rules tags' ids. The error paths (429,
500, 401, malformed JSON, stalls) stay with the fake server (tests/test_llm_tagger.py).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from copilot.tagging.llm_bench import CallLog, schema_valid
from copilot.tagging.rubric import load_rubric
from tests.llm_fixtures import conversation

REPO = Path(__file__).resolve().parent.parent
# The plumbing tests must not depend on how busy the shared test machine is: a generous deadline.
# The default deadline has its own test below.
PLUMBING_TIMEOUT_S = 120.0


def _need_local_llm() -> None:
    from copilot.tagging.local_llm import LocalLLMError, resolve_gguf, xllamacpp_version

    if xllamacpp_version() is None:
        pytest.skip("the local-llm extra is not installed (pip install '.[local-llm]'; make setup does it)")
    try:
        resolve_gguf("local:smollm2")
    except LocalLLMError as exc:
        pytest.skip(f"the SmolLM2 test model is missing: {exc}")


@pytest.fixture(scope="module")
def rubric():
    return load_rubric("default")


@pytest.fixture(scope="module")
def local(rubric):
    """One llama.cpp server for the module, and an LLM tagger on it with its per-call log."""
    _need_local_llm()
    from copilot.tagging.select import build_tagger

    tagger = build_tagger("llm", rubric, "local:smollm2", timeout_s=PLUMBING_TIMEOUT_S)
    calls = CallLog.attach(tagger)
    yield tagger, calls


def test_every_answer_is_schema_valid_and_quotes_are_verbatim(local, rubric):
    tagger, calls = local
    segs = conversation()
    # The rubric prefix was measured with the server's tokenizer and read into its KV cache.
    assert tagger.tokens.measured and tagger.tokens.prefix_tokens and tagger.tokens.prefix_tokens > 500
    assert tagger.primed_s is not None
    results = []
    for i in (1, 3, 4, 6):
        result = tagger.tag_window([segs[i]], segs[:i])
        results.append((segs[i], result))
    # One more whose clauses carry JSON's special characters: llama.cpp accepted the grammar (a refusal
    # would have switched the client off it) and the quote comes back as the transcript's characters.
    odd = segs[6].model_copy(update={"id": "seg_odd", "text": 'So "cache first", then C:\\temp; we skip the CDN.'})
    results.append((odd, tagger.tag_window([odd], segs[:6])))
    assert tagger.client._format_mode == "grammar"
    for seg, result in results:
        assert result.ok, result.error
        assert schema_valid(result.raw, rubric.tag_ids), result.raw
        assert "\n" not in result.raw  # the compact grammar: no indentation tokens
        answer = json.loads(result.raw)
        assert len(answer["tags"]) <= 1  # one tag per target on a self-hosted server
        for item in answer["tags"]:
            assert item["segment_id"] == seg.id  # the schema's enum: only the target
            assert item["quote"] in " ".join(seg.text.split())  # the schema's enum: the target's clauses
        for tag in result.tags:  # what is shown: the transcript's own characters
            assert tag.evidence in seg.text and tag.segment_ids == [seg.id]
    summary = calls.summary()
    assert summary["schema_valid_rate"] == 1.0 and summary["timeouts"] == 0
    assert 0 < summary["tokens_per_call"]["completion_max"] <= 250  # max_tokens sized to the schema
    assert summary["tokens_per_call"]["prompt_mean"] < tagger.tokens.prefix_tokens + 400
    # The cache works: llama.cpp's own timings say each call read the rubric prefix from its KV cache
    # and evaluated only its turns (tens of tokens), never the ~900-token prefix again.
    for record in calls.records:
        assert record.cached_tokens >= tagger.tokens.prefix_tokens, record
        assert 0 < record.prompt_tokens - record.cached_tokens < 150, record
        assert record.server_gen_ms > 0 and record.server_prompt_ms > 0, record


def test_no_call_times_out_at_the_default_deadline(local, rubric):
    """The target of issue 12 on 2 CPU cores. Measured only when this machine is not busy with other
    work: on a shared machine the figure would be that of the neighbours, not of the path."""
    cores = os.cpu_count() or 1
    load = os.getloadavg()[0]
    if load > cores:
        pytest.skip(
            f"load average {load:.1f} on {cores} cores: other work owns the CPUs; "
            f"see docs/llm.md for the figures measured here"
        )
    from copilot.tagging.llm import LLMTagger

    tagger, _ = local
    fresh = LLMTagger(
        rubric,
        tagger.model,
        api_base=tagger.api_base,
        api_key="local",
        extra_params=tagger.extra_params,
        json_mode=tagger.client.json_mode,
    ).prepare()
    log = CallLog.attach(fresh)
    segs = conversation()
    for i in (1, 3, 4, 5, 6):
        fresh.tag_window([segs[i]], segs[:i])
    s = log.summary()
    assert s["timeouts"] == 0, s
    assert s["schema_valid_rate"] == 1.0, s


def test_local_spec_errors_are_one_line(tmp_path):
    from copilot.tagging.local_llm import LocalLLMError, resolve_gguf
    from copilot.tagging.select import TaggerConfigError, build_tagger

    with pytest.raises(LocalLLMError, match="no GGUF file at"):
        resolve_gguf(f"local:{tmp_path / 'missing.gguf'}")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a model")
    with pytest.raises(LocalLLMError, match="is not a GGUF model file"):
        resolve_gguf(f"local:{fake}")
    with pytest.raises(LocalLLMError, match="unknown local model 'nosuch'.*smollm2"):
        resolve_gguf("local:nosuch")
    with pytest.raises(TaggerConfigError, match="drop --api-base"):
        build_tagger("llm", load_rubric("default"), "local:smollm2", "http://127.0.0.1:9/v1")


def test_live_replay_gets_llm_updates_on_the_rules_tag_ids(tmp_path):
    """`copilot replay --demo --llm local:smollm2 --exit-when-done`: rules chips first, then the local
    model's verdicts as `tag.updated` events of the same tag ids (no duplicate chips)."""
    _need_local_llm()
    from copilot.session.store import SessionStore

    data = tmp_path / "data"
    env = {**os.environ, "COPILOT_LLM_TIMEOUT_S": str(PLUMBING_TIMEOUT_S)}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot",
            "replay",
            "--demo",
            "--speed",
            "1",
            "--no-browser",
            "--exit-when-done",
            "--llm",
            "local:smollm2",
            "--data-dir",
            str(data),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    sid = re.search(r"COPILOT_DONE=(\S+)", r.stdout).group(1)
    with SessionStore(data) as store:
        events = [e.model_dump(mode="json") for e in store.events(sid)]
    kinds = [e["type"] for e in events]
    payloads = [e["data"] for e in events]
    rules_ids = {p["id"] for k, p in zip(kinds, payloads) if k == "tag.proposed" and p.get("source") == "rules"}
    llm_updates = [p for k, p in zip(kinds, payloads) if k == "tag.updated" and str(p.get("by", "")).startswith("llm:")]
    assert rules_ids, "the rules tagger found nothing in the demo"
    assert llm_updates, f"no LLM verdicts reached the log; stderr: {r.stderr[-1500:]}"
    assert {u["tag_id"] for u in llm_updates} <= rules_ids | {
        p["id"] for k, p in zip(kinds, payloads) if k == "tag.proposed"
    }
    assert {u["tag_id"] for u in llm_updates} & rules_ids  # verdicts on the rules tags' own ids
