"""Review and calibration pages in a real browser (Playwright for Python driving Debian's chromium).

A session is built in a real SQLite store through the store API (tests/review_fixtures.py), two
raters' tag files are imported with `copilot tags import` (subprocess), and the real app (the
composition root's, `copilot.runtime.Runtime.app`) serves it from a uvicorn thread on 127.0.0.1.

Hand-worked agreement for alice vs bob on the 12 segments (units):
  requirement gathering: alice {2,4}, bob {2,4,6}: p_o = 11/12; P(a)=2/12, P(b)=3/12
      p_e = (2/12)(3/12) + (10/12)(9/12) = 6/144 + 90/144 = 2/3; kappa = (11/12 - 8/12)/(4/12) = 0.75
  tradeoff articulation: alice {6,7,12}, bob {6,7}: same margins mirrored -> kappa 0.75
  steering decision: alice {9,10}, bob {9}: p_o = 11/12; p_e = (2/12)(1/12) + (10/12)(11/12) = 112/144 = 7/9
      kappa = (33/36 - 28/36)/(8/36) = 5/8 = 0.625
"""

from __future__ import annotations

import json
import subprocess

import pytest

from copilot.runtime import Runtime, RuntimeConfig
from copilot.session.store import SessionStore
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, requires_chromium, run_copilot
from tests.review_fixtures import ALICE, BOB, build_session, rater_file

TOKEN = "review-test-token"

pytestmark = [requires_chromium, pytest.mark.browser]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    from copilot.server.runner import ServerThread

    tmp = tmp_path_factory.mktemp("review")
    data = tmp / "data"
    with SessionStore(data) as store:
        sid = build_session(store)
        audio = store.audio_path(sid)
    # the kept recording: a real FLAC as long as the session (60 s), made with sox
    audio.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["sox", "-n", "-r", "16000", "-c", "1", str(audio), "synth", "60", "sine", "220", "vol", "0.1"], check=True
    )
    for name, marks in (("alice", ALICE), ("bob", BOB)):
        f = tmp / f"{name}.json"
        f.write_text(json.dumps(rater_file(sid, name, marks)))
        r = run_copilot("tags", "import", sid, str(f), data=data)
        assert r.returncode == 0, r.stderr
    with Runtime(RuntimeConfig(data_dir=data, token=TOKEN)) as rt, ServerThread(rt.app()) as server:
        yield server.base_url, sid


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


def open_page(browser, url: str):
    """A page at `url` once the page says it is ready, and the list its script errors go to."""
    page = browser.new_page(viewport={"width": 1360, "height": 1000}, bypass_csp=True)  # see test_trust_ws.py
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("body[data-ready=true]")
    return page, errors


def visible_segments(page) -> list[str]:
    return page.eval_on_selector_all(".rv-seg:not([hidden])", "els => els.map(e => e.dataset.segmentId)")


def test_routes_need_the_token(served):
    import httpx

    base, sid = served
    for path in ("review", "calibration", "audio"):
        assert httpx.get(f"{base}/api/sessions/{sid}/{path}").status_code == 401
        assert httpx.get(f"{base}/api/sessions/{sid}/{path}?token=wrong").status_code == 401
    r = httpx.get(
        f"{base}/api/sessions/{sid}/audio", headers={"Authorization": f"Bearer {TOKEN}", "Range": "bytes=0-99"}
    )
    assert r.status_code == 206 and r.headers["content-range"].startswith("bytes 0-99/")
    assert r.content[:4] == b"fLaC"
    assert httpx.get(f"{base}/api/sessions/ses_nope/audio?token={TOKEN}").status_code == 404


