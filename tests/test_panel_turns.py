"""The panel in a real browser (Playwright + Debian's chromium) as a turn settles: its fragments give
way to the settled text in place, and a tag the interviewer confirmed on a fragment stays confirmed
(and selected) when the tag moves onto the turn. The events go through the real log, store,
websocket and app; the store's fold is checked to agree with what the panel shows."""

from __future__ import annotations

from pathlib import Path

import pytest

from copilot.events import Event, Segment, SessionStarted, Tag, TagUpdate, Turn
from copilot.runtime import Runtime, RuntimeConfig
from copilot.server.runner import ServerThread
from copilot.session.fold import fold

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
]
TOKEN = "turns-token"

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (/usr/bin/chromium)")


def test_fragments_give_way_to_the_settled_turn_and_a_confirmed_tag_stays_confirmed(tmp_path):
    from playwright.sync_api import sync_playwright

    with Runtime(RuntimeConfig(data_dir=tmp_path / "data", token=TOKEN)) as rt, ServerThread(rt.app()) as srv:
        sid = rt.store.create_session(SessionStarted(title="turns", rubric="default"))
        record = lambda payload, type=None: rt.log.record(Event.of(sid, payload, type=type))  # noqa: E731
        f1 = Segment(speaker="candidate", channel=1, start_ms=0, end_ms=2020, text="A shared queue is simpler")
        f2 = Segment(speaker="candidate", channel=1, start_ms=2000, end_ms=4000, text="but campaigns delay resets.")
        record(f1)
        record(f2)
        chip_tag = Tag(
            tag="tradeoff_articulation",
            segment_ids=[f1.id, f2.id],
            start_ms=0,
            end_ms=4000,
            speaker="candidate",
            evidence="but campaigns delay resets.",
            confidence=0.8,
            source="rules",
        )
        record(chip_tag, "tag.proposed")

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 380, "height": 800}, bypass_csp=True)
            page.goto(f"{srv.base_url}/panel.html?session={sid}&token={TOKEN}&rater=ann")
            chip = page.locator(f'.chip[data-tag-id="{chip_tag.id}"]')
            chip.wait_for()
            chip.click()
            page.keyboard.press("y")  # confirm
            page.wait_for_selector(f'.chip[data-tag-id="{chip_tag.id}"][data-status="confirmed"]')
            offset = lambda: (
                page.locator(f"#seg-{f1.id}").bounding_box()["y"]  # noqa: E731
                - page.locator(".turn").first.bounding_box()["y"]
            )
            offset_before = offset()

            # The turn settles: one pass over its audio, and the tagger carries its chip onto it.
            turn = Turn(
                speaker="candidate",
                channel=1,
                start_ms=0,
                end_ms=4000,
                segment_ids=[f1.id, f2.id],
                text="A shared queue is simpler, but campaigns delay resets.",
                model="tiny.en",
            )
            record(turn)
            record(
                TagUpdate(
                    tag_id=chip_tag.id,
                    status="proposed",
                    by="rules",
                    turn_id=turn.id,
                    segment_ids=[f1.id, f2.id],
                    start_ms=0,
                    end_ms=4000,
                    evidence="A shared queue is simpler, but campaigns delay resets.",
                )
            )
            page.wait_for_function(
                f"document.getElementById('seg-{f1.id}').textContent.includes('simpler, but campaigns')"
            )
            assert page.locator(f"#seg-{f2.id}").inner_text().strip() == ""
            assert page.locator(".turn").count() == 1  # the same paragraph, not a new one
            assert abs(offset() - offset_before) < 1  # the text did not jump within its paragraph
            chips = page.locator(f'.chip[data-tag-id="{chip_tag.id}"]')
            assert chips.count() == 1
            assert chips.get_attribute("data-status") == "confirmed"  # the person's verdict outranks the move
            assert "is-selected" in (chips.get_attribute("class") or "")  # the selection survived
            assert page.locator(".chip").count() == 1  # one chip for the (turn, tag)
            browser.close()

        view = fold(rt.store.events(sid))
        state = view.tag(chip_tag.id)
        assert state is not None and state.status == "confirmed" and state.by == "human:ann"
        assert state.tag.turn_id == turn.id
        assert [u.text for u in view.units()] == [turn.text]
