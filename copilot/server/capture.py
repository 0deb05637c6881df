"""Browser capture: the start page's consent call and the binary audio websocket.

A `CaptureHub` ties one live session to its `BrowserSource`; `copilot live --browser` registers
it in `app.state.capture_hubs`. The audio socket gets the same token, Origin and Host checks as
the event socket, and also needs the session's consent stored. Only then does the server send
`{"type": "ready", ...}`; the page sends no audio before that message, so a wrong token or a
foreign page never gets a byte of audio out of the browser.

Frames (binary): see `copilot.audio.browser_source.HEADER`. Control messages (text, JSON):
`hello` (the page's audio rate, for the record), `track` (a share ended, came back, or has no
audio), `pace` (the browser's audio clock fell behind real time, or caught up), `clock` (the
browser's wall time of session audio 0, for latency), `stop`.
Close codes: 4401 token, 4403 origin/host, 4404 no capture for this session, 4409 another page
is already capturing, 4412 consent not confirmed yet.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends, HTTPException, Request, WebSocket, WebSocketDisconnect
from pydantic import BaseModel, Field
from starlette.websockets import WebSocketState

from copilot.audio.base import SAMPLE_RATE
from copilot.audio.browser_source import BrowserSource, FrameError, parse_frame
from copilot.events import Status
from copilot.server.auth import origin_ok, require_token, token_ok
from copilot.session.consent import find_consent, record_consent
from copilot.session.log import SessionLog

log = logging.getLogger("copilot.server.capture")
router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_BUSY = 4409
CLOSE_NO_CONSENT = 4412
REPORT_EVERY_S = 2.0  # drops and gaps are stored as warnings at most this often
MAX_CONTROL = 4096

SHARE_ENDED = {
    0: "The microphone stopped (unplugged or blocked): pick a microphone again on the capture page.",
    1: "The call's share stopped: press 'Share the call again' on the capture page and pick the call's tab.",
}


class CaptureHub:
    """One session's browser capture: the source, its consent, and its stored warnings."""

    def __init__(
        self,
        session_id: str,
        source: BrowserSource,
        session_log: SessionLog,
        notice: str,
        on_stop: Callable[[], None] | None = None,
    ) -> None:
        self.session_id = session_id
        self.source = source
        self.log = session_log
        self.notice = notice
        self.on_stop = on_stop
        self.consent = find_consent(session_log, session_id)
        self.connected = False
        self.connections = 0
        self._reported: dict[str, int] = {"dropped_samples": 0, "gap_samples": 0}
        self._last_report = 0.0

    def confirm(self, by: str) -> None:
        ev = record_consent(self.log, self.session_id, by=by, notice=self.notice, method="browser")
        self.consent = ev.payload()  # type: ignore[assignment]

    def status(self, level: Literal["info", "warning", "error"], message: str, **details: Any) -> None:
        if self.log.store.session_info(self.session_id)["status"] == "ended":
            return  # the page disconnecting after the session ended is not news
        self.log.record_payload(
            self.session_id, Status(level=level, component="capture", message=message, details=details)
        )

    def report(self, force: bool = False) -> None:
        """Store drops and gaps since the last report (never once per frame)."""
        now = time.monotonic()
        if not force and now - self._last_report < REPORT_EVERY_S:
            return
        self._last_report = now
        st = self.source.stats()
        dropped = st["dropped_samples"] - self._reported["dropped_samples"]
        gaps = st["gap_samples"] - self._reported["gap_samples"]
        if dropped > 0:
            total_s = st["dropped_samples"] / SAMPLE_RATE
            self.status(
                "warning",
                f"browser audio dropped: the server fell behind by "
                f"{dropped / SAMPLE_RATE:.1f} s ({total_s:.1f} s so far)",
                kind="dropped",
                dropped_ms=st["dropped_samples"] * 1000 // SAMPLE_RATE,
            )
        if gaps > 0:
            self.status(
                "warning",
                f"a gap of {gaps / SAMPLE_RATE:.1f} s in the browser audio was recorded as silence",
                kind="gap",
                gap_ms=gaps * 1000 // SAMPLE_RATE,
                total_gap_ms=st["gap_samples"] * 1000 // SAMPLE_RATE,
            )
        self._reported = {"dropped_samples": st["dropped_samples"], "gap_samples": st["gap_samples"]}


def _hub(app: Any, session_id: str) -> CaptureHub | None:
    return getattr(app.state, "capture_hubs", {}).get(session_id)


class ConsentBody(BaseModel):
    by: str = Field(default="interviewer", max_length=80)
    agreed: bool


api = APIRouter(prefix="/api", dependencies=[Depends(require_token)])


def _info(hub: CaptureHub) -> dict[str, Any]:
    c = hub.consent
    return {
        "session_id": hub.session_id,
        "speakers": hub.source.speakers,
        "sample_rate": SAMPLE_RATE,
        "chunk_ms": hub.source.chunk_ms,
        "notice": hub.notice,
        "consent": None if c is None else c.model_dump(mode="json"),
        "connected": hub.connected,
    }


@api.get("/sessions/{session_id}/capture")
async def get_capture(session_id: str, request: Request) -> dict[str, Any]:
    hub = _hub(request.app, session_id)
    if hub is None:
        raise HTTPException(404, f"session {session_id} is not capturing from a browser")
    return _info(hub)


