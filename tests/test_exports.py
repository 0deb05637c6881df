"""Exports round-trip: JSON back to the same events, WebVTT/SRT back to the same cues, and the
Markdown debrief carries the per-tag summary, verdicts and notes. Built on a real store."""

from __future__ import annotations

import json

import pytest

from copilot.events import Event, Segment, SessionStarted
from copilot.review.exports import (
    ExportError,
    export_session,
    import_json,
    parse_srt,
    parse_vtt,
)
from copilot.session.store import SessionStore
from tests.review_fixtures import LINES, build_session


@pytest.fixture()
def events(tmp_path):
    with SessionStore(tmp_path / "data") as store:
        sid = build_session(store)
        return store.events(sid)


def test_json_round_trip_is_the_same_log(events):
    text = export_session(events, "json")
    doc = json.loads(text)
    assert doc["format"] == "interview-copilot.session" and doc["version"] == 1 and doc["event_schema"] == 1
    back = import_json(text)
    assert [e.model_dump() for e in back] == [e.model_dump() for e in events]
    with pytest.raises(ExportError, match="not a session export"):
        import_json('{"format": "other"}')
    with pytest.raises(ExportError, match="version"):
        import_json(json.dumps({**doc, "version": 99}))


@pytest.mark.parametrize("fmt,parse", [("vtt", parse_vtt), ("srt", parse_srt)])
def test_subtitles_round_trip_to_segments(events, fmt, parse):
    text = export_session(events, fmt)
    cues = parse(text)
    segs = [Segment.model_validate(e.data) for e in events if e.type == "segment.final"]
    assert [(c.start_ms, c.end_ms, c.speaker, c.text) for c in cues] == [
        (s.start_ms, s.end_ms, s.speaker, s.text) for s in segs
    ]
    assert len(cues) == len(LINES)


def test_vtt_escapes_markup_and_voice_tags():
    sid = "ses_x"
    evs = [
        Event.of(sid, SessionStarted(title="t")).model_copy(update={"seq": 1}),
        Event.of(
            sid,
            Segment(
                id="s1",
                speaker="candidate",
                start_ms=3_723_004,
                end_ms=3_725_000,
                text="if a < b && c --> d then <b>bold</b>",
            ),
        ).model_copy(update={"seq": 2}),
    ]
    vtt = export_session(evs, "vtt")
    assert vtt.startswith("WEBVTT")
    assert "01:02:03.004 --> 01:02:05.000" in vtt
    assert "<v candidate>if a &lt; b &amp;&amp; c --&gt; d then &lt;b&gt;bold&lt;/b&gt;" in vtt
    assert parse_vtt(vtt)[0].text == "if a < b && c --> d then <b>bold</b>"
    srt = export_session(evs, "srt")
    assert "01:02:03,004 --> 01:02:05,000" in srt
    assert parse_srt(srt)[0].speaker == "candidate"


def test_markdown_debrief(events):
    md = export_session(events, "md")
    assert md.startswith("# Interview debrief: URL shortener, system design")
    # the per-tag table: label, standing count, first / last moment, human confirmations, rejections
    assert "| Requirement gathering | 2 | 00:05 | 00:15 | 1 | 0 |" in md
    # tradeoffs: r05, r06 stand (r09 became a steering decision, r11 rejected by the interviewer)
    assert "| Tradeoff articulation | 2 | 00:25 | 00:30 | 1 | 1 |" in md
    # steering: r08, the LLM-edited r09 and the interviewer's hotkey tag
    assert "| Steering decision | 3 | 00:32 | 00:45 | 1 | 0 |" in md
    # strongest quotes first: the interviewer-confirmed tradeoff before the unreviewed one
    ta = md.split("### Tradeoff articulation")[1].split("###")[0]
    assert ta.index("gives us strong consistency") < ta.index("scales writes easily")
    assert "[00:25] **candidate**" in ta
    assert "Rejected by interviewer: Tradeoff articulation at 00:55" in md
    assert "2 confirmed, 1 rejected, 4 not reviewed by a person." in md
    assert "- [00:16] Strong clarifying questions up front" in md
    assert "**[00:00] interviewer:** Let's design a URL shortener." in md
    assert "_[Requirement gathering]_" in md


def test_unknown_format_is_a_clear_error(events):
    with pytest.raises(ExportError, match="unknown export format 'pdf'"):
        export_session(events, "pdf")
