"""`copilot tag`, `copilot eval` and `copilot tagger train` through the real command line (subprocess)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot.tagging.textcat import HELDOUT_DATA
from tests.conftest import run_copilot as run

REPO = Path(__file__).resolve().parent.parent


def test_tag_jsonl_stdin_to_stdout():
    lines = [
        {"id": "a", "text": "How many users do we expect at launch?", "speaker": "candidate"},
        {"id": 2, "text": "let's go with postgres and revisit sharding later"},
        {"id": "c", "text": "Let's go with Postgres.", "speaker": "interviewer"},
        {"id": "d", "text": "yeah let's do that", "context": "How about we start with the API?"},
        {
            "id": "e",
            "text": "caching cuts latency but the data can be stale",
            "speaker": "candidate",
            "context": [{"speaker": "interviewer", "text": "What about caching?"}],
        },
    ]
    p = run("tag", "-", stdin="".join(json.dumps(x) + "\n" for x in lines))
    assert p.returncode == 0, p.stderr
    out = [json.loads(l) for l in p.stdout.splitlines()]
    assert [o["id"] for o in out] == ["a", 2, "c", "d", "e"]
    by = {o["id"]: o for o in out}
    assert by["a"]["labels"] == ["requirement_gathering"]
    assert by[2]["labels"] == ["steering_decision"]
    assert by["c"]["labels"] == [] and by["d"]["labels"] == []
    assert "tradeoff_articulation" in by["e"]["labels"]
    tag = by[2]["tags"][0]
    assert tag["tag"] == "steering_decision" and tag["source"] == "rules"
    assert tag["evidence"] in lines[1]["text"] and tag["segment_ids"] == ["2"]
    assert {"id", "start_ms", "end_ms", "speaker", "rationale", "confidence"} <= set(tag)


def test_malformed_lines_reported_with_line_numbers_and_skipped(tmp_path):
    f = tmp_path / "items.jsonl"
    f.write_text(
        "\n".join(
            [
                json.dumps({"id": 1, "text": "What's the latency budget?"}),
                "{not json",
                json.dumps({"id": 3}),
                "",
                json.dumps(["a", "list"]),
                json.dumps({"id": 6, "text": "Let's go with Redis."}),
                json.dumps({"text": "no id"}),
            ]
        )
        + "\n"
    )
    p = run("tag", str(f))
    assert p.returncode == 1
    assert [json.loads(l)["id"] for l in p.stdout.splitlines()] == [1, 6]
    for n, why in ((2, "invalid JSON"), (3, "'text'"), (5, "not a JSON object"), (7, "'id'")):
        assert f"line {n}:" in p.stderr and why in p.stderr
    assert "line 4" not in p.stderr  # a blank line is not an error
    assert "Traceback" not in p.stderr


def test_missing_file_and_unknown_rubric_are_one_line_errors(tmp_path):
    p = run("tag", str(tmp_path / "nope.jsonl"))
    assert p.returncode == 2 and p.stderr.startswith("copilot: error:") and "nope.jsonl" in p.stderr
    assert len(p.stderr.strip().splitlines()) == 1
    p = run("tag", "--rubric", "nope", "-", stdin="")
    assert p.returncode == 2 and "unknown rubric" in p.stderr and "Traceback" not in p.stderr


def test_tag_with_builder_rubric_path():
    p = run(
        "tag",
        "--rubric",
        str(REPO / "rubric_tags" / "builder_track.yaml"),
        "-",
        stdin=json.dumps({"id": "x", "text": "in plain terms we can make it faster or cheaper but not both"}) + "\n",
    )
    assert p.returncode == 0, p.stderr
    assert "plain_language_tradeoff" in json.loads(p.stdout)["labels"]


def test_llm_tagger_without_model_is_a_clear_error():
    p = run("tag", "--tagger", "llm", "-", stdin=json.dumps({"id": 1, "text": "hi"}) + "\n")
    assert p.returncode == 2 and "--llm" in p.stderr and "Traceback" not in p.stderr


def test_eval_json_and_parts():
    p = run("eval", "--data", str(HELDOUT_DATA), "--json")
    assert p.returncode == 0, p.stderr
    rep = json.loads(p.stdout)
    assert rep["items"] >= 100 and rep["macro_f1"] >= 0.8
    assert set(rep["tags"]) == {"requirement_gathering", "tradeoff_articulation", "steering_decision"}
    assert {"precision", "recall", "f1", "support"} <= set(rep["tags"]["steering_decision"])
    assert "none" in rep["confusion"] and "none" in rep["confusion"]["none"]
    assert rep["latency_ms"]["median"] > 0 and rep["latency_ms"]["p95"] >= rep["latency_ms"]["median"]
    p = run("eval", "--data", str(HELDOUT_DATA), "--parts")
    assert p.returncode == 0, p.stderr
    for part in ("rules-only", "classifier-only", "rules (combined)"):
        assert f"tagger {part} on" in p.stdout
    assert p.stdout.count("macro-F1") == 3 and "confusion" in p.stdout and "latency per item" in p.stdout


def test_eval_single_label_and_list_formats(tmp_path):
    f = tmp_path / "gold.jsonl"
    f.write_text(
        "\n".join(
            json.dumps(x)
            for x in [
                {"id": 1, "text": "How many users do we have?", "label": "requirement_gathering"},
                {"id": 2, "text": "Let's take a break.", "label": "none"},
                {
                    "id": 3,
                    "text": "Redis is fast but memory is expensive, so let's use Postgres.",
                    "labels": ["tradeoff_articulation", "steering_decision"],
                },
                {"id": 4, "text": "Sounds good.", "labels": []},
            ]
        )
        + "\n"
    )
    rep = json.loads(run("eval", "--data", str(f), "--json", "--tagger", "rules-only").stdout)
    assert rep["items"] == 4
    assert rep["tags"]["requirement_gathering"]["tp"] == 1 and rep["tags"]["steering_decision"]["tp"] == 1
    assert rep["confusion"]["none"]["none"] == 2


@pytest.mark.slow
def test_train_is_reproducible_and_if_missing_skips(tmp_path):
    d1, d2 = tmp_path / "m1", tmp_path / "m2"
    for d in (d1, d2):
        p = run("tagger", "train", "--rubric", "default", "--out", str(d))
        assert p.returncode == 0, p.stderr
        assert (d / "meta.json").is_file() and (d / "textcat").is_dir()
    assert not [x for x in tmp_path.iterdir() if x.name.startswith(".")]  # no temp dirs left behind
    m1, m2 = (json.loads((d / "meta.json").read_text()) for d in (d1, d2))
    assert m1["thresholds"] == m2["thresholds"] and m1["cv"] == m2["cv"]
    from copilot.tagging.textcat import load_classifier, load_labelled

    texts = [it.text.lower() for it in load_labelled(HELDOUT_DATA)]
    c1, c2 = load_classifier("default", d1), load_classifier("default", d2)
    assert c1.predict(texts) == c2.predict(texts)
    p = run("tagger", "train", "--rubric", "default", "--out", str(d1), "--if-missing")
    assert p.returncode == 0 and "up to date" in p.stdout