@api.post("/sessions/{session_id}/consent")
async def post_consent(session_id: str, body: ConsentBody, request: Request) -> dict[str, Any]:
    hub = _hub(request.app, session_id)
    if hub is None:
        raise HTTPException(404, f"session {session_id} is not capturing from a browser")
    if not body.agreed:
        raise HTTPException(400, "consent must be confirmed (agreed: true) before capture")
    if hub.consent is None:
        await asyncio.to_thread(hub.confirm, body.by)
    return _info(hub)


router.include_router(api)


@router.websocket("/ws/capture/{session_id}")
async def capture_socket(websocket: WebSocket, session_id: str) -> None:
    app = websocket.app
    if not token_ok(websocket, app.state.token):
        await _refuse(websocket, CLOSE_UNAUTHORIZED, "missing or wrong access token")
        return
    if not origin_ok(websocket, app.state.extra_hosts):
        await _refuse(websocket, CLOSE_FORBIDDEN, "foreign origin")
        return
    hub = _hub(app, session_id)
    if hub is None:
        await _refuse(websocket, CLOSE_NOT_FOUND, "this session is not capturing from a browser")
        return
    if hub.consent is None:
        await _refuse(websocket, CLOSE_NO_CONSENT, "confirm the candidate's consent first")
        return
    if hub.connected:
        await _refuse(websocket, CLOSE_BUSY, "another page is already capturing this session")
        return
    hub.connected = True
    hub.connections += 1
    try:
        await websocket.accept()
        await websocket.send_text(
            json.dumps(
                {
                    "type": "ready",
                    "sample_rate": SAMPLE_RATE,
                    "speakers": hub.source.speakers,
                    "next_index": hub.source.next_index(),
                    "connection": hub.connections,
                }
            )
        )
        if hub.connections > 1:
            hub.status("info", "capture page reconnected", kind="reconnected", connection=hub.connections)
        await _receive(websocket, hub)
    except WebSocketDisconnect:
        pass
    finally:
        hub.connected = False
        hub.report(force=True)
        st = hub.source.stats()
        hub.status(
            "info", "capture page disconnected", kind="disconnected", **{k: v for k, v in st.items() if k != "channels"}
        )
        if websocket.client_state == WebSocketState.CONNECTED:
            try:
                await websocket.close()
            except Exception:
                pass


async def _receive(websocket: WebSocket, hub: CaptureHub) -> None:
    channels = len(hub.source.speakers)
    bad = 0
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        data = message.get("bytes")
        if data is not None:
            try:
                hub.source.push(parse_frame(data, channels))
            except FrameError as exc:
                bad += 1
                if bad <= 3:  # tell the page, but a broken client must not flood the log
                    await websocket.send_text(json.dumps({"type": "error", "message": str(exc)}))
            hub.report()
            continue
        text = message.get("text") or ""
        if len(text) > MAX_CONTROL:
            await websocket.send_text(json.dumps({"type": "error", "message": "control message too long"}))
            continue
        try:
            msg = json.loads(text)
            kind = msg.get("type")
        except (ValueError, AttributeError):
            await websocket.send_text(json.dumps({"type": "error", "message": "control message is not JSON"}))
            continue
        if kind == "hello":
            rate = msg.get("audio_rate")
            hub.status(
                "info",
                "browser capture started",
                kind="hello",
                audio_rate=rate if isinstance(rate, (int, float)) else None,
                tracks={str(k): str(v)[:120] for k, v in (msg.get("tracks") or {}).items()}
                if isinstance(msg.get("tracks"), dict)
                else {},
            )
        elif kind == "track":
            ch = msg.get("channel")
            if ch not in range(channels):
                continue
            if msg.get("state") == "ended":
                hub.status("warning", SHARE_ENDED.get(ch, "a capture track ended"), kind="share_ended", channel=ch)
            elif msg.get("state") == "live":
                hub.status(
                    "info", f"{hub.source.speakers[ch]}'s audio is captured again", kind="share_live", channel=ch
                )
            elif msg.get("state") == "no_audio":
                hub.status(
                    "warning",
                    "the shared source has no audio track: share the call's browser tab with "
                    "'Share tab audio' on (or, on Windows/ChromeOS, the entire screen with "
                    "system audio)",
                    kind="no_audio",
                    channel=ch,
                )
        elif kind == "pace":
            ratio = msg.get("ratio")
            ratio = float(ratio) if isinstance(ratio, (int, float)) else None
            if msg.get("state") == "slow":
                hub.status(
                    "warning",
                    "the browser is capturing slower than real time (its audio thread is short of "
                    "CPU), so some audio is lost: close other heavy tabs or programs",
                    kind="pace_slow",
                    ratio=ratio,
                )
            elif msg.get("state") == "ok":
                hub.status("info", "the browser captures in real time again", kind="pace_ok", ratio=ratio)
        elif kind == "clock":
            t0 = msg.get("audio_t0")
            if isinstance(t0, (int, float)) and t0 > 0:
                hub.status("info", "browser audio clock", kind="clock", audio_t0=float(t0))
        elif kind == "stop":
            hub.report(force=True)
            if hub.on_stop is not None:
                hub.on_stop()
        else:
            await websocket.send_text(json.dumps({"type": "error", "message": f"unknown message type {kind!r}"}))


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.accept()
    await websocket.close(code=code, reason=reason)
