"""Review and calibration on a session the real pipeline produced.

`copilot replay --demo --keep-audio` runs the bundled recording through ASR and the rules tagger
into a real store; then, as a user would: `sessions export` (vtt/md), `tags export --rater rules`,
`tags import` under two people's names (one an exact copy of the rules tagger, one with an extra
mark), `calibrate --json`, and `copilot serve` showing the review page with the kept audio.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from copilot.review.exports import parse_vtt
from copilot.session.store import SessionStore
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, requires_chromium
from tests.conftest import run_copilot as copilot

pytestmark = [pytest.mark.audio, pytest.mark.slow]


@pytest.fixture(scope="module")
def replayed(tmp_path_factory):
    data = tmp_path_factory.mktemp("replay") / "data"
    r = copilot(
        "replay",
        "--demo",
        "--no-pace",
        "--no-browser",
        "--exit-when-done",
        "--keep-audio",
        "--data-dir",
        str(data),
        timeout=600,
    )
    if r.returncode != 0 and "model" in r.stderr.lower() and "not installed" in r.stderr.lower():
        pytest.skip(f"ASR model missing: {r.stderr.strip()}")
    assert r.returncode == 0, r.stderr[-2000:]
    sid = re.search(r"COPILOT_DONE=(\S+)", r.stdout).group(1)
    return data, sid


def test_exports_of_a_replayed_session(replayed):
    data, sid = replayed
    from copilot.session.fold import fold

    with SessionStore(data) as store:
        segs = store.segments(sid)
        units = fold(store.events(sid)).units()
    assert len(segs) >= 10
    # Subtitles are the settled turns, not the fragments: every fragment was settled by a turn.
    assert units and all(u.kind == "turn" for u in units) and len(units) < len(segs)
    assert sorted(s for u in units for s in u.segment_ids) == sorted(s["id"] for s in segs)
    r = copilot("sessions", "export", sid, "--format", "vtt", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    cues = parse_vtt(r.stdout)
    assert [(c.start_ms, c.end_ms, c.speaker, c.text) for c in cues] == [
        (u.start_ms, u.end_ms, u.speaker, " ".join(u.text.split())) for u in units
    ]
    r = copilot("sessions", "export", sid, "--format", "md", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("# Interview debrief: Demo")
    assert "## Summary by tag" in r.stdout and "## Transcript" in r.stdout


def test_calibrate_people_against_the_rules_tagger(replayed, tmp_path):
    data, sid = replayed
    r = copilot("tags", "export", sid, "--rater", "rules", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    rules = json.loads(r.stdout)
    assert rules["tags"], "the rules tagger found nothing in the demo interview"
    # alice: an exact copy of the rules tagger's marks (fresh ids, as if she tagged on her own)
    alice = {**rules, "rater": "alice", "tags": [{**t, "id": None} for t in rules["tags"]]}
    (tmp_path / "alice.json").write_text(json.dumps(alice))
    assert copilot("tags", "import", sid, str(tmp_path / "alice.json"), "--data-dir", str(data)).returncode == 0
    # bob: alice's marks plus one more requirement-gathering mark on a segment nobody marked
    first = rules["tags"][0]
    from copilot.session.fold import fold

    with SessionStore(data) as store:
        units = fold(store.events(sid)).units()  # calibration's units: the settled turns
    marked = {s for t in rules["tags"] for s in t["segment_ids"]}
    extra = next(u for u in units if not marked.intersection(u.segment_ids))
    bob = {
        **alice,
        "rater": "bob",
        "tags": alice["tags"]
        + [
            {
                "id": None,
                "tag": first["tag"],
                "start_ms": extra.start_ms,
                "end_ms": extra.end_ms,
                "segment_ids": list(extra.segment_ids),
                "speaker": extra.speaker,
                "evidence": extra.text,
                "note": "",
            }
        ],
    }
    (tmp_path / "bob.json").write_text(json.dumps(bob))
    assert copilot("tags", "import", sid, str(tmp_path / "bob.json"), "--data-dir", str(data)).returncode == 0

    r = copilot("calibrate", sid, "--raters", "rules,alice,bob", "--json", "--data-dir", str(data))
    assert r.returncode == 0, r.stderr
    cal = json.loads(r.stdout)
    n = cal["units"]
    assert n == len(units)
    tag = next(t for t in cal["tags"] if t["tag"] == first["tag"])
    pairs = {(p["a"], p["b"]): p for p in tag["pairs"]}
    # rules ~ alice: identical marks -> kappa 1 (k >= 1 marks out of n, so it is defined)
    assert pairs[("copilot:rules", "human:alice")]["kappa"]["value"] == pytest.approx(1.0)
    # rules ~ bob: rules marks k units, bob the same k plus one. By hand, with n units:
    #   p_o = (n-1)/n; p_e = (k/n)((k+1)/n) + ((n-k)/n)((n-k-1)/n); kappa = (p_o - p_e)/(1 - p_e)
    k = tag["marked"]["copilot:rules"]
    assert tag["marked"]["human:bob"] == k + 1
    p_o = (n - 1) / n
    p_e = (k / n) * ((k + 1) / n) + ((n - k) / n) * ((n - k - 1) / n)
    assert pairs[("copilot:rules", "human:bob")]["kappa"]["value"] == pytest.approx((p_o - p_e) / (1 - p_e))
    # exactly one disagreement: bob's extra mark, with its transcript text
    assert [(d["segment_id"], d["marked_by"], d["not_marked_by"]) for d in cal["disagreements"]] == [
        (extra.id, ["human:bob"], ["copilot:rules", "human:alice"])
    ]
    assert cal["disagreements"][0]["text"] == extra.text


@requires_chromium
@pytest.mark.browser
def test_review_page_of_a_replayed_session_via_copilot_serve(replayed):
    from playwright.sync_api import sync_playwright

    data, sid = replayed
    env = {**os.environ, "COPILOT_TOKEN": "replay-token"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "copilot", "serve", "--port", "0", "--no-browser", "--data-dir", str(data)],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = None
        for line in proc.stdout:
            m = re.match(r"COPILOT_PORT=(\d+)", line)
            if m:
                port = int(m.group(1))
                break
        assert port, "copilot serve printed no port"
        from copilot.session.fold import fold

        with SessionStore(data) as store:
            n = len(fold(store.events(sid)).units())  # the review's rows are turns
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900}, bypass_csp=True)  # test_trust_ws.py
            page.goto(f"http://127.0.0.1:{port}/review.html?session={sid}&token=replay-token")
            page.wait_for_selector("body[data-ready=true]")
            assert page.locator(".rv-seg").count() == n
            assert page.locator(".rv-seg .chip").count() >= 1
            assert page.locator("#player").is_visible()
            # the kept audio is served and seekable: play from the 5th segment
            start = int(page.locator(".rv-seg").nth(4).get_attribute("data-start-ms"))
            page.locator(".rv-seg").nth(4).locator(".rv-play").click()
            page.wait_for_function(f"document.getElementById('audio').currentTime >= {start / 1000 - 0.05}")
            page.evaluate("document.getElementById('audio').pause()")
            # a wrong token gets the page's one-line explanation, not data
            page.goto(f"http://127.0.0.1:{port}/review.html?session={sid}&token=wrong")
            page.wait_for_selector("#toast:not([hidden])")
            assert "401" in page.inner_text("#toast")
            assert page.locator(".rv-seg").count() == 0
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
