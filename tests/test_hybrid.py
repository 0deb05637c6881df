"""Live LLM refinement of rules tags (LLMRefiner) and the batch hybrid, over real HTTP."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from copilot.events import Segment, Status, Tag, TagUpdate
from copilot.tagging.hybrid import DISPUTED_CONFIDENCE, HybridTagger, LLMRefiner, apply, merge
from copilot.tagging.llm_client import import_litellm
from tests.fake_llm_server import FakeLLMServer, Reply
from tests.llm_fixtures import BY, conversation, fake_tagger, tags_json


@pytest.fixture(scope="module", autouse=True)
def _litellm_imported():
    import_litellm()  # once, outside every timing below (the refiner warms it in a thread anyway)


@pytest.fixture()
def server():
    with FakeLLMServer() as s:
        yield s


def rules_tag(seg: Segment, tag: str, confidence: float = 0.8) -> Tag:
    return Tag(
        tag=tag,
        segment_ids=[seg.id],
        start_ms=seg.start_ms,
        end_ms=seg.end_ms,
        speaker=seg.speaker,
        evidence=seg.text[:20],
        confidence=confidence,
        source="rules",
    )


class Sink:
    """The `emit` callback: records payloads (the session would persist and broadcast them)."""

    def __init__(self) -> None:
        self.payloads: list[Tag | TagUpdate | Status] = []

    async def __call__(self, payload) -> None:
        self.payloads.append(payload)

    def of(self, kind: type) -> list:
        return [p for p in self.payloads if isinstance(p, kind)]


async def _live(refiner: LLMRefiner, items, close_s: float = 5.0) -> float:
    """Submit (segment, rules tags) pairs as the pipeline would; returns the slowest submit in s."""
    worst = 0.0
    history: list[Segment] = []
    for seg, tags in items:
        t0 = time.perf_counter()
        refiner.submit(seg, list(history[-6:]), tags)
        worst = max(worst, time.perf_counter() - t0)
        history.append(seg)
        await asyncio.sleep(0)
    await refiner.aclose(close_s)
    return worst


def test_merge_confirms_corrects_disputes_and_adds():
    segs = conversation()
    r_ok = rules_tag(segs[1], "requirement_gathering")
    r_wrong = rules_tag(segs[3], "steering_decision")
    r_spurious = rules_tag(segs[5], "steering_decision", confidence=0.6)
    r_unjudged = rules_tag(segs[6], "tradeoff_articulation")
    l = lambda seg, tag: Tag(
        tag=tag, segment_ids=[seg.id], start_ms=0, end_ms=1, evidence="x", confidence=0.9, rationale="why", source=BY
    )
    llm_tags = [
        l(segs[1], "requirement_gathering"),
        l(segs[3], "tradeoff_articulation"),
        l(segs[4], "steering_decision"),
    ]
    judged = [s.id for s in segs[1:6]]
    out = merge([r_ok, r_wrong, r_spurious, r_unjudged], llm_tags, judged, BY)

    updates = {u.tag_id: u for u in out if isinstance(u, TagUpdate)}
    assert updates[r_ok.id].status == "confirmed" and updates[r_ok.id].confidence == 0.9
    assert updates[r_wrong.id].status == "edited" and updates[r_wrong.id].tag == "tradeoff_articulation"
    assert updates[r_spurious.id].status == "proposed"
    assert (
        updates[r_spurious.id].confidence == DISPUTED_CONFIDENCE
        and "found no steering_decision" in updates[r_spurious.id].rationale
    )
    assert r_unjudged.id not in updates  # the LLM never saw that segment
    assert all(u.by == BY for u in updates.values())
    new = [t for t in out if isinstance(t, Tag)]
    assert [(t.tag, t.segment_ids) for t in new] == [("steering_decision", ["seg_c3"])]

    # A claim without evidence neither confirms nor disputes: the rules tag is left as it is.
    quiet = merge([r_spurious], [], [segs[5].id], BY, unverified={(segs[5].id, "steering_decision")})
    assert quiet == []

    batch = apply([r_ok, r_wrong, r_spurious, r_unjudged], out, keep_disputed=False)
    assert {t.id for t in batch} == {r_ok.id, r_wrong.id, r_unjudged.id, new[0].id}
    edited = next(t for t in batch if t.id == r_wrong.id)
    assert (edited.tag, edited.source) == ("tradeoff_articulation", BY)
    assert r_spurious.id in {t.id for t in apply([r_spurious], out, keep_disputed=True)}


def test_live_refinement_updates_the_same_tags_and_adds_missing_ones(rubric, server):
    segs = conversation()
    r_c1 = rules_tag(segs[1], "requirement_gathering")
    r_c2 = rules_tag(segs[3], "steering_decision")  # wrong: it is a tradeoff
    server.default = Reply(
        content_fn=lambda body: tags_json(
            *[
                t
                for t in [
                    ("seg_c1", "requirement_gathering", "how many new links per day are we expecting"),
                    ("seg_c2", "tradeoff_articulation", "scales the writes well but we lose ad hoc queries"),
                ]
                if f">> [{t[0]}]" in "\n".join(m["content"] for m in body["messages"])
            ]
        )
    )
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server), sink)
        await _live(refiner, [(segs[0], []), (segs[1], [r_c1])])
        return refiner

    refiner = asyncio.run(main())
    updates = sink.of(TagUpdate)
    assert [(u.tag_id, u.status, u.by) for u in updates] == [(r_c1.id, "confirmed", BY)]
    assert sink.of(Status) == [] and sink.of(Tag) == []
    assert server.calls() == 1  # the interviewer's turn alone cost no call

    sink.payloads.clear()

    async def more():
        refiner = LLMRefiner(fake_tagger(rubric, server), sink)
        await _live(refiner, [(s, []) for s in segs[:3]] + [(segs[3], [r_c2])])
        return refiner

    refiner = asyncio.run(more())
    edited = sink.of(TagUpdate)
    assert [(u.tag_id, u.status, u.tag) for u in edited if u.tag_id == r_c2.id] == [
        (r_c2.id, "edited", "tradeoff_articulation")
    ]
    assert edited[-1].evidence == "scales the writes well but we lose ad hoc queries"
    # ids are stable: no payload introduces a second tag for a segment the rules already tagged
    new_tags = sink.of(Tag)
    assert all(t.source == BY for t in new_tags)
    assert "seg_c2" not in {t.segment_ids[0] for t in new_tags}
    assert refiner.stats.edited == 1


def test_timeout_emits_status_and_submit_never_waits(rubric, server):
    segs = conversation()
    server.default = Reply(delay_s=3.0)
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server, timeout_s=0.5), sink)
        worst = await _live(refiner, [(segs[3], [rules_tag(segs[3], "tradeoff_articulation")]), (segs[4], [])])
        return refiner, worst

    started = time.monotonic()
    refiner, worst = asyncio.run(main())
    assert worst < 0.05  # the live path never waits on the LLM
    statuses = sink.of(Status)
    assert statuses and all(s.level == "warning" and s.component == "llm" for s in statuses)
    assert statuses[0].message == "LLM timeout after 0.5 s; rules tags stand"
    assert sink.of(TagUpdate) == [] and sink.of(Tag) == []  # the rules tags stand untouched
    assert refiner.stats.timeouts >= 1 and refiner.stats.failures == len(statuses)
    assert time.monotonic() - started < 2.5  # two calls at most, each cut at 0.5 s


def test_malformed_json_leaves_rules_tags_and_says_why(rubric, server):
    segs = conversation()
    server.default = Reply(content='{"tags": [ {"segment_id": "seg_c3", "tag": "steering_d')
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server), sink)
        await _live(refiner, [(segs[4], [rules_tag(segs[4], "steering_decision")])])

    asyncio.run(main())
    [status] = sink.payloads
    assert isinstance(status, Status) and status.level == "warning" and status.component == "llm"
    assert status.message.startswith("LLM answer unusable: answer is not valid JSON")
    assert status.message.endswith("; rules tags stand")
    assert status.details["segment_ids"] == ["seg_c3"]


def test_http_500_is_a_failure_status_after_retries(rubric, server):
    server.default = Reply(status=500)
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server, max_retries=1), sink)
        await _live(refiner, [(conversation()[4], [])])
        return refiner

    refiner = asyncio.run(main())
    [status] = sink.payloads
    assert status.message == "LLM server error (HTTP 500); rules tags stand"
    assert server.calls() == 2 and refiner.stats.usage.retries == 1


def test_429_then_success_in_the_live_path(rubric, server):
    segs = conversation()
    server.script(
        Reply(status=429), Reply(content=tags_json(("seg_c3", "steering_decision", "let's go with base62 ids")))
    )
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server), sink)
        await _live(refiner, [(segs[4], [])])

    asyncio.run(main())
    [tag] = sink.payloads
    assert isinstance(tag, Tag) and tag.source == BY and tag.evidence == "let's go with base62 ids"
    assert server.calls() == 2


def test_segments_arriving_during_a_call_are_coalesced_into_the_next(rubric, server):
    segs = conversation()
    candidate = [s for s in segs if s.speaker == "candidate"]  # 5 candidate turns
    hold = threading.Event()
    server.script(Reply(hold=hold, content=tags_json(("seg_c1", "requirement_gathering", "do links ever expire"))))
    server.default = Reply(
        content_fn=lambda body: tags_json(
            ("seg_c3", "steering_decision", "skip custom aliases for now"),
            ("seg_c5", "tradeoff_articulation", "reads dominate"),
        )
    )  # the second clause isn't a tradeoff; a lax model
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server), sink)
        worst = 0.0
        for i, seg in enumerate(segs):
            t0 = time.perf_counter()
            refiner.submit(seg, segs[max(0, i - 6) : i], [])
            worst = max(worst, time.perf_counter() - t0)
            if seg.id == "seg_c1":  # the first call is now in flight and held by the server
                await asyncio.to_thread(server.wait_for_calls, 1)
        assert refiner.in_flight == 1 and refiner.pending == 4
        hold.set()
        await refiner.aclose(5.0)
        return refiner, worst

    refiner, worst = asyncio.run(main())
    assert worst < 0.05
    assert server.calls() == 2
    first, second = (r.prompt for r in server.requests)
    assert ">> [seg_c1]" in first and ">>" not in first.split("[seg_c1]")[1]
    covered = [s.id for s in candidate if f">> [{s.id}]" in first or f">> [{s.id}]" in second]
    assert covered == [s.id for s in candidate]  # every candidate turn was judged once
    assert all(f">> [{s.id}]" in second for s in candidate[1:])
    assert "   [seg_i2] INTERVIEWER" in second  # interviewer turns travel as context
    assert refiner.stats.calls == 2 and refiner.stats.segments == 5 and refiner.stats.coalesced == 3
    assert [t.segment_ids[0] for t in sink.of(Tag)] == ["seg_c1", "seg_c3", "seg_c5"]


def test_counters_tokens_and_status_event(rubric, server):
    server.default = Reply(content=tags_json(), prompt_tokens=500, completion_tokens=20)
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server), sink)
        await _live(refiner, [(s, []) for s in conversation()[:5]])
        return refiner

    refiner = asyncio.run(main())
    calls = server.calls()
    assert 1 <= calls <= 3
    status = refiner.status()
    assert status.level == "info" and status.component == "llm" and status.tagger == BY
    assert status.details["calls"] == calls and status.details["segments"] == 3
    assert status.details["prompt_tokens"] == 500 * calls and status.details["completion_tokens"] == 20 * calls
    assert status.details["failures"] == 0 and status.details["cost_usd"] == 0.0
    assert f"{calls} calls" in status.message and f"{520 * calls} tokens" in status.message


def test_aclose_cancels_work_past_its_deadline(rubric, server):
    hold = threading.Event()
    server.default = Reply(hold=hold)
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server, timeout_s=10), sink)
        refiner.submit(conversation()[4], [], [])
        refiner.submit(conversation()[5], [], [])
        await asyncio.to_thread(server.wait_for_calls, 1)
        t0 = time.monotonic()
        await refiner.aclose(0.3)
        return refiner, time.monotonic() - t0

    refiner, took = asyncio.run(main())
    hold.set()
    assert took < 1.0
    assert refiner.in_flight == 0 and refiner.pending == 0 and refiner.stats.skipped == 1


def test_submit_from_another_thread_hops_onto_the_loop(rubric, server):
    server.default = Reply(content=tags_json(("seg_c3", "steering_decision", "let's go with base62 ids")))
    sink = Sink()

    async def main():
        refiner = LLMRefiner(fake_tagger(rubric, server), sink)
        refiner.submit(conversation()[0], [], [])  # binds the loop
        await asyncio.to_thread(refiner.submit, conversation()[4], [], [])  # e.g. the ASR worker thread
        await asyncio.sleep(0.05)
        await refiner.aclose(5.0)

    asyncio.run(main())
    assert [type(p).__name__ for p in sink.payloads] == ["Tag"]


def test_hybrid_batch_tagger(rubric, server):
    from copilot.tagging.rules import RulesTagger

    rules = RulesTagger(rubric)
    segs = conversation()
    hybrid = HybridTagger(rules, fake_tagger(rubric, server))
    assert hybrid.name == "rules+llm:openai/fake-model"

    seg = segs[4]  # "OK let's go with base62 ids from a counter and skip custom aliases for now."
    assert [t.tag for t in rules.tag(seg, segs[:4])] == ["steering_decision"]
    server.default = Reply(
        content=tags_json(
            ("seg_c3", "steering_decision", "let's go with base62 ids from a counter"),
            ("seg_c3", "tradeoff_articulation", "base62 ids"),
        )
    )
    tags = hybrid.tag(seg, segs[:4])
    by_tag = {t.tag: t for t in tags}
    assert sorted(by_tag) == ["steering_decision", "tradeoff_articulation"]
    # confirmed: the rules tag stays (its source and evidence), the LLM's confidence and rationale on it
    assert by_tag["steering_decision"].source == "rules"
    assert by_tag["steering_decision"].rationale == "steering_decision because."
    assert by_tag["tradeoff_articulation"].source == BY

    # The LLM finds nothing: a rules tag it disputes is left out of the batch verdict.
    server.default = Reply(content=tags_json())
    assert hybrid.tag(seg, segs[:4]) == []
    # On failure the rules tags stand.
    server.default = Reply(status=500)
    assert [t.tag for t in hybrid.tag(seg, segs[:4])] == [t.tag for t in rules.tag(seg, segs[:4])]
    assert hybrid.usage.failures == 1


def test_merge_on_a_settled_turn_updates_the_rules_chip_carried_to_it():
    """With turns, the LLM judges the turn id while the rules chip lists the turn's fragments and names
    the turn in `turn_id`: the verdict must update that chip, not add a second one (issue 12)."""
    from copilot.events import Tag
    from copilot.tagging.hybrid import merge

    rules = Tag(
        tag="tradeoff_articulation",
        segment_ids=["seg_a", "seg_b"],
        turn_id="turn_1",
        start_ms=0,
        end_ms=900,
        speaker="candidate",
        evidence="but we lose",
        confidence=0.6,
        source="rules",
    )
    llm = Tag(
        tag="tradeoff_articulation",
        segment_ids=["turn_1"],
        start_ms=0,
        end_ms=900,
        speaker="candidate",
        evidence="we lose ad hoc queries",
        confidence=0.9,
        source=BY,
    )
    out = merge([rules], [llm], ["turn_1"], BY)
    assert len(out) == 1 and isinstance(out[0], TagUpdate)
    assert (out[0].tag_id, out[0].status, out[0].confidence) == (rules.id, "confirmed", 0.9)
