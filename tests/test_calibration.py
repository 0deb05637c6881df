"""Calibration statistics against small cases worked out by hand (arithmetic in the comments).

Events are built the way the live session writes them (segment.final, tag.proposed, tag.added,
tag.updated, status), then folded and scored; nothing in the statistics is mocked.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from copilot.events import Event, Segment, SessionStarted, Status, Tag, TagUpdate
from copilot.review.calibration import (
    COVERAGE_COMPONENT,
    calibrate,
    cohen_kappa,
    format_report,
    krippendorff_alpha,
    normalize_rater,
)

SID = "ses_test"
RG = "requirement_gathering"
TA = "tradeoff_articulation"


class Log:
    """A tiny session builder: seq assigned in order, like the store does."""

    def __init__(self, n_segments: int, seg_ms: int = 1000) -> None:
        self.events: list[Event] = []
        self.add(SessionStarted(title="hand-worked", mode="import"))
        self.segs = []
        for i in range(n_segments):
            seg = Segment(
                id=f"s{i + 1}",
                speaker="candidate" if i % 2 else "interviewer",
                start_ms=i * seg_ms,
                end_ms=(i + 1) * seg_ms - 100,
                text=f"utterance number {i + 1}",
            )
            self.segs.append(seg)
            self.add(seg)

    def add(self, payload, type=None) -> Event:
        ev = Event.of(SID, payload, type=type).model_copy(update={"seq": len(self.events) + 1})
        self.events.append(ev)
        return ev

    def tag(self, source: str, units: list[int], tag: str = RG, tag_id: str | None = None) -> None:
        """One tag per listed unit (1-based), spanning that unit's time."""
        for u in units:
            seg = self.segs[u - 1]
            t = Tag(
                tag=tag,
                segment_ids=[seg.id],
                start_ms=seg.start_ms,
                end_ms=seg.end_ms,
                speaker=seg.speaker,
                evidence=seg.text,
                source=source,
                **({"id": tag_id} if tag_id else {}),
            )
            self.add(t)

    def raters(self, labels: dict[str, list[int]], tag: str = RG) -> None:
        for name, row in labels.items():
            self.tag(name, [i + 1 for i, v in enumerate(row) if v == 1], tag)


def kappa_of(cal, a, b, tag=RG):
    ts = next(t for t in cal.tags if t.tag == tag)
    p = next(p for p in ts.pairs if {p.a, p.b} == {a, b})
    return p.kappa


def tag_stats(cal, tag=RG):
    return next(t for t in cal.tags if t.tag == tag)


def test_perfect_agreement_gives_kappa_and_alpha_one():
    # 4 units; alice and bob both mark units 1 and 3.
    # kappa: p_o = 4/4 = 1; p_e = P(A=1)P(B=1) + P(A=0)P(B=0) = .5*.5 + .5*.5 = .5
    #        kappa = (1 - .5) / (1 - .5) = 1
    # alpha: observed disagreement D_o = 0, so alpha = 1 - 0/D_e = 1
    log = Log(4)
    log.raters({"human:alice": [1, 0, 1, 0], "human:bob": [1, 0, 1, 0]})
    cal = calibrate(log.events)
    assert cal.raters == ["human:alice", "human:bob"]
    assert kappa_of(cal, "human:alice", "human:bob").value == pytest.approx(1.0)
    assert tag_stats(cal).alpha.value == pytest.approx(1.0)
    assert tag_stats(cal).agreement.value == pytest.approx(1.0)
    assert cal.disagreements == []


