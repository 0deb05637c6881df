"""Issue 11, findings 3 and 4: tag files have documented limits, and hostile ones are refused in one
line with the log unchanged (real SQLite store; the CLI where the user-facing output matters)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest

from copilot.review.tags_io import MAX_FILE_BYTES, MAX_SEGMENT_IDS, MAX_TAGS, TagFileError, import_tags, rater_name
from copilot.session.store import SessionStore
from tests.review_fixtures import ALICE, RG, build_session, rater_file

REPO = Path(__file__).resolve().parent.parent
RUBRIC = {"requirement_gathering", "tradeoff_articulation", "steering_decision"}


@pytest.fixture()
def session(tmp_path):
    store = SessionStore(tmp_path / "data")
    sid = build_session(store)
    yield store, sid
    store.close()


def _refused(store, sid, doc, *needles: str) -> str:
    before = store.last_seq(sid)
    text = doc if isinstance(doc, str) else json.dumps(doc)
    with pytest.raises(TagFileError) as info:
        import_tags(store, sid, text, RUBRIC, source_name="f.json")
    msg = str(info.value)
    assert "\n" not in msg and len(msg) < 300, msg
    for n in needles:
        assert n in msg, msg
    assert store.last_seq(sid) == before  # nothing written
    return msg


def test_size_limits(session):
    store, sid = session
    good = rater_file(sid, "alice", ALICE)
    many = copy.deepcopy(good)
    tmpl = many["tags"][0]
    many["tags"] = [{**tmpl, "id": None, "start_ms": i, "end_ms": i} for i in range(MAX_TAGS + 1)]
    _refused(store, sid, many, f"{MAX_TAGS + 1} tags", f"at most {MAX_TAGS}")
    big_speaker = copy.deepcopy(good)
    big_speaker["tags"][0]["speaker"] = "x" * 5_000_000
    _refused(store, sid, big_speaker, "larger than the 2 MiB")
    long_speaker = copy.deepcopy(good)
    long_speaker["tags"][0]["speaker"] = "x" * 81
    _refused(store, sid, long_speaker, "malformed at tags.0.speaker", "at most 80")
    segs = copy.deepcopy(good)
    segs["tags"][0]["segment_ids"] = [segs["tags"][0]["segment_ids"][0]] * (MAX_SEGMENT_IDS + 1)
    _refused(store, sid, segs, "malformed at tags.0.segment_ids")
    long_seg = copy.deepcopy(good)
    long_seg["tags"][0]["segment_ids"] = ["s" * 81]
    _refused(store, sid, long_seg, "malformed at tags.0.segment_ids.0")
    far = copy.deepcopy(good)
    far["tags"][0]["end_ms"] = 10**30
    _refused(store, sid, far, "malformed at tags.0.end_ms")
    assert len(json.dumps(good)) < MAX_FILE_BYTES
    import_tags(store, sid, json.dumps(good), RUBRIC)  # the limits leave a real file alone


def test_refused_values(session):
    store, sid = session
    good = rater_file(sid, "alice", ALICE)
    for field, value, needle in [
        ("version", True, "unsupported tag file version true"),
        ("version", 1.0, "unsupported tag file version 1.0"),
    ]:
        doc = copy.deepcopy(good)
        doc[field] = value
        _refused(store, sid, doc, needle)
    for value in (True, 1.5, "100"):
        doc = copy.deepcopy(good)
        doc["tags"][0]["start_ms"] = value
        _refused(store, sid, doc, "malformed at tags.0.start_ms")
    doc = copy.deepcopy(good)
    doc["coverage"] = {"start_ms": 9000, "end_ms": 1000}
    _refused(store, sid, doc, "malformed at coverage", "ends (1000) before it starts (9000)")
    doc = copy.deepcopy(good)
    doc["coverage"] = {"start_ms": False, "end_ms": 1000}
    _refused(store, sid, doc, "malformed at coverage.start_ms")
    thrice = copy.deepcopy(good)
    t = {**thrice["tags"][0], "id": None}
    thrice["tags"] = [t, dict(t), dict(t)]
    _refused(store, sid, thrice, "tag #2: repeats tag #1")
    renamed = copy.deepcopy(good)
    renamed["tags"].append({**renamed["tags"][0], "id": "tag_other"})
    _refused(store, sid, renamed, "repeats tag #1")
    for rater in ("dave\n", "dave\r\n", " dave", "dave "):
        doc = copy.deepcopy(good)
        doc["rater"] = rater
        _refused(store, sid, doc, "bad rater name")
        with pytest.raises(TagFileError):
            rater_name(rater)
    _refused(store, sid, "[" * 100_000, "nested deeper than")
    _refused(store, sid, '{"format": "interview-copilot.tags", "version": ' + "9" * 5000 + "}", "too many digits")
    _refused(store, sid, '{"format": "interview-copilot.tags", "version": NaN}', "NaN")
    nested = copy.deepcopy(good)
    nested["tags"][0]["note"] = [[[[[[[[[[[[[[[[[["deep"]]]]]]]]]]]]]]]]]]
    _refused(store, sid, nested, "nested deeper than")
    # Two different tags at the same moment are two judgments: accepted.
    two = copy.deepcopy(good)
    two["tags"] = [{**two["tags"][0], "id": None}, {**two["tags"][0], "id": None, "tag": "steering_decision"}]
    assert two["tags"][0]["tag"] == RG
    written = import_tags(store, sid, json.dumps(two), RUBRIC)
    assert sum(e.type == "tag.added" for e in written) == 2


def _cli_import(sid: str, data: Path, *, path: Path | None = None, stdin: str | None = None):
    return subprocess.run(
        [sys.executable, "-m", "copilot", "tags", "import", sid, str(path) if path else "-", "--data-dir", str(data)],
        cwd=REPO,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _one_line(r: subprocess.CompletedProcess, needle: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("copilot: error: ") and needle in lines[0], r.stderr


def test_cli_hostile_files_are_one_line_errors(tmp_path):
    data = tmp_path / "data"
    with SessionStore(data) as store:
        sid = build_session(store)
        before = store.last_seq(sid)
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000)
    _one_line(_cli_import(sid, data, path=deep), "nested deeper than")
    _one_line(_cli_import(sid, data, stdin='{"version": ' + "7" * 5000 + "}"), "too many digits")
    huge = tmp_path / "huge.json"
    huge.write_bytes(b" " * (MAX_FILE_BYTES + 1))
    _one_line(_cli_import(sid, data, path=huge), "larger than the 2 MiB")
    with SessionStore(data) as store:
        assert store.last_seq(sid) == before
