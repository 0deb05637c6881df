"""The live side panel end to end, in a real browser, against the real product.

`python -m copilot replay <dialogue> --no-browser --port 0 --data-dir <tmp>` runs the real pipeline
(streaming ASR, rules tagger, SQLite log, FastAPI + websocket server); Playwright drives Debian's
chromium (never a downloaded browser) at the panel's width beside a video call (380 px). The store
is the truth every assertion is checked against.

Audio: the bundled demo interview (copilot/audio/demo.py), in which the candidate says things worth tagging.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from copilot.audio.demo import DEMO_AUDIO
from tests.conftest import CHROMIUM, CHROMIUM_ARGS, REPO, requires_chromium

URL_RE = re.compile(r"(http://127\.0\.0\.1:\d+/panel\.html\?\S+)")

pytestmark = [requires_chromium, pytest.mark.browser, pytest.mark.audio, pytest.mark.slow]


def _audio_seconds(path: Path) -> float:
    from copilot.audio.decode import decode_audio

    return decode_audio(path).duration_ms / 1000


class Product:
    """`copilot replay` as a subprocess; the panel URL is read from what it prints."""

    def __init__(self, audio: Path, data_dir: Path, speed: float) -> None:
        env = dict(os.environ)  # conftest pointed HOME/XDG at temp dirs
        env["PYTHONUNBUFFERED"] = "1"
        self.log_path = data_dir.parent / "replay.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "copilot",
                "replay",
                str(audio),
                "--no-browser",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                "--speed",
                str(speed),
                "--rubric",
                "default",
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
        )
        self.data_dir = data_dir
        self.url: str | None = None
        self.lines: list[str] = []
        self._found = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            m = URL_RE.search(line)
            if m and self.url is None:
                self.url = m.group(1)
                self._found.set()
        self._found.set()

    def wait_url(self, timeout: float = 45) -> str:
        self._found.wait(timeout)
        if self.url is None:
            raise AssertionError(
                f"copilot replay printed no panel URL (rc={self.proc.poll()}); "
                f"stdout: {''.join(self.lines)[-2000:]}\nstderr: {self.stderr()}"
            )
        return self.url

    def stderr(self) -> str:
        self.log.flush()
        return self.log_path.read_text()[-3000:]

    def stop(self) -> None:
        # Ctrl-C semantics: the first signal finishes the transcript, a second drops what is queued.
        for wait in (3, 5):
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(wait)
                except subprocess.TimeoutExpired:
                    pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.log.close()


def _get(base: str, path: str, token: str):
    req = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, timeout=10) as res:
        return json.loads(res.read())


def _store_events(data_dir: Path, session_id: str) -> list:
    from copilot.session.store import SessionStore, default_store_path

    store = SessionStore(default_store_path(data_dir))
    try:
        return store.events(session_id)
    finally:
        store.close()


@pytest.fixture(scope="module")
def product(tmp_path_factory: pytest.TempPathFactory):
    tmp_path = tmp_path_factory.mktemp("panel")
    audio = Path(DEMO_AUDIO)  # the bundled demo interview (committed)
    # About 25 s of wall time whatever the recording's length, so the replay is still running
    # while the test acts in the panel.
    speed = max(1.0, round(_audio_seconds(audio) / 25.0, 2))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    running = Product(audio, data_dir, speed)
    try:
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(browser):
    # The panel's width beside a video call.
    # bypass_csp: Playwright's polling wait_for_function evals strings, which the pages' CSP forbids
    # (the CSP itself is tested in test_trust_ws.py).
    context = browser.new_context(viewport={"width": 380, "height": 820}, device_scale_factor=1, bypass_csp=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.errors = errors  # type: ignore[attr-defined]
    try:
        yield page
    finally:
        context.close()


def test_panel_live_session(product: Product, browser_page, artifacts_dir: Path) -> None:
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page = browser_page
    url = product.wait_url()
    q = parse_qs(urlparse(url).query)
    session_id, token = q["session"][0], q["token"][0]
    base = f"{urlparse(url).scheme}://{urlparse(url).netloc}"
    info = _get(base, f"/api/sessions/{session_id}", token)
    hotkeys = {str(t["hotkey"]): t["id"] for t in info["rubric"]["tags"] if t.get("hotkey")}
    assert "1" in hotkeys, f"rubric has no hotkey 1: {info['rubric']}"

    page.goto(url)

    # The transcript appears, with speakers told apart.
    page.wait_for_selector(".turn .seg:not(:empty)", timeout=40_000)
    page.wait_for_function("window.__copilot.connection === 'live'", timeout=10_000)
    # The utterance in progress shows as a greyed partial line until its final segment replaces it.
    page.wait_for_function(
        """() => {
        const p = document.querySelector("li.partial .partial-text"), f = document.querySelector(".turn--candidate .seg");
        return p && f && p.textContent && getComputedStyle(p).color !== getComputedStyle(f).color
            && getComputedStyle(p).fontStyle === "italic";
    }""",
        timeout=20_000,
    )

    # A dropped websocket reconnects and catches up: an event persisted while the panel is away
    # (a note from another client) shows up once, and nothing is shown twice.
    page.evaluate("window.__copilot.dropConnection(1500)")
    page.wait_for_function("window.__copilot.connection !== 'live'", timeout=5_000)
    _send_note_from_another_client(base, session_id, token, "note while the panel was away")
    page.wait_for_function("window.__copilot.connection === 'live'", timeout=15_000)
    page.wait_for_selector(".note-text:text('note while the panel was away')", timeout=10_000)

    # The rules tagger's tags appear as chips on their segments, with the evidence highlighted, and the
    # newest one is in the card at the top.
    page.wait_for_selector(".chip:not(.chip--human)", timeout=40_000)
    assert page.locator(".transcript mark.evidence").count() >= 1
    assert page.locator("#latest-heading").text_content() == "Latest tag"
    assert page.locator("#latest .latest-label").inner_text() != ""
    # Speakers are told apart (the candidate's words are what gets tagged).
    page.wait_for_selector(".turn--interviewer .seg")
    page.wait_for_selector(".turn--candidate .seg")

    # A hotkey tags the current moment; it shows once the server echoes it, and it is in the store.
    page.locator("#title").click()  # focus on the page, not in the notes box
    page.keyboard.press("1")
    page.wait_for_selector(f".chip--human[data-tag='{hotkeys['1']}']", timeout=10_000)
    stored = _get(base, f"/api/sessions/{session_id}", token)["tags"]
    human = [t for t in stored if t["source"] == "human:interviewer"]
    assert [t["tag"] for t in human] == [hotkeys["1"]], stored

    # `y` confirms the selected AI tag and the store records tag.updated by the interviewer. (Clicking
    # the chip pins the selection, so that a tag arriving meanwhile cannot take it.)
    page.locator(".chip:not(.chip--human)").first.click()
    selected = page.evaluate("window.__copilot.selectedId")
    assert selected and page.locator(f".chip.is-selected[data-tag-id='{selected}']").count() == 1
    page.keyboard.press("y")
    page.wait_for_selector(f".chip--confirmed[data-tag-id='{selected}']", timeout=10_000)
    events = _get(base, f"/api/sessions/{session_id}/events", token)
    updates = [e["data"] for e in events if e["type"] == "tag.updated"]
    assert {"tag_id": selected, "status": "confirmed", "by": "human:interviewer"}.items() <= updates[-1].items(), (
        updates
    )

    # `e` then a rubric hotkey relabels the selected tag: an `edit` in the log, by the interviewer.
    page.locator(f".chip[data-tag-id='{selected}']").first.click()
    current = page.locator(f".chip[data-tag-id='{selected}']").first.get_attribute("data-tag")
    key, new_tag = next((k, t) for k, t in sorted(hotkeys.items()) if t != current)
    page.keyboard.press("e")
    page.wait_for_selector("#toast:has-text('Relabel')", timeout=5_000)
    page.keyboard.press(key)
    page.wait_for_function(
        f"document.querySelector(\".chip[data-tag-id='{selected}']\")?.dataset.tag === '{new_tag}'", timeout=10_000
    )
    events = _get(base, f"/api/sessions/{session_id}/events", token)
    updates = [e["data"] for e in events if e["type"] == "tag.updated"]
    assert {"tag_id": selected, "status": "edited", "by": "human:interviewer", "tag": new_tag}.items() <= updates[
        -1
    ].items(), updates

    # The picture of the panel mid-interview, following the live end of the transcript (after a few
    # more tags when they come within 15 s: the picture is for people, nothing is asserted on it).
    page.keyboard.press("End")
    try:
        page.wait_for_function("document.querySelectorAll('.chip:not(.chip--human)').length >= 3", timeout=15_000)
    except PlaywrightTimeout:
        pass
    # A message the server refuses comes back as an error, shown briefly; the connection stays up.
    page.evaluate("window.__copilot.send({op: 'confirm', tag_id: 'tag_does_not_exist'})")
    page.wait_for_selector("#toast[data-level='error']:has-text('tag_does_not_exist')", timeout=5_000)
    page.wait_for_selector("#toast", state="hidden", timeout=10_000)
    assert page.evaluate("window.__copilot.connection") == "live"

    # Scrolling up stops the auto-scroll and offers a way back to the live end (in a short window,
    # so that the transcript surely overflows).
    page.set_viewport_size({"width": 380, "height": 520})
    wrap = page.locator(".transcript-wrap")
    assert wrap.evaluate("e => e.scrollHeight > e.clientHeight + 60")
    wrap.evaluate("e => { e.scrollTop = 0; }")
    page.wait_for_selector("#jump-live:visible", timeout=5_000)
    page.locator("#jump-live").click()
    page.wait_for_selector("#jump-live", state="hidden", timeout=5_000)
    assert wrap.evaluate("e => e.scrollHeight - e.scrollTop - e.clientHeight < 40")
    page.set_viewport_size({"width": 380, "height": 820})

    page.wait_for_timeout(500)
    page.screenshot(path=str(artifacts_dir / "panel.png"))

    # The panel holds exactly the log: it catches up with what the store has now (the replay may still
    # be running), and its seqs are the store's, contiguous, none twice.
    stored_seqs = [e.seq for e in _store_events(product.data_dir, session_id)]
    page.wait_for_function(f"window.__copilot.lastSeq >= {stored_seqs[-1]}", timeout=10_000)
    panel = page.evaluate("""({seqs: __copilot.seqs, dup: __copilot.duplicates, gaps: __copilot.gaps,
                                opens: __copilot.opens, partials: __copilot.partials})""")
    assert stored_seqs == list(range(1, len(stored_seqs) + 1))
    assert panel["seqs"][: len(stored_seqs)] == stored_seqs, (panel, stored_seqs)
    assert panel["seqs"] == list(range(1, len(panel["seqs"]) + 1)), panel
    assert panel["opens"] >= 2  # it did reconnect...
    assert panel["dup"] == 0 and panel["gaps"] == 0  # ...resuming after its last seq, not from the start
    assert panel["partials"] > 0
    assert page.locator(".note-text:text('note while the panel was away')").count() == 1
    assert page.errors == [], page.errors  # type: ignore[attr-defined]


def _send_note_from_another_client(base: str, session_id: str, token: str, text: str) -> None:
    from websockets.sync.client import connect

    ws_url = base.replace("http://", "ws://") + f"/ws/sessions/{session_id}?token={token}&rater=colleague"
    with connect(ws_url, open_timeout=10) as ws:
        ws.send(json.dumps({"op": "note", "text": text}))
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            event = json.loads(ws.recv(timeout=10))
            if event["type"] == "note.added" and event["data"]["text"] == text:
                return
    raise AssertionError("the note was not echoed")


def test_panel_says_why_a_bad_token_is_refused(product: Product, browser_page) -> None:
    page = browser_page
    url = re.sub(r"token=[^&]+", "token=not-the-token", product.wait_url())
    page.goto(url)
    page.wait_for_selector("#conn[data-state='failed']", timeout=10_000)
    assert "access denied" in page.locator("#toast").inner_text()
    assert page.locator(".turn").count() == 0
    assert page.errors == [], page.errors  # type: ignore[attr-defined]