def test_chance_agreement_gives_kappa_zero_and_hand_computed_alpha():
    # A = [1,1,0,0], B = [1,0,1,0]
    # kappa: p_o = 2/4 = .5 (units 1 and 4); p_e = .5*.5 + .5*.5 = .5 -> kappa = (.5-.5)/(1-.5) = 0
    # alpha (nominal), coincidence matrix, each unit has m_u = 2 values, each ordered pair / (m_u-1):
    #   u1 (1,1): o11 += 2; u2 (1,0): o10 += 1, o01 += 1; u3 (0,1): o10 += 1, o01 += 1; u4 (0,0): o00 += 2
    #   o11=2, o10=2, o01=2, o00=2; n1 = 4, n0 = 4, n = 8
    #   D_o = (o10 + o01) / n = 4/8 = .5
    #   D_e = (n1*n0 + n0*n1) / (n(n-1)) = 32/56 = 4/7
    #   alpha = 1 - D_o/D_e = 1 - (1/2)/(4/7) = 1 - 7/8 = 1/8
    log = Log(4)
    log.raters({"human:alice": [1, 1, 0, 0], "human:bob": [1, 0, 1, 0]})
    cal = calibrate(log.events)
    assert kappa_of(cal, "human:alice", "human:bob").value == pytest.approx(0.0, abs=1e-12)
    assert tag_stats(cal).alpha.value == pytest.approx(1 / 8)
    assert tag_stats(cal).agreement.value == pytest.approx(0.5)
    # units 2 and 3 disagree, with the transcript text and who marked them
    assert [(d.segment_id, d.marked_by, d.not_marked_by) for d in cal.disagreements] == [
        ("s2", ["human:alice"], ["human:bob"]),
        ("s3", ["human:bob"], ["human:alice"]),
    ]
    assert cal.disagreements[0].text == "utterance number 2"
    assert cal.disagreements[0].speaker == "candidate"


def test_rater_missing_some_segments_alpha_with_missing_data():
    # carol reviewed only the first 3 units (her tag file's coverage ends at 3000 ms).
    #   A = [1,1,0,0]   B = [1,0,0,0]   C = [1,1,0,.]
    # alpha coincidences:
    #   u1 (1,1,1), m=3: 6 ordered (1,1) pairs / 2 -> o11 += 3
    #   u2 (1,0,1), m=3: (1,1) 2, (1,0) 2, (0,1) 2, each / 2 -> o11 += 1, o10 += 1, o01 += 1
    #   u3 (0,0,0), m=3: o00 += 3
    #   u4 (0,0),   m=2: o00 += 2
    #   o11 = 4, o10 = 1, o01 = 1, o00 = 5; n1 = 5, n0 = 6, n = 11
    #   D_o = 2/11; D_e = 2*5*6 / (11*10) = 60/110 = 6/11; alpha = 1 - (2/11)/(6/11) = 2/3
    # kappa on shared units:
    #   A~B (4 units): p_o = 3/4; p_e = .5*.25 + .5*.75 = .5 -> (.75-.5)/.5 = .5
    #   A~C (units 1-3): identical [1,1,0] -> 1
    #   B~C (units 1-3): B=[1,0,0], C=[1,1,0]: p_o = 2/3; p_e = 1/3*2/3 + 2/3*1/3 = 4/9
    #        -> (2/3 - 4/9)/(1 - 4/9) = (2/9)/(5/9) = .4
    # percent agreement: u1 yes, u2 no, u3 yes, u4 yes (A and B) -> 3/4
    log = Log(4)
    log.raters({"human:alice": [1, 1, 0, 0], "human:bob": [1, 0, 0, 0], "human:carol": [1, 1, 0, 0]})
    log.add(
        Status(
            component=COVERAGE_COMPONENT,
            message="imported",
            details={"rater": "human:carol", "coverage": {"start_ms": 0, "end_ms": 3000}},
        )
    )
    cal = calibrate(log.events)
    assert tag_stats(cal).alpha.value == pytest.approx(2 / 3)
    assert kappa_of(cal, "human:alice", "human:bob").value == pytest.approx(0.5)
    assert kappa_of(cal, "human:alice", "human:carol").value == pytest.approx(1.0)
    assert kappa_of(cal, "human:alice", "human:carol").n == 3
    assert kappa_of(cal, "human:bob", "human:carol").value == pytest.approx(0.4)
    assert tag_stats(cal).agreement.value == pytest.approx(3 / 4)


def test_textbook_cohen_kappa_wikipedia_example():
    # Wikipedia "Cohen's kappa", 50 applications: both yes 20, A yes/B no 5, A no/B yes 10, both no 15.
    # p_o = 35/50 = .7; P(A yes) = 25/50 = .5, P(B yes) = 30/50 = .6
    # p_e = .5*.6 + .5*.4 = .5; kappa = (.7 - .5)/(1 - .5) = .4
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    log = Log(50)
    log.raters({"human:a": a, "human:b": b})
    cal = calibrate(log.events)
    assert kappa_of(cal, "human:a", "human:b").value == pytest.approx(0.4)