def test_review_page(served, browser, artifacts_dir):
    base, sid = served
    page, errors = open_page(browser, f"{base}/review.html?session={sid}&token={TOKEN}")
    assert page.inner_text("#title") == "URL shortener, system design"
    assert len(visible_segments(page)) == 12
    assert page.inner_text("#counter") == "12 turns"

    # per-tag summary: counts, and the strongest quote first (the interviewer-confirmed one)
    card = page.locator('.rv-card[data-tag="tradeoff_articulation"]')
    assert card.locator(".rv-count").inner_text() == "7"  # rules 2, alice 3, bob 2
    assert "gives us strong consistency" in card.locator(".rv-quote").first.inner_text()
    # notes are listed and shown inline in the transcript
    assert "Strong clarifying questions" in page.inner_text("#notes")
    assert page.locator(".rv-note-row").count() == 2

    # search filters segments (and highlights the hits)
    page.fill("#search", "key value store")
    assert visible_segments(page) == ["seg_07", "seg_09"]
    assert page.locator(".rv-seg:not([hidden]) mark.rv-hit").count() == 2
    assert page.inner_text("#counter") == "2 of 12 turns"
    page.fill("#search", "")
    assert len(visible_segments(page)) == 12

    # filter by source: hide bob's chips, then every human's except alice
    bob_chips = page.locator('.chip[data-source="human:bob"]')
    assert bob_chips.count() == 6 and bob_chips.first.is_visible()
    page.locator('[data-filter-source="human:bob"] input').uncheck()
    assert bob_chips.count() == 6 and not any(c.is_visible() for c in bob_chips.all())
    assert page.locator('.chip[data-source="human:alice"]').first.is_visible()
    # filter by tag + only tagged moments: steering decisions only
    for tag in ("requirement_gathering", "tradeoff_articulation"):
        page.locator(f'[data-filter-tag="{tag}"] input').uncheck()
    page.check("#only-tagged")
    # steering: r08 (seg 9), r09 edited by the LLM (seg 10), the hotkey tag (seg 7), alice {9, 10}
    assert visible_segments(page) == ["seg_07", "seg_09", "seg_10"]
    page.uncheck("#only-tagged")
    for tag in ("requirement_gathering", "tradeoff_articulation"):
        page.locator(f'[data-filter-tag="{tag}"] input').check()
    page.locator('[data-filter-source="human:bob"] input').check()

    # rejected tags are shown struck through, and can be hidden
    rejected = page.locator('.chip[data-status="rejected"]')
    assert rejected.count() == 1 and rejected.first.is_visible()
    page.uncheck("#show-rejected")
    assert not rejected.first.is_visible()
    page.check("#show-rejected")

    # jump to moment: a summary quote scrolls to and highlights its segment
    page.locator('.rv-card[data-tag="steering_decision"] .rv-quote[data-segment-id="seg_10"]').click()
    target = page.locator(".rv-seg.is-target")
    assert target.count() == 1 and target.get_attribute("data-segment-id") == "seg_10"
    box, vh = target.bounding_box(), page.viewport_size["height"]
    assert 0 <= box["y"] and box["y"] + box["height"] <= vh

    # play from a segment: the kept audio seeks to the segment's start
    assert page.locator("#player").is_visible()
    page.locator('[data-segment-id="seg_06"] .rv-play').click()
    page.wait_for_function("document.getElementById('audio').currentTime >= 25")
    assert page.evaluate("document.getElementById('audio').currentTime") < 27
    page.evaluate("document.getElementById('audio').pause()")

    # exports are one click away, with the token
    href = page.get_attribute("#export-md", "href")
    assert href == f"/api/sessions/{sid}/export?format=md&token={TOKEN}"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(artifacts_dir / "review.png"), full_page=False)
    assert errors == []
    page.close()


def test_calibrate_page(served, browser, artifacts_dir):
    base, sid = served
    page, errors = open_page(browser, f"{base}/calibrate.html?session={sid}&token={TOKEN}&raters=alice,bob")

    # the matrix: kappa per tag for the hand-worked pair, as text (and a colour band as text too)
    cell = page.locator('td[data-pair="human:alice|human:bob"][data-tag="requirement_gathering"]')
    assert cell.get_attribute("data-kappa") == "0.75"
    assert "0.75" in cell.inner_text() and "substantial" in cell.inner_text().lower()
    sd = page.locator('td[data-pair="human:alice|human:bob"][data-tag="steering_decision"]')
    assert "0.63" in sd.inner_text() and "substantial" in sd.inner_text().lower()
    assert page.locator('td[data-alpha-tag="requirement_gathering"]').count() == 1

    # side-by-side timelines: one column per rater over the transcript
    assert page.locator("th[data-rater]").all_inner_texts() == ["alice", "bob"]
    assert page.locator('tr[data-segment-id="seg_06"] td[data-rater="human:bob"] .chip').count() == 2
    assert page.locator('tr[data-segment-id="seg_06"] td[data-rater="human:alice"] .chip').count() == 1

    # disagreements: 3 (RG on 6, TA on 12, SD on 10); clicking one scrolls to its text
    items = page.locator(".cb-disagreement")
    assert items.count() == 3
    items.nth(2).click()
    row = page.locator("tr.is-target")
    assert row.get_attribute("data-segment-id") == "seg_12"
    box, vh = row.bounding_box(), page.viewport_size["height"]
    assert 0 <= box["y"] and box["y"] + box["height"] <= vh
    assert "A cache in front of the store" in row.inner_text()

    # all raters (copilot included) by unticking the filter
    page.goto(f"{base}/calibrate.html?session={sid}&token={TOKEN}")
    page.wait_for_selector("body[data-ready=true]")
    assert set(page.locator("th[data-rater]").all_inner_texts()) == {"rules", "LLM", "interviewer", "alice", "bob"}
    page.goto(f"{base}/calibrate.html?session={sid}&token={TOKEN}&raters=alice,bob")
    page.wait_for_selector("body[data-ready=true]")
    page.evaluate("window.scrollTo(0, 0)")
    page.locator(".cb-disagreement").first.click()
    page.screenshot(path=str(artifacts_dir / "calibrate.png"), full_page=True)
    assert errors == []
    page.close()


def test_index_lists_sessions_with_links(served, browser):
    base, sid = served
    page = browser.new_page(bypass_csp=True)  # Playwright's polling evals strings; CSP: test_trust_ws.py
    page.goto(f"{base}/?token={TOKEN}")
    row = page.locator(f"tr[data-session='{sid}']")
    row.wait_for(timeout=10_000)
    assert "Review" in row.inner_text()
    row.get_by_role("link", name="Review").click()
    page.wait_for_url(f"**/review.html?session={sid}*")
    # Without the token the index says why instead of showing an empty list (a fresh tab: this one
    # keeps the token in its sessionStorage once a page has taken it out of the address bar).
    page.close()
    page = browser.new_page(bypass_csp=True)
    page.goto(f"{base}/")
    page.locator("#toast").wait_for(state="visible", timeout=10_000)
    assert "Access denied" in page.locator("#toast").inner_text()
    page.close()
