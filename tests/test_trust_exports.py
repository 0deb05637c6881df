"""Issue 11, finding 7: text typed by anyone (notes, tag evidence, speaker names) cannot smuggle
control or bidi characters into an export, nor break a note onto lines of its own."""

from __future__ import annotations

import pytest

from copilot.events import Event, Note, Segment, SessionStarted, Tag
from copilot.review.exports import export_session, parse_srt, parse_vtt
from copilot.session.store import SessionStore

HOSTILE = "a\x00b \x1b[31mred\x1b[0m \u202eevil\u202c \u2066iso\u2069 \x85nel\r\n- [x] injected\rline\u2028sep"
BAD_CHARS = ["\x00", "\x1b", "\u202e", "\u202c", "\u2066", "\u2069", "\x85", "\r", "\u2028"]


@pytest.fixture()
def events(tmp_path):
    with SessionStore(tmp_path / "data") as store:
        sid = store.create_session(SessionStarted(title=f"title {HOSTILE}", speakers=["interviewer", "cand\nidate"]))
        seg = Segment(speaker="cand\u202eidate", start_ms=0, end_ms=900, text=f"words {HOSTILE}")
        store.append(Event.of(sid, seg))
        store.append(
            Event.of(
                sid,
                Tag(
                    tag="requirement_gathering",
                    segment_ids=[seg.id],
                    start_ms=0,
                    end_ms=900,
                    evidence=f"ev {HOSTILE}",
                    source="human:alice",
                ),
            )
        )
        store.append(Event.of(sid, Note(text=f"note {HOSTILE}", at_ms=500, by="alice")))
        return store.events(sid)


def test_markdown_neutralises_control_and_bidi_and_keeps_each_note_on_one_line(events):
    md = export_session(events, "md")
    for ch in BAD_CHARS:
        assert ch not in md, repr(ch)
    note_lines = [line for line in md.split("\n") if "note a" in line]
    assert len(note_lines) == 1
    line = note_lines[0]
    assert line.startswith("- [00:00] note a\ufffdb") and line.endswith("(alice)")
    assert "injected" in line and "sep" in line  # nothing dropped, only made inert
    assert not any(ln.startswith("- \\[x\\] injected") or ln.startswith("- [x]") for ln in md.split("\n"))


@pytest.mark.parametrize("fmt, parse", [("vtt", parse_vtt), ("srt", parse_srt)])
def test_subtitles_neutralise_control_and_bidi(events, fmt, parse):
    text = export_session(events, fmt)
    for ch in BAD_CHARS:
        assert ch not in text, repr(ch)
    cues = parse(text)
    assert len(cues) == 1 and cues[0].text.startswith("words a\ufffdb") and "injected" in cues[0].text
