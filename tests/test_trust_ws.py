"""Issue 11, findings 5 and 6: the websocket and REST refuse hostile parameters and messages cleanly.

The real app served by uvicorn on 127.0.0.1:0 (as in test_ws_protocol), a `websockets` client, and a
raw TCP socket where a client must misbehave in ways `websockets` will not (a reset mid-catch-up).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import struct
import time

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from copilot.events import Event, Segment, SessionStarted
from copilot.server.app import create_app
from copilot.server.runner import ServerThread
from copilot.session.bus import Bus
from copilot.session.log import SessionLog
from copilot.session.store import SessionStore

TOKEN = "trust-token-456"


@pytest.fixture
def served(tmp_path):
    store = SessionStore(tmp_path / "data")
    bus = Bus()
    log = SessionLog(store, bus)
    app = create_app(store, bus, TOKEN, session_log=log)
    with ServerThread(app) as srv:
        srv.store, srv.log = store, log
        yield srv
    store.close()


def _session(srv, n: int = 1) -> str:
    sid = srv.store.create_session(SessionStarted(title="trust", rubric="default"))
    for i in range(n):
        srv.log.record(
            Event.of(sid, Segment(speaker="candidate", start_ms=i * 1000, end_ms=i * 1000 + 800, text=f"line {i}"))
        )
    return sid


def _ws(srv, sid: str, query: str = "after=0", **kw):
    return connect(f"ws://127.0.0.1:{srv.port}/ws/sessions/{sid}?token={TOKEN}&{query}", open_timeout=5, **kw)


def _recv(ws, timeout: float = 5.0) -> dict:
    return json.loads(ws.recv(timeout=timeout))


def _stored_events(ws, n: int) -> list[dict]:
    """The first `n` stored events (catch-up), skipping anything unsequenced (control messages)."""
    got: list[dict] = []
    while len(got) < n:
        msg = _recv(ws)
        if msg.get("seq") is not None:
            got.append(msg)
    return got


def _error_then_still_open(ws) -> str:
    """The next message must be an error status; then a valid note must still go through."""
    while True:
        msg = _recv(ws)
        if msg.get("type") == "status" and msg["data"].get("level") == "error":
            break
    text = msg["data"]["message"]
    assert "\n" not in text and len(text) < 300
    return text


def _closed_code(ws) -> int:
    with pytest.raises(ConnectionClosed) as info:
        while True:
            ws.recv(timeout=5)
    return info.value.rcvd.code


@pytest.mark.parametrize(
    "query",
    [
        "rater=evil%0A",
        "rater=%20%20",
        "rater=dave%0A",
        "rater=%20dave",
        "rater=dave%20",
        "rater=a%00b",
        "rater=" + "x" * 41,
        "after=99999999999999999999",
        "after=9223372036854775808",
        "after=-1",
        "after=1.5",
        "after=abc",
        "after=%EF%BC%91",  # a fullwidth digit: int() would take it
    ],
)
def test_bad_parameters_are_closed_1008(served, query):
    sid = _session(served)
    with _ws(served, sid, query) as ws:
        assert _closed_code(ws) == 1008


@pytest.mark.parametrize(
    "query", ["rater=Alice%20Smith", "rater=jos%C3%A9", "rater=a.b@c-d_e", "after=9223372036854775807", "after="]
)
def test_good_parameters_are_accepted(served, query):
    sid = _session(served, 1)
    with _ws(served, sid, query) as ws:
        ws.send(json.dumps({"op": "note", "text": "ok", "at_ms": 5}))
        deadline = time.monotonic() + 5
        while served.store.last_seq(sid) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        ws.ping().wait(5)  # still open
    assert served.store.last_seq(sid) == 3
    name = query.split("=", 1)[1].replace("%20", " ").replace("%C3%A9", "é") if "rater" in query else "interviewer"
    assert served.store.events(sid)[-1].data["by"] == f"human:{name}"  # one actor spelling (copilot.actors)


def test_hostile_messages_get_an_error_status_and_the_socket_stays_open(served):
    sid = _session(served, 2)
    deep = '{"op": "note", "text": ' + "[" * 3000 + "]" * 3000 + "}"
    assert len(deep) < 8 * 1024
    cases = [
        (deep, "nested deeper than"),
        ("[" * 8000, "nested deeper than"),
        (json.dumps({"op": "add_tag", "tag": "requirement_gathering", "at_ms": "100"}), "at_ms"),
        (json.dumps({"op": "add_tag", "tag": "requirement_gathering", "at_ms": True}), "at_ms"),
        (json.dumps({"op": "add_tag", "tag": "requirement_gathering", "at_ms": 1.5}), "at_ms"),
        (json.dumps({"op": "note", "text": "far", "at_ms": 1e30}), "at_ms"),
        (json.dumps({"op": "note", "text": "far", "at_ms": 10**30}), "at_ms"),
        (json.dumps({"op": "note", "text": "far", "at_ms": -1}), "at_ms"),
        ('{"op": "note", "text": "nan", "at_ms": NaN}', "NaN"),
        ('{"op": "note", "text": "big", "at_ms": ' + "9" * 5000 + "}", "too many digits"),
        (json.dumps({"op": "confirm", "tag_id": True}), "tag_id"),
        (json.dumps({"op": "add_tag", "tag": "requirement_gathering", "segment_ids": ["s" * 65]}), "segment_ids"),
    ]
    with _ws(served, sid) as ws:
        _stored_events(ws, 3)
        for raw, needle in cases:
            ws.send(raw)
            assert needle in _error_then_still_open(ws), raw[:80]
        assert served.store.last_seq(sid) == 3  # nothing refused reached the log
        ws.send(json.dumps({"op": "note", "text": "still here", "at_ms": 1500}))
        while True:
            msg = _recv(ws)
            if msg["type"] == "note.added":
                break
        assert msg["data"]["at_ms"] == 1500 and msg["seq"] == 4


def _reset_mid_catch_up(port: int, sid: str, read_bytes: int) -> None:
    s = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(
        (
            f"GET /ws/sessions/{sid}?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            f"Sec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    got = 0
    while got < read_bytes:
        chunk = s.recv(65536)
        assert chunk
        got += len(chunk)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()  # a reset, as when a laptop lid closes mid-catch-up


def test_a_client_gone_during_catch_up_costs_no_log_flood(served, caplog):
    sid = served.store.create_session(SessionStarted(title="long"))
    served.store.append_many(
        [Event.of(sid, Segment(speaker="c", start_ms=i, end_ms=i + 1, text="x" * 2000)) for i in range(2500)]
    )
    caplog.set_level(logging.WARNING)
    _reset_mid_catch_up(served.port, sid, 200_000)
    time.sleep(2.0)  # the server would still be writing the other ~4.8 MB
    flood = [r for r in caplog.records if "socket.send() raised exception" in r.getMessage()]
    assert len(flood) == 0, f"{len(flood)} log lines"
    # The server is fine: another client catches up in full.
    with _ws(served, sid) as ws:
        assert [m["seq"] for m in _stored_events(ws, 2501)][-1] == 2501


def _get(srv, path: str, **headers: str) -> httpx.Response:
    return httpx.get(f"{srv.base_url}{path}", headers={"Authorization": f"Bearer {TOKEN}", **headers})


def test_rest_events_after_out_of_range_is_4xx(served):
    sid = _session(served, 2)
    assert [e["seq"] for e in _get(served, f"/api/sessions/{sid}/events?after=1").json()] == [2, 3]
    assert _get(served, f"/api/sessions/{sid}/events?after=9223372036854775807").json() == []
    for bad in ("9223372036854775808", "99999999999999999999", "-1", "x"):
        r = _get(served, f"/api/sessions/{sid}/events?after={bad}")
        assert 400 <= r.status_code < 500, (bad, r.status_code)


@pytest.mark.parametrize(
    "origin",
    [
        "http://127.0.0.1:{port} http://evil.example",  # two origins in one header
        "http://127.0.0.1:99999999",
        "http://[::1",
        "http://127.0.0.1:{port}\\@evil.example",
    ],
)
def test_malformed_origin_is_refused_not_a_500(served, origin):
    sid = _session(served, 1)
    origin = origin.format(port=served.port)
    with _ws(served, sid, origin=origin) as ws:
        assert _closed_code(ws) == 4403
    r = _get(served, f"/api/sessions/{sid}", Origin=origin)
    assert r.status_code == 403


def test_rest_checks_host_and_origin_like_the_websocket(served):
    sid = _session(served, 1)
    assert _get(served, f"/api/sessions/{sid}").status_code == 200
    assert _get(served, f"/api/sessions/{sid}", Origin=f"http://localhost:{served.port}").status_code == 200
    # DNS rebinding: evil.example resolving to 127.0.0.1 presents its own name as Host.
    assert _get(served, f"/api/sessions/{sid}", Host=f"evil.example:{served.port}").status_code == 403
    assert _get(served, "/panel.html", Host=f"evil.example:{served.port}").status_code == 403
    assert _get(served, f"/api/sessions/{sid}", Host="127.0.0.1:1:2").status_code in (400, 403)
    assert _get(served, f"/api/sessions/{sid}", Origin="http://evil.example").status_code == 403
    assert _get(served, "/panel.html").status_code == 200


def test_pages_work_under_their_content_security_policy(served):
    """The headers are real and the pages still run under them: a real chromium loads the panel and
    the review page, receives the transcript over the websocket, and reports no CSP violation."""
    from pathlib import Path

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("needs Debian's chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    sid = _session(served, 2)
    page_r = httpx.get(f"{served.base_url}/panel.html")
    csp = page_r.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and f"ws://127.0.0.1:{served.port}" in csp
    assert "unsafe-inline" not in csp and page_r.headers["x-frame-options"] == "DENY"
    api_r = _get(served, f"/api/sessions/{sid}")
    assert api_r.headers["cache-control"] == "no-store" and api_r.headers["x-content-type-options"] == "nosniff"
    violations: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            page = browser.new_page()
            page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
            # Locators, not wait_for_function: Playwright's polling evals strings, which this CSP forbids.
            for name in ("panel", "review"):
                page.goto(f"{served.base_url}/{name}.html?session={sid}&token={TOKEN}")
                page.get_by_text("line 1").first.wait_for(timeout=15000)
            page.goto(f"{served.base_url}/calibrate.html?session={sid}&token={TOKEN}")
            page.locator("body[data-ready=true]").wait_for(timeout=15000)
            page.goto(f"{served.base_url}/?token={TOKEN}")
            page.locator(f"tr[data-session='{sid}']").wait_for(timeout=15000)
        finally:
            browser.close()
    assert violations == []


def test_the_token_leaves_the_address_bar_and_survives_a_reload(served):
    from pathlib import Path

    chromium = "/usr/bin/chromium"
    if not Path(chromium).exists():
        pytest.skip("needs Debian's chromium (/usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    sid = _session(served, 2)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        try:
            page = browser.new_page()
            for name in ("panel", "review"):
                page.goto(f"{served.base_url}/{name}.html?session={sid}&token={TOKEN}")
                page.get_by_text("line 1").first.wait_for(timeout=15000)
                assert TOKEN not in page.url and f"session={sid}" in page.url
                assert page.evaluate("sessionStorage.getItem('copilot.token')") == TOKEN
                page.reload()
                page.get_by_text("line 1").first.wait_for(timeout=15000)
                assert TOKEN not in page.url
        finally:
            browser.close()
