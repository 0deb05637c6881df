"""Browser capture without a browser: the BrowserSource's clock, gaps, drops and queue; the level
watch's silent-channel verdict; the capture websocket's gatekeeping (token, origin, consent)
through the real FastAPI app, real SQLite store and real frames; the consent prompt."""

from __future__ import annotations

import io
import json
import threading

import numpy as np
import pytest
from fastapi.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.audio.browser_source import BrowserSource, Frame, FrameError, encode_frame, parse_frame
from copilot.audio.levels import LevelWatch
from copilot.cli.consent_prompt import confirm_consent
from copilot.errors import CopilotError
from copilot.events import SessionStarted
from copilot.server.app import create_app
from copilot.server.capture import CaptureHub
from copilot.session.bus import Bus
from copilot.session.log import SessionLog
from copilot.session.store import SessionStore

STEP = SAMPLE_RATE // 10  # 100 ms


def tone(n: int, amp: float = 0.3, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).uniform(-amp, amp, n) * 32767).astype(np.int16)


def drain(src: BrowserSource) -> list[AudioChunk]:
    src.close()
    return list(src.chunks())


def test_chunks_are_time_ordered_across_channels_and_keep_samples():
    src = BrowserSource()
    a, b = tone(STEP * 3, seed=1), tone(STEP * 3, seed=2)
    for i in range(3):
        src.push(Frame(0, i * STEP, a[i * STEP : (i + 1) * STEP]))
        src.push(Frame(1, i * STEP, b[i * STEP : (i + 1) * STEP]))
    out = drain(src)
    assert [(c.channel, c.start_ms) for c in out] == [(0, 0), (1, 0), (0, 100), (1, 100), (0, 200), (1, 200)]
    got0 = np.concatenate([c.samples for c in out if c.channel == 0])
    assert np.allclose(got0, a.astype(np.float32) / 32768)
    assert [c.speaker for c in out[:2]] == ["interviewer", "candidate"]


def test_gap_becomes_silence_and_is_counted_lead_in_is_not_a_gap():
    src = BrowserSource(speakers=["me"])  # one channel keeps the arithmetic plain
    src.push(Frame(0, STEP * 2, tone(STEP)))  # the first block arrives late: lead-in
    src.push(Frame(0, STEP * 5, tone(STEP)))  # a 200 ms hole after the first block
    out = drain(src)
    x = np.concatenate([c.samples for c in out])
    assert len(x) == STEP * 6
    assert not x[: STEP * 2].any() and x[STEP * 2 : STEP * 3].any()
    assert not x[STEP * 3 : STEP * 5].any() and x[STEP * 5 :].any()
    st = src.stats()
    assert st["lead_in_samples"] == STEP * 2 and st["gaps"] == 1 and st["gap_samples"] == STEP * 2


def test_resent_audio_after_a_reconnect_is_trimmed_not_doubled():
    src = BrowserSource(speakers=["me"])
    x = tone(STEP * 3)
    src.push(Frame(0, 0, x[: STEP * 2]))
    src.push(Frame(0, STEP, x[STEP:]))  # overlaps the last 100 ms already placed
    out = np.concatenate([c.samples for c in drain(src)])
    assert len(out) == STEP * 3 and np.allclose(out, x.astype(np.float32) / 32768)
    assert src.stats()["overlap_samples"] == STEP and src.next_index() == [STEP * 3]


def test_full_queue_drops_and_counts_never_blocks():
    src = BrowserSource(speakers=["me"], queue_seconds=0.4)  # 4 frames
    results = [src.push(Frame(0, i * STEP, tone(STEP))) for i in range(10)]
    assert results.count(True) == 4 and results.count(False) == 6
    st = src.stats()
    assert st["dropped_frames"] == 6 and st["dropped_samples"] == 6 * STEP


def test_a_channel_that_sends_nothing_does_not_hold_the_other_hostage():
    src = BrowserSource(max_skew_ms=500)
    seen: list[AudioChunk] = []

    def consume() -> None:
        seen.extend(src.chunks())

    t = threading.Thread(target=consume)
    t.start()
    for i in range(20):  # 2 s of microphone, no call shared
        src.push(Frame(0, i * STEP, tone(STEP)))
    src.close()
    t.join(5)
    mic = [c for c in seen if c.channel == 0]
    call = [c for c in seen if c.channel == 1]
    assert len(mic) == 20 and len(call) == 20 and not any(c.samples.any() for c in call)
    assert src.stats()["stall_fill_samples"] > 0


def test_frame_wire_format_and_bad_frames():
    data = encode_frame(1, 123456789, np.array([1, -2, 3], dtype=np.int16))
    f = parse_frame(data, channels=2)
    assert (f.channel, f.index, f.pcm.tolist()) == (1, 123456789, [1, -2, 3])
    with pytest.raises(FrameError, match="channel 1"):
        parse_frame(data, channels=1)
    with pytest.raises(FrameError, match="header"):
        parse_frame(b"\x01\x00", channels=2)
    with pytest.raises(FrameError, match="version"):
        parse_frame(b"\x02" + data[1:], channels=2)
    with pytest.raises(FrameError, match="whole 16-bit"):
        parse_frame(data + b"\x00", channels=2)


def _chunks(channel: int, seconds: float, amp: float, start_ms: int = 0) -> list[AudioChunk]:
    out = []
    for i in range(int(seconds * 10)):
        x = np.random.default_rng(i).uniform(-amp, amp, STEP).astype(np.float32) if amp else np.zeros(STEP, np.float32)
        out.append(AudioChunk(x, channel, ["interviewer", "candidate"][channel], start_ms + i * 100))
    return out


