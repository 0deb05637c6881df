"""Rubric files: the bundled ones load; a bad one is a RubricError naming the file, the field and the line."""

from __future__ import annotations

from pathlib import Path

import pytest

from copilot.errors import RubricError
from copilot.tagging.rubric import is_interviewer, list_rubrics, load_rubric

REPO = Path(__file__).resolve().parent.parent
DEFAULT = (REPO / "rubric_tags" / "default.yaml").read_text()


def test_bundled_rubrics_load():
    assert {"default", "builder_track"} <= set(list_rubrics())
    d = load_rubric("default")
    assert d.tag_ids == ["requirement_gathering", "tradeoff_articulation", "steering_decision"]
    assert [t.hotkey for t in d.tags] == ["1", "2", "3"]
    assert all(t.applies_to == "candidate" and t.definition and t.examples and t.near_misses for t in d.tags)
    b = load_rubric("builder_track")
    assert b.tag_ids[:3] == d.tag_ids and len(b.tags) == 6
    assert [t.hotkey for t in b.tags[3:]] == ["4", "5", "6"]
    assert len({t.colour for t in b.tags}) == 6


def test_load_by_path_and_json_export():
    r = load_rubric(REPO / "rubric_tags" / "builder_track.yaml")
    j = r.to_json()
    assert j["id"] == "builder_track"
    assert {"id", "label", "colour", "hotkey", "definition"} <= set(j["tags"][0])
    assert j == r.model_dump(mode="json")


def test_interviewer_is_any_speaker_named_interviewer():
    r = load_rubric("default")
    assert is_interviewer("interviewer") and is_interviewer("Interviewer_2") and is_interviewer("interviewer (PM)")
    assert not is_interviewer("candidate") and not is_interviewer("A") and not is_interviewer("")
    assert not r.tags[0].applies("interviewer_agent") and r.tags[0].applies("candidate")


def _bad(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(RubricError) as err:
        load_rubric(path)
    msg = str(err.value)
    assert str(path) in msg
    assert "\n" not in msg  # one line
    return msg


def _line_of(text: str, needle: str, nth: int = 1) -> int:
    count = 0
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            count += 1
            if count == nth:
                return i
    raise AssertionError(needle)


def test_malformed_yaml_names_line(tmp_path):
    text = DEFAULT.replace('    hotkey: "2"', '    hotkey: "2\n    oops: [')
    msg = _bad(tmp_path, text)
    assert "invalid YAML" in msg and "line " in msg


def test_missing_field_names_field_and_line(tmp_path):
    text = DEFAULT.replace("    label: Tradeoff articulation\n", "")
    msg = _bad(tmp_path, text)
    assert "tags[1].label" in msg and "Field required" in msg
    # reported at the tag that lacks it
    assert f"line {_line_of(text, 'id: tradeoff_articulation')}:" in msg


def test_duplicate_hotkey_names_field_and_line(tmp_path):
    text = DEFAULT.replace('hotkey: "3"', 'hotkey: "1"')
    msg = _bad(tmp_path, text)
    assert "tags[2].hotkey" in msg and "duplicate hotkey" in msg
    assert f"line {_line_of(text, 'hotkey:', 3)}:" in msg


def test_bad_colour_names_field_and_line(tmp_path):
    text = DEFAULT.replace('colour: "#ff7f0e"', "colour: orange")
    msg = _bad(tmp_path, text)
    assert "tags[1].colour" in msg and "hex colour" in msg
    assert f"line {_line_of(text, 'colour: orange')}:" in msg


def test_other_bad_rubrics(tmp_path):
    assert "hotkey" in _bad(tmp_path, DEFAULT.replace('hotkey: "2"', 'hotkey: "22"'))
    assert "duplicate tag id" in _bad(tmp_path, DEFAULT.replace("id: steering_decision", "id: requirement_gathering"))
    assert "applies_to" in _bad(tmp_path, DEFAULT.replace("    applies_to: candidate", "    applies_to: everyone", 1))
    assert "line 1" in _bad(tmp_path, "- just\n- a list\n")
    assert "tags" in _bad(tmp_path, "id: x\nversion: 1\ntitle: t\ntags: []\n")


def test_unknown_rubric_name():
    with pytest.raises(RubricError, match="unknown rubric 'nope'.*default"):
        load_rubric("nope")
    with pytest.raises(RubricError, match="not found"):
        load_rubric("/nonexistent/rubric.yaml")
