"""`copilot tags export|import` and `copilot calibrate` as a user runs them: CLI subprocesses on a
real SQLite store in a temp data dir. Every refused import leaves the event count unchanged."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from copilot.session.store import SessionStore
from tests.conftest import run_copilot as copilot
from tests.review_fixtures import ALICE, BOB, RG, SD, TA, build_session, rater_file

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture()
def session(tmp_path):
    data = tmp_path / "data"
    with SessionStore(data) as store:
        sid = build_session(store)
        other = build_session(store, title="another interview")
    return data, sid, other


def count(data: Path, sid: str) -> int:
    with SessionStore(data) as store:
        return len(store.events(sid))


def write(tmp_path: Path, name: str, doc) -> Path:
    p = tmp_path / name
    p.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return p


def test_export_live_raters_tags(session):
    data, sid, _ = session
    r = copilot("tags", "export", sid, "--rater", "interviewer", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["format"] == "interview-copilot.tags" and doc["version"] == 1
    assert doc["session_id"] == sid and doc["rater"] == "interviewer" and doc["rubric"] == "default"
    # confirmed rules tags (r01, r05) and the hotkey tag count; rejected (r11) and unreviewed (r03) do not
    assert [t["id"] for t in doc["tags"]] == ["tag_r01", "tag_r05", "tag_h01"]
    first = doc["tags"][0]
    assert set(first) == {"id", "tag", "start_ms", "end_ms", "segment_ids", "speaker", "evidence", "note"}
    assert first["tag"] == RG and first["segment_ids"] == ["seg_02"] and first["speaker"] == "candidate"


def test_import_then_export_round_trip_and_calibrate(session, tmp_path):
    data, sid, _ = session
    before = count(data, sid)
    alice = rater_file(sid, "alice", ALICE)
    r = copilot("tags", "import", sid, str(write(tmp_path, "alice.json", alice)), "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert f"imported {len(alice['tags'])} tags from human:alice" in r.stdout
    # every tag plus one status event recording the import, nothing else
    assert count(data, sid) == before + len(alice["tags"]) + 1
    out = tmp_path / "alice-again.json"
    r = copilot("tags", "export", sid, "--rater", "alice", "--data-dir", str(data), "-o", str(out))
    assert r.returncode == 0, r.stderr
    again = json.loads(out.read_text())
    key = lambda t: (t["id"], t["tag"], t["start_ms"], t["end_ms"], tuple(t["segment_ids"]), t["evidence"])
    assert sorted(map(key, again["tags"])) == sorted(map(key, alice["tags"]))

    bob = rater_file(sid, "bob", BOB)
    r = copilot("tags", "import", sid, str(write(tmp_path, "bob.json", bob)), "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    r = copilot("calibrate", sid, "--raters", "alice,bob", "--json", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    cal = json.loads(r.stdout)
    assert cal["raters"] == ["human:alice", "human:bob"] and cal["units"] == 12
    kappa = {t["tag"]: t["pairs"][0]["kappa"]["value"] for t in cal["tags"]}
    # worked by hand in tests/test_review_browser.py: RG .75, TA .75, SD .625
    assert kappa[RG] == pytest.approx(0.75) and kappa[TA] == pytest.approx(0.75) and kappa[SD] == pytest.approx(0.625)
    assert len(cal["disagreements"]) == 3
    r = copilot("calibrate", sid, "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    for text in (
        "Cohen's kappa",
        "copilot:rules",
        "copilot:llm",
        "human:interviewer",
        "Disagreements",
        "We could use a relational database",
    ):
        assert text in r.stdout


def refused(r: subprocess.CompletedProcess, *needles: str) -> None:
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("copilot: error: "), r.stderr
    assert "Traceback" not in r.stderr
    for n in needles:
        assert n in lines[0], lines[0]


def test_refusals_leave_nothing_behind(session, tmp_path):
    data, sid, other = session
    good = rater_file(sid, "alice", ALICE)
    before = count(data, sid)

    def imp(doc, *extra):
        return copilot("tags", "import", sid, str(write(tmp_path, "f.json", doc)), "--data-dir", str(data), *extra)

    # a tag file for another session
    refused(imp(rater_file(other, "alice", ALICE)), f"is for session {other}, not {sid}")
    # an unknown tag id, in the last tag: the earlier (valid) tags must not be written either
    bad = rater_file(sid, "alice", ALICE)
    bad["tags"][-1]["tag"] = "charisma"
    refused(imp(bad), "unknown tag id 'charisma'", f"tag #{len(bad['tags'])}")
    # malformed: not JSON, wrong format, a field missing, a bad type, end before start
    refused(imp("{not json"), "not JSON")
    refused(imp({"format": "something-else"}), "not a tag file")
    broken = rater_file(sid, "alice", ALICE)
    del broken["tags"][0]["start_ms"]
    refused(imp(broken), "malformed at tags.0.start_ms")
    broken = rater_file(sid, "alice", ALICE)
    broken["tags"][1]["end_ms"] = "soon"
    refused(imp(broken), "malformed at tags.1.end_ms")
    backwards = rater_file(sid, "alice", ALICE)
    backwards["tags"][0]["end_ms"] = 0
    refused(imp(backwards), "is before start_ms")
    ghost = rater_file(sid, "alice", ALICE)
    ghost["tags"][0]["segment_ids"] = ["seg_99"]
    refused(imp(ghost), "segment seg_99 is not in session")
    refused(imp(good, "--rater", "bad name!"), "bad rater name")
    refused(copilot("tags", "import", sid, str(tmp_path / "missing.json"), "--data-dir", str(data)), "no such file")
    refused(
        copilot("tags", "import", "ses_nope", str(write(tmp_path, "g.json", good)), "--data-dir", str(data)),
        "no session ses_nope",
    )
    assert count(data, sid) == before

    # a good import works once...
    assert imp(good).returncode == 0
    after = count(data, sid)
    # ...and the same file again is a duplicate
    refused(imp(good), "already imported")
    # the same tags with fresh ids (a re-export elsewhere) are a duplicate too
    fresh = rater_file(sid, "alice", ALICE)
    for t in fresh["tags"]:
        t["id"] = None
    refused(imp(fresh), "already imported")
    assert count(data, sid) == after
    # the same tags under another rater name are a different rater: accepted
    r = imp(fresh, "--rater", "carol")
    assert r.returncode == 0, r.stderr
    assert count(data, sid) == after + len(fresh["tags"]) + 1


def test_export_refuses_unknown_session_and_bad_rater(session):
    data, sid, _ = session
    refused(copilot("tags", "export", "ses_nope", "--rater", "alice", "--data-dir", str(data)), "no session ses_nope")
    refused(copilot("tags", "export", sid, "--rater", "<script>", "--data-dir", str(data)), "bad rater name")
    refused(copilot("calibrate", "ses_nope", "--data-dir", str(data)), "no session ses_nope")


def test_reserved_rater_names_are_refused_on_import(session, tmp_path):
    data, sid, _ = session
    before = count(data, sid)
    f = write(tmp_path, "r.json", rater_file(sid, "alice", ALICE))
    refused(copilot("tags", "import", sid, str(f), "--rater", "rules", "--data-dir", str(data)), "reserved")
    assert count(data, sid) == before
    # ...but exporting the copilot's own tags works
    r = copilot("tags", "export", sid, "--rater", "rules", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert {t["id"] for t in json.loads(r.stdout)["tags"]} == {f"tag_r{n:02d}" for n in (1, 3, 5, 6, 8, 9, 11)}