def test_textbook_krippendorff_alpha_nominal_example():
    # Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", the 4 observers x 12 units
    # example with missing values: nominal alpha = 0.743 (the paper's figure, to 3 places).
    nan = np.nan
    data = np.array(
        [
            [1, 2, 3, 3, 2, 1, 4, 1, 2, nan, nan, nan],
            [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, nan, 3],
            [nan, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, nan],
            [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, nan],
        ]
    )
    assert round(krippendorff_alpha(data).value, 3) == 0.743


def test_degenerate_constant_raters_report_null_with_reason():
    # Nobody marks anything: p_e = 1, kappa = 0/0; every rating "absent", alpha undefined.
    log = Log(3)
    log.raters({"human:alice": [0, 0, 0], "human:bob": [0, 0, 0]})
    log.tag("human:alice", [1], tag=TA)  # so that both raters exist in the log for some tag
    cal = calibrate(log.events, raters=["alice", "bob"], labels={RG: "Requirement gathering", TA: "Tradeoff"})
    k = kappa_of(cal, "human:alice", "human:bob")
    assert k.value is None and "no variation" in k.reason
    a = tag_stats(cal).alpha
    assert a.value is None and "no variation" in a.reason
    assert tag_stats(cal).agreement.value == pytest.approx(1.0)
    # One constant rater against a varying one is defined: p_e = P(B=0) = p_o -> kappa 0
    k2 = cohen_kappa(np.array([0.0, 0.0, 0.0]), np.array([1.0, 0.0, 0.0]))
    assert k2.value == pytest.approx(0.0)
    # And the table prints n/a with the reason instead of crashing.
    text = format_report(cal)
    assert "n/a" in text and "no variation" in text
    # a single rater: alpha needs two
    assert krippendorff_alpha(np.array([[1.0, 0.0]])).value is None


def test_copilot_raters_and_human_verdicts():
    # 4 units. rules proposes RG on units 1, 2, 3. The LLM edits the unit-3 tag into a tradeoff,
    # rejects the unit-2 tag, and adds its own RG on unit 4.
    # alice (live, in the panel) confirms the unit-1 rules tag, rejects the unit-2 one, and adds RG on 4.
    log = Log(4)
    log.tag("rules", [1], tag_id="t1")
    log.tag("rules", [2], tag_id="t2")
    log.tag("rules", [3], tag_id="t3")
    log.add(TagUpdate(tag_id="t3", status="edited", by="llm:gpt-4o-mini", tag=TA))
    log.add(TagUpdate(tag_id="t2", status="rejected", by="llm:gpt-4o-mini"))
    log.tag("llm:gpt-4o-mini", [4], tag_id="t4")
    log.add(TagUpdate(tag_id="t1", status="confirmed", by="alice"))
    log.add(TagUpdate(tag_id="t2", status="rejected", by="alice"))
    log.tag("human:alice", [4], tag_id="t5")
    cal = calibrate(log.events)
    assert cal.raters == ["copilot:llm", "copilot:rules", "human:alice"]
    marks = {r: sorted(sum((e["segment_ids"] for e in cal.timelines[r] if e["tag"] == RG), [])) for r in cal.raters}
    # rules: what it proposed, unaffected by anyone's verdict
    assert marks["copilot:rules"] == ["s1", "s2", "s3"]
    # llm: its own tag (unit 4); its edit of t3 made that a tradeoff; its rejection dropped t2
    assert marks["copilot:llm"] == ["s4"]
    assert [e["segment_ids"] for e in cal.timelines["copilot:llm"] if e["tag"] == TA] == [["s3"]]
    # alice: confirmed t1 (unit 1) and her own tag (unit 4); rejected t2 not counted
    assert marks["human:alice"] == ["s1", "s4"]
    # rules [1,1,1,0] vs alice [1,0,0,1]: p_o = 1/4; p_e = .75*.5 + .25*.5 = .5 -> (.25-.5)/.5 = -.5
    assert kappa_of(cal, "copilot:rules", "human:alice").value == pytest.approx(-0.5)


