"""The hiring team's everyday entry point, end to end: `copilot serve` (a real subprocess on
127.0.0.1, temp data dir), its sessions page in Debian's Chromium (Playwright), "New interview
(browser capture)", the capture page (consent, then jfk on Chromium's fake microphone), Stop; the
words in the store, consent stored, the session listed afterwards with its review page, a second
start refused with 409 while one runs. And with no speech model installed: a one-line error on the
page, nothing in the store. The capture page itself is tested in depth by test_capture_browser.py."""

from __future__ import annotations

import re
import subprocess

import pytest

from copilot.bench.asr import wer
from tests.conftest import requires_chromium, requires_shared, shared_audio
from tests.serve_proc import NOTICE, Serve, events_of
from tests.test_capture_browser import HOOK, JFK, b64, launch, sox, text_of, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.audio, pytest.mark.slow, requires_chromium]


@requires_shared
def test_new_interview_from_the_sessions_page_captures_jfk_and_lists_it(tmp_path):
    from playwright.sync_api import sync_playwright

    # 15 s of quiet after the speech: Chromium loops the fake mic's file, and the test stops once the
    # last words are transcribed, well before the second pass would start.
    mic = sox(shared_audio("jfk.flac"), tmp_path / "jfk48.wav", "pad", "0.5", "15")
    silent = tmp_path / "silent.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silent), "trim", "0", "20"], check=True)
    serve = Serve(tmp_path / "data")
    try:
        with sync_playwright() as p:
            browser = launch(p, mic)
            page = browser.new_page(bypass_csp=True)
            page.add_init_script(HOOK)  # the call tab, for the capture page this page goes to
            page.goto(serve.values["COPILOT_INDEX"])
            page.wait_for_selector("#new-capture:not([hidden])")
            assert page.is_visible("#empty")  # nothing stored yet
            page.fill("#new-title", "Design round with Sam")
            page.click("#new-browser")

            # The start page of the new session: consent first.
            page.wait_for_url(re.compile(r"/capture\.html\?session=ses_"), timeout=60_000)
            sid = re.search(r"session=([^&]+)", page.url).group(1)  # type: ignore[union-attr]
            page.wait_for_function("document.getElementById('notice').textContent.includes('laptop')")
            assert page.is_disabled("#start")
            page.evaluate("(b) => window.copilotCaptureTestHooks.calls.push(b)", b64(silent))
            page.fill("#by", "Dana")
            page.check("#consent")
            page.click("#start")
            page.wait_for_selector("#live-step:not([hidden])")

            # While it runs: a second start is refused, and the list shows it live with its links.
            code, body = serve.api("POST", "/api/live/browser")
            assert code == 409 and sid in body["detail"], (code, body)
            listing = browser.new_page(bypass_csp=True)
            listing.goto(serve.values["COPILOT_INDEX"])
            row = f"#sessions tr[data-session='{sid}']"
            listing.wait_for_selector(f"{row}[data-capturing='1']")
            assert "live" in listing.inner_text(f"{row} .pill")
            assert "Design round with Sam" in listing.inner_text(row)
            assert listing.get_attribute(f"{row} a.capture-link", "href").startswith(f"capture.html?session={sid}")
            assert listing.is_disabled("#new-browser")

            # Stop after jfk's last words, not its first "country" (a loaded machine transcribes late).
            wait_for(
                lambda: "for your country" in text_of(events_of(serve, sid), "interviewer").lower(), 120, "jfk's words"
            )
            page.click("#stop")
            wait_for(lambda: events_of(serve, sid)[-1].type == "session.ended", 60, "the session to end")
            assert serve.proc.poll() is None  # serve goes on

            # The list follows it to "ended" (it refreshes), with its review page.
            listing.wait_for_selector(f"{row}:not([data-capturing]) >> text=ended", timeout=20_000)
            assert not listing.is_disabled("#new-browser")
            listing.click(f"{row} >> text=Review")
            listing.wait_for_url(re.compile(r"/review\.html\?session="))
            listing.wait_for_function("document.body.innerText.toLowerCase().includes('country')", timeout=20_000)
            browser.close()
        code, body = serve.api("GET", "/api/live")
        assert code == 200 and body["browser"] is None
    finally:
        rc = serve.close()
    assert rc == 0, serve.log_path.read_text()[-2000:]
    events = events_of(serve, sid)
    types = [e.type for e in events]
    assert types[0] == "session.started" and types[-1] == "session.ended"
    assert events[0].data["title"] == "Design round with Sam" and events[-1].data["reason"] == "stopped"
    consent = [e for e in events if e.type == "consent.confirmed"]
    assert len(consent) == 1 and consent[0].data == {"by": "Dana", "notice": NOTICE, "method": "browser"}
    assert types.index("consent.confirmed") < types.index("segment.final")
    said = text_of(events, "interviewer")
    score = wer(JFK, said)
    print(f"serve capture jfk WER {score:.3f}: {said!r}")
    for word in ("fellow", "americans", "country"):
        assert word in said.lower(), said
    assert score <= 0.2, (score, said)
    store = serve.store()
    try:
        assert [s["id"] for s in store.list_sessions()] == [sid]  # the 409 created nothing
    finally:
        store.close()


def test_no_speech_model_shows_one_line_on_the_page_and_stores_nothing(tmp_path):
    from playwright.sync_api import sync_playwright

    empty = tmp_path / "no-models"
    empty.mkdir()
    serve = Serve(tmp_path / "data", env={"COPILOT_MODELS_DIR": str(empty)})
    try:
        with sync_playwright() as p:
            browser = launch(p, None)
            page = browser.new_page(bypass_csp=True)
            page.goto(serve.values["COPILOT_INDEX"])
            page.wait_for_selector("#new-capture:not([hidden])")
            page.click("#new-browser")
            page.wait_for_selector("#new-error:not([hidden])", timeout=60_000)
            text = page.inner_text("#new-error")
            assert "tiny.en" in text and "copilot models install" in text and "\n" not in text.strip()
            assert "/index.html" in page.url  # stayed on the list
            assert page.is_visible("#empty") and not page.is_disabled("#new-browser")
            browser.close()
        code, body = serve.api("POST", "/api/live/browser")
        assert code == 503 and "not installed" in body["detail"]
    finally:
        assert serve.close() == 0
    store = serve.store()
    try:
        assert store.list_sessions() == []
    finally:
        store.close()