def test_silent_channel_warned_after_ten_seconds_while_the_other_speaks_and_cleared_after():
    watch = LevelWatch(["interviewer", "candidate"])
    for a, b in zip(_chunks(0, 9.5, 0.2), _chunks(1, 9.5, 0.0)):
        watch.observe(a)
        watch.observe(b)
    assert watch.check() == []  # not yet 10 s
    for a, b in zip(_chunks(0, 1.0, 0.2, 9500), _chunks(1, 1.0, 0.0, 9500)):
        watch.observe(a)
        watch.observe(b)
    (change,) = watch.check()
    assert change.channel == 1 and change.silent and change.digital
    assert "tab" in change.message() and "muted" in change.message()
    assert watch.check() == []  # once per episode
    meter = watch.meter()
    assert meter[1] == -100.0 and -25 < meter[0] < -5
    for c in _chunks(1, 0.5, 0.2, 10500):
        watch.observe(c)
    (back,) = watch.check()
    assert back.channel == 1 and not back.silent


def test_both_silent_is_not_a_silent_channel_warning():
    watch = LevelWatch(["interviewer", "candidate"])
    for a, b in zip(_chunks(0, 12, 0.0), _chunks(1, 12, 0.0)):
        watch.observe(a)
        watch.observe(b)
    assert watch.check() == []


@pytest.fixture()
def capture_app(tmp_path):
    store = SessionStore(tmp_path / "db")
    bus = Bus()
    slog = SessionLog(store, bus)
    sid = store.create_session(SessionStarted(title="t", source="browser"))
    source = BrowserSource()
    stopped = threading.Event()
    app = create_app(store, bus, "secret", session_log=slog)
    app.state.capture_hubs = {sid: CaptureHub(sid, source, slog, "We record this call.", on_stop=stopped.set)}
    yield TestClient(app, base_url="http://127.0.0.1"), sid, source, store, stopped
    store.close()


def _refused(client: TestClient, url: str, headers: dict | None = None) -> int:
    with client.websocket_connect(url, headers=headers or {}) as ws:
        with pytest.raises(WebSocketDisconnect) as exc:
            ws.receive_text()  # the first thing is the close: never a `ready`
    return exc.value.code


def test_capture_socket_gatekeeping_and_frames(capture_app):
    client, sid, source, store, stopped = capture_app
    assert _refused(client, f"/ws/capture/{sid}?token=wrong") == 4401
    assert _refused(client, f"/ws/capture/{sid}?token=secret", {"origin": "http://evil.example"}) == 4403
    assert _refused(client, f"/ws/capture/{sid}?token=secret") == 4412  # no consent yet
    assert _refused(client, "/ws/capture/ses_nope?token=secret") == 4404
    assert client.post(f"/api/sessions/{sid}/consent", json={"by": "Ana", "agreed": True}).status_code == 401
    auth = {"Authorization": "Bearer secret"}
    refused = client.post(f"/api/sessions/{sid}/consent", json={"by": "Ana", "agreed": False}, headers=auth)
    assert refused.status_code == 400
    info = client.post(f"/api/sessions/{sid}/consent", json={"by": "Ana", "agreed": True}, headers=auth).json()
    assert info["consent"]["by"] == "Ana" and info["notice"] == "We record this call."
    consent = [e for e in store.events(sid) if e.type == "consent.confirmed"]
    assert len(consent) == 1 and consent[0].data == {"by": "Ana", "notice": "We record this call.", "method": "browser"}
    assert source.stats()["frames"] == 0  # nothing was accepted by the refused sockets

    headers = {"origin": "http://127.0.0.1", "host": "127.0.0.1"}
    with client.websocket_connect(f"/ws/capture/{sid}?token=secret", headers=headers) as ws:
        ready = json.loads(ws.receive_text())
        assert ready["type"] == "ready" and ready["next_index"] == [0, 0] and ready["sample_rate"] == 16000
        assert _refused(client, f"/ws/capture/{sid}?token=secret") == 4409  # one capturing page at a time
        ws.send_bytes(encode_frame(0, 0, tone(STEP)))
        ws.send_bytes(encode_frame(1, 0, tone(STEP)))
        ws.send_bytes(b"\x09junk")
        assert "header" in json.loads(ws.receive_text())["message"]
        ws.send_text(json.dumps({"type": "track", "channel": 1, "state": "ended"}))
        ws.send_text(json.dumps({"type": "stop"}))
        ws.send_text("not json")
        assert "not JSON" in json.loads(ws.receive_text())["message"]
    assert stopped.is_set()
    st = source.stats()
    assert st["frames"] == 2 and st["channels"][1]["samples"] == STEP
    msgs = [e.data for e in store.events(sid) if e.type == "status"]
    assert any(m["details"].get("kind") == "share_ended" and m["level"] == "warning" for m in msgs)
    assert any(m["details"].get("kind") == "disconnected" and m["details"]["frames"] == 2 for m in msgs)


def test_consent_prompt_flag_terminal_and_refusal():
    assert confirm_consent("n", confirmed=True)[0] == "flag"
    assert confirm_consent("n", confirmed=False, ask=lambda q: "y")[0] == "terminal"
    with pytest.raises(CopilotError, match="not confirmed"):
        confirm_consent("n", confirmed=False, ask=lambda q: "no")
    with pytest.raises(CopilotError, match="--consent-confirmed"):
        confirm_consent("n", confirmed=False, stdin=io.StringIO(""))


def test_live_browser_refuses_device_flags_in_one_line(capsys, tmp_path):
    from copilot.cli import main

    code = main(["live", "--browser", "--device", "mic", "--no-browser", "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code != 0 and err.count("\n") == 1 and "--browser captures in the browser" in err