def test_point_tags_and_rater_names():
    # A hotkey tag at a moment (start == end) marks the segment containing it; in a gap between
    # segments, the one that began last before it.
    log = Log(3)  # segments [0,900), [1000,1900), [2000,2900)
    log.add(Tag(tag=RG, start_ms=1500, end_ms=1500, source="human:alice"))
    log.add(Tag(tag=RG, start_ms=1950, end_ms=1950, source="human:bob"))
    cal = calibrate(log.events)
    assert cal.timelines["human:alice"][0]["segment_ids"] == ["s2"]
    assert cal.timelines["human:bob"][0]["segment_ids"] == ["s2"]
    assert normalize_rater("alice") == "human:alice"
    assert normalize_rater("rules") == "copilot:rules"
    assert normalize_rater("llm") == "copilot:llm"
    assert normalize_rater("human:bob") == "human:bob"


def test_overall_pools_unit_by_tag_items():
    # 2 units x 2 tags = 4 items. alice: RG on 1, TA on 2 -> items [1,0 | 0,1]
    # bob:   RG on 1, TA on 1 -> items [1,0 | 1,0]
    # p_o = 2/4 (items RG1, RG2 agree); P(a=1) = .5, P(b=1) = .5 -> p_e = .5 -> kappa 0
    log = Log(2)
    log.tag("human:alice", [1], RG)
    log.tag("human:alice", [2], TA)
    log.tag("human:bob", [1], RG)
    log.tag("human:bob", [1], TA)
    cal = calibrate(log.events)
    assert cal.overall.pairs[0].kappa.value == pytest.approx(0.0, abs=1e-12)
    assert cal.overall.agreement.value == pytest.approx(0.5)
    assert not math.isnan(cal.overall.alpha.value)


def test_llm_dispute_is_not_an_endorsement():
    # copilot.tagging.hybrid answers every rules tag: confirmed, edited, or back to "proposed"
    # (disputed). Rules [1,1] ; the LLM confirms unit 1 and disputes unit 2 -> llm [1,0].
    log = Log(2)
    log.tag("rules", [1], tag_id="t1")
    log.tag("rules", [2], tag_id="t2")
    log.add(TagUpdate(tag_id="t1", status="confirmed", by="llm:m"))
    log.add(TagUpdate(tag_id="t2", status="proposed", by="llm:m", confidence=0.2))
    cal = calibrate(log.events)
    assert [e["segment_ids"] for e in cal.timelines["copilot:llm"]] == [["s1"]]
    assert [e["segment_ids"] for e in cal.timelines["copilot:rules"]] == [["s1"], ["s2"]]


def test_retracted_tags_give_no_votes_and_a_late_machine_relabel_is_the_machine_own():
    # 3 units. rules proposes RG on 1, 2, 3. It retracts t2 (merged into its turn's tag) before
    # anyone ruled on it. alice confirms t3; then the LLM answers late and relabels t3 a tradeoff.
    log = Log(3)
    log.tag("rules", [1], tag_id="t1")
    log.tag("rules", [2], tag_id="t2")
    log.tag("rules", [3], tag_id="t3")
    log.add(TagUpdate(tag_id="t2", status="retracted", by="rules"))
    log.add(TagUpdate(tag_id="t3", status="confirmed", by="human:alice"))
    log.add(TagUpdate(tag_id="t3", status="edited", by="llm:m", tag=TA))
    log.add(TagUpdate(tag_id="t3", status="confirmed", by="human:bob"))  # bob confirms what he sees: RG
    cal = calibrate(log.events)
    rg = {r: [e["segment_ids"] for e in cal.timelines[r] if e["tag"] == RG] for r in cal.raters}
    # t2 counts for nobody, not even the tagger that proposed it
    assert rg["copilot:rules"] == [["s1"], ["s3"]]
    # alice still endorses t3 as the fold shows it (RG); the LLM's relabel is its own claim
    assert rg["human:alice"] == rg["human:bob"] == [["s3"]]
    assert [e["segment_ids"] for e in cal.timelines["copilot:llm"] if e["tag"] == TA] == [["s3"]]
