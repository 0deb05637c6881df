"""Review, exports and calibration read turns: a settled turn is one unit, its fragments are not,
and a tag marks exactly one turn (real SQLite store, the real fold)."""

from __future__ import annotations

from copilot.events import Segment, SessionStarted, Tag, TagUpdate, Turn
from copilot.review.calibration import calibrate
from copilot.review.exports import export_session
from copilot.session.fold import fold
from copilot.session.store import SessionStore


def _session(tmp_path):
    store = SessionStore(tmp_path / "data")
    sid = store.create_session(SessionStarted(title="turns", mode="replay"))
    # Two fragments of one candidate turn that overlap by 20 ms (as the streaming engine cuts them),
    # then an interviewer turn, then a fragment that never settled (the session stopped).
    f1 = Segment(speaker="candidate", channel=1, start_ms=0, end_ms=2020, text="We want a")
    f2 = Segment(speaker="candidate", channel=1, start_ms=2000, end_ms=4000, text="queue per tenant.")
    f3 = Segment(speaker="interviewer", channel=0, start_ms=4500, end_ms=6000, text="Why per tenant?")
    f4 = Segment(speaker="candidate", channel=1, start_ms=6500, end_ms=8000, text="Because noisy")
    t1 = Turn(
        speaker="candidate",
        channel=1,
        start_ms=0,
        end_ms=4000,
        text="We want a queue per tenant.",
        segment_ids=[f1.id, f2.id],
        model="tiny.en",
    )
    t2 = Turn(
        speaker="interviewer",
        channel=0,
        start_ms=4500,
        end_ms=6000,
        text="Why per tenant?",
        segment_ids=[f3.id],
        model="tiny.en",
    )
    for payload in (f1, f2, t1, f3, t2, f4):
        store.append(store_event(sid, payload))
    return store, sid, (f1, f2, f3, f4), (t1, t2)


def store_event(sid, payload, type=None):
    from copilot.events import Event

    return Event.of(sid, payload, type=type)


def test_units_are_turns_plus_fragments_no_turn_settled(tmp_path):
    store, sid, (f1, f2, f3, f4), (t1, t2) = _session(tmp_path)
    units = fold(store.events(sid)).units()
    assert [(u.id, u.kind) for u in units] == [(t1.id, "turn"), (t2.id, "turn"), (f4.id, "fragment")]
    assert units[0].text == "We want a queue per tenant." and units[0].segment_ids == (f1.id, f2.id)


def test_a_revision_replaces_the_turns_text_in_review_and_exports(tmp_path):
    store, sid, _, (t1, _t2) = _session(tmp_path)
    store.append(
        store_event(
            sid, t1.model_copy(update={"text": "We want one queue per tenant.", "revision": 1, "model": "base"})
        )
    )
    events = store.events(sid)
    assert fold(events).units()[0].text == "We want one queue per tenant."
    md = export_session(events, "md")
    assert "We want one queue per tenant." in md and "We want a queue" not in md
    assert "We want a" not in export_session(events, "vtt")
    vtt = export_session(events, "vtt")
    assert vtt.count("-->") == 3  # two turns and the unsettled fragment


def test_a_tag_marks_exactly_one_turn_in_calibration(tmp_path):
    store, sid, (f1, f2, f3, f4), (t1, t2) = _session(tmp_path)
    # A machine tag on the second fragment, carried to the turn; a person's hotkey at a moment
    # inside the first turn; a person's span tag that runs over two turns (mostly the second).
    rules = Tag(tag="steering_decision", segment_ids=[f2.id], start_ms=2000, end_ms=4000, source="rules")
    store.append(store_event(sid, rules, "tag.proposed"))
    store.append(
        store_event(
            sid,
            TagUpdate(
                tag_id=rules.id,
                status="proposed",
                by="rules",
                turn_id=t1.id,
                segment_ids=[f1.id, f2.id],
                start_ms=0,
                end_ms=4000,
            ),
        )
    )
    store.append(
        store_event(sid, Tag(tag="steering_decision", start_ms=1990, end_ms=1990, source="human:ann"), "tag.added")
    )
    store.append(
        store_event(sid, Tag(tag="steering_decision", start_ms=3500, end_ms=6000, source="human:bob"), "tag.added")
    )
    cal = calibrate(store.events(sid), labels={"steering_decision": "Steering"})
    assert cal.units == 3
    timelines = cal.timelines
    assert [c["segment_ids"] for c in timelines["copilot:rules"]] == [[t1.id]]
    assert [c["segment_ids"] for c in timelines["human:ann"]] == [[t1.id]]
    assert [c["segment_ids"] for c in timelines["human:bob"]] == [[t2.id]]
    assert all(len(c["segment_ids"]) <= 1 for cs in timelines.values() for c in cs)
    assert {d.segment_id for d in cal.disagreements} <= {t1.id, t2.id}
