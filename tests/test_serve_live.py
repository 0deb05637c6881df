"""Starting a browser capture from `copilot serve` (`POST /api/live/browser`), through the real app,
store and pipeline (tiny.en), with FastAPI's TestClient: who is refused, one capture at a time, a
missing speech model leaves nothing behind, and a capture page gone past the resume window ends
the session while the server goes on. The browser end to end is tests/test_serve_capture_browser.py."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from fastapi.testclient import TestClient

from copilot.asr.options import AsrOptions
from copilot.audio.browser_source import encode_frame
from copilot.cli.serve_live import ServeLive
from copilot.runtime import Runtime, RuntimeConfig
from tests.serve_proc import Serve

TOKEN = "serve-live-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _serve(tmp_path, model=None, **options) -> tuple[Runtime, TestClient, ServeLive]:
    rt = Runtime(RuntimeConfig(data_dir=tmp_path / "data", token=TOKEN), asr_model=model)
    app = rt.app()
    live = ServeLive(rt, app, "We transcribe this call on my laptop.", **options)
    return rt, TestClient(app, base_url="http://127.0.0.1"), live


def _wait(fn, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.audio
def test_start_is_token_checked_post_only_and_one_at_a_time(tmp_path, model):
    rt, client, live = _serve(tmp_path, model)
    with client:
        assert client.post("/api/live/browser").status_code == 401
        assert client.post("/api/live/browser", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert client.post(f"/api/live/browser?token={TOKEN}x").status_code == 401
        foreign = client.post("/api/live/browser", headers={**AUTH, "Origin": "http://evil.example"})
        assert foreign.status_code == 403  # a foreign page cannot start a recording, token or not
        get = client.get("/api/live/browser", headers=AUTH)
        assert get.status_code == 405 and get.headers["allow"] == "POST"
        assert rt.store.list_sessions() == []  # no refusal created anything
        assert client.get("/api/live", headers=AUTH).json() == {"can_start": True, "browser": None}

        first = client.post("/api/live/browser", json={"title": "Design round"}, headers=AUTH)
        assert first.status_code == 200, first.text
        info = first.json()
        sid = info["session_id"]
        assert info["capture_url"] == f"capture.html?session={sid}&token={TOKEN}"
        assert info["panel_url"] == f"panel.html?session={sid}&token={TOKEN}"
        assert info["consent"] is None and info["connected"] is False
        s = rt.store.session_info(sid)
        assert s["status"] == "live" and s["title"] == "Design round" and s["mode"] == "live"
        assert client.get("/api/live", headers=AUTH).json()["browser"]["session_id"] == sid
        # The capture page's own API knows the session; consent is not given yet.
        capture = client.get(f"/api/sessions/{sid}/capture", headers=AUTH).json()
        assert capture["speakers"] == ["interviewer", "candidate"] and "laptop" in capture["notice"]

        second = client.post("/api/live/browser", headers=AUTH)
        assert second.status_code == 409
        detail = second.json()["detail"]
        assert sid in detail and "one capture at a time" in detail and "\n" not in detail
        assert len(rt.store.list_sessions()) == 1

        stopped = client.post("/api/live/stop", headers=AUTH)
        assert stopped.status_code == 200 and stopped.json()["session_id"] == sid
        assert rt.store.session_info(sid)["status"] == "ended"
        ended = [e for e in rt.store.events(sid) if e.type == "session.ended"]
        assert ended and ended[0].data["reason"] == "stopped"
        assert client.get("/api/live", headers=AUTH).json()["browser"] is None
        assert client.post("/api/live/stop", headers=AUTH).status_code == 404
        assert client.get(f"/api/sessions/{sid}/capture", headers=AUTH).status_code == 404  # its hub is gone

        # The server goes on: the next capture starts (the model is already loaded).
        again = client.post("/api/live/browser", headers=AUTH)
        assert again.status_code == 200 and again.json()["session_id"] != sid
        assert client.post("/api/live/stop", headers=AUTH).status_code == 200
    rt.close()


def test_no_speech_model_is_one_line_and_leaves_no_session(tmp_path, monkeypatch):
    empty = tmp_path / "no-models"
    empty.mkdir()
    monkeypatch.setenv("COPILOT_MODELS_DIR", str(empty))
    rt = Runtime(RuntimeConfig(data_dir=tmp_path / "data", token=TOKEN, asr=AsrOptions("tiny.en", "cpu")))
    live = ServeLive(rt, app := rt.app(), "notice")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        res = client.post("/api/live/browser", headers=AUTH)
        assert res.status_code == 503
        detail = res.json()["detail"]
        assert "tiny.en" in detail and "copilot models install" in detail and "\n" not in detail
        assert rt.store.list_sessions() == []
        assert client.get("/api/live", headers=AUTH).json()["browser"] is None
        assert live.current() is None
        assert client.post("/api/live/browser", headers=AUTH).status_code == 503  # not stuck "starting"
    rt.close()


@pytest.mark.audio
def test_a_start_that_fails_after_the_session_opened_leaves_nothing(tmp_path, model, monkeypatch):
    """The kept-audio folder cannot be made (a full disk): one line, no session left "live"."""
    rt, client, live = _serve(tmp_path, model)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    with client:
        monkeypatch.setattr(rt, "keeper", full_disk)
        res = client.post("/api/live/browser", headers=AUTH)
        assert res.status_code == 503
        detail = res.json()["detail"]
        assert "No space left on device" in detail and "\n" not in detail
        assert rt.store.list_sessions() == [] and live.current() is None
        monkeypatch.undo()
        again = client.post("/api/live/browser", headers=AUTH)  # not stuck "starting"
        assert again.status_code == 200, again.text
        assert [s["id"] for s in rt.store.list_sessions()] == [again.json()["session_id"]]
        assert client.post("/api/live/stop", headers=AUTH).status_code == 200
    rt.close()


@pytest.mark.audio
def test_page_gone_past_the_resume_window_ends_the_session(tmp_path, model):
    rt, client, live = _serve(tmp_path, model, resume_window_s=1.0)
    with client:
        sid = client.post("/api/live/browser", headers=AUTH).json()["session_id"]
        url = f"/ws/capture/{sid}?token={TOKEN}"
        consent = client.post(f"/api/sessions/{sid}/consent", json={"by": "Ana", "agreed": True}, headers=AUTH)
        assert consent.status_code == 200
        with client.websocket_connect(url) as ws:
            assert json.loads(ws.receive_text())["type"] == "ready"
            for i in range(5):  # half a second of quiet audio on both channels
                pcm = np.zeros(1600, np.int16)
                ws.send_bytes(encode_frame(0, i * 1600, pcm))
                ws.send_bytes(encode_frame(1, i * 1600, pcm))
            time.sleep(1.5)  # connected: the window does not run
            assert rt.store.session_info(sid)["status"] == "live"
        # The socket is gone and does not come back within the window: the session ends.
        _wait(lambda: rt.store.session_info(sid)["status"] == "ended", 20, "the session to end")
        events = rt.store.events(sid)
        by_server = [
            e.data for e in events if e.type == "status" and e.data["details"].get("kind") == "ended_by_server"
        ]
        assert by_server and "gone for more than 1 s" in by_server[0]["message"]
        assert events[-1].type == "session.ended"
        assert live.current() is None
        assert client.post("/api/live/browser", headers=AUTH).status_code == 200  # free for the next one
        assert client.post("/api/live/stop", headers=AUTH).status_code == 200
    rt.close()


@pytest.mark.audio
def test_a_start_page_that_never_captures_frees_the_server(tmp_path, model):
    rt, client, live = _serve(tmp_path, model, connect_timeout_s=1.0)
    with client:
        sid = client.post("/api/live/browser", headers=AUTH).json()["session_id"]
        _wait(lambda: rt.store.session_info(sid)["status"] == "ended", 20, "the session to end")
        msgs = [e.data["message"] for e in rt.store.events(sid) if e.type == "status"]
        assert any("no capture page started capturing within 1 s" in m for m in msgs), msgs
        assert client.get("/api/live", headers=AUTH).json()["browser"] is None
        assert [s["id"] for s in client.get("/api/sessions", headers=AUTH).json()] == [sid]  # listed, ended
    rt.close()


@pytest.mark.audio
@pytest.mark.slow
def test_ctrl_c_on_serve_ends_a_running_capture_cleanly(tmp_path):
    """A real `copilot serve`: a capture started over HTTP, then Ctrl-C: the session is ended (not
    left live) with the reason stored, and serve exits 0."""
    serve = Serve(tmp_path / "data")
    try:
        code, body = serve.api("POST", "/api/live/browser")
        assert code == 200, body
        sid = body["session_id"]
        assert serve.api("GET", "/api/live")[1]["browser"]["session_id"] == sid
        assert serve.api("POST", "/api/live/browser", token="wrong")[0] == 401
    finally:
        rc = serve.close()
    assert rc == 0, serve.log_path.read_text()[-2000:]
    store = serve.store()
    try:
        assert store.session_info(sid)["status"] == "ended"
        events = store.events(sid)
    finally:
        store.close()
    msgs = [e.data["message"] for e in events if e.type == "status"]
    assert any("server is shutting down" in m for m in msgs), msgs
    assert events[-1].type == "session.ended" and events[-1].data["reason"] == "stopped"
