"""The session websocket: catch-up from the store, then live events, plus the interviewer's actions.

No gap, no duplicate: the handler subscribes to the bus *before* it reads the store, so an event
persisted during the catch-up read is either in the read or in the subscription queue (or both).
It then sends events strictly in seq order, skipping any seq it already sent; if a live event
arrives with a seq beyond the next expected one (events recorded from another thread can reach
the bus out of order), it fills the hole from the store first.

Close codes (sent before any data, so a browser can tell why): 4401 bad or missing token,
4403 foreign Origin, 4404 unknown session, 4408 the client was too slow and was dropped
(reconnect with `after=`).
"""

from __future__ import annotations

import asyncio
import logging

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.websockets import WebSocketState

from copilot.events import CaughtUp, Event, Status
from copilot.server.auth import origin_ok, token_ok
from copilot.server.messages import BadMessage, op_to_event, parse_after, parse_message, parse_rater
from copilot.session.bus import DROPPED, Subscription
from copilot.session.log import SessionLog

log = logging.getLogger("copilot.server.ws")
router = APIRouter()

CLOSE_UNAUTHORIZED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_TOO_SLOW = 4408


@router.websocket("/ws/sessions/{session_id}")
async def session_socket(websocket: WebSocket, session_id: str) -> None:
    app = websocket.app
    session_log: SessionLog = app.state.session_log
    if not token_ok(websocket, app.state.token):
        await _refuse(websocket, CLOSE_UNAUTHORIZED, "missing or wrong access token")
        return
    if not origin_ok(websocket, app.state.extra_hosts):
        await _refuse(websocket, CLOSE_FORBIDDEN, "foreign origin")
        return
    store = session_log.store
    if not await asyncio.to_thread(store.exists, session_id):
        await _refuse(websocket, CLOSE_NOT_FOUND, "no such session")
        return
    try:  # refused, never clamped: after=-1 or a seq beyond SQLite's integers is 1008
        after = parse_after(websocket.query_params.get("after"))
        rater = parse_rater(websocket.query_params.get("rater"))
    except BadMessage as exc:
        await _refuse(websocket, 1008, str(exc)[:120])
        return

    sub = session_log.bus.subscribe(session_id)  # BEFORE reading the store: see module doc
    await websocket.accept()
    sender = asyncio.create_task(_send_loop(websocket, session_log, sub, session_id, after))
    receiver = asyncio.create_task(_receive_loop(websocket, session_log, session_id, rater))
    try:
        done, pending = await asyncio.wait({sender, receiver}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        for task in pending:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        for task in done:
            failure = task.exception()
            if failure is not None and not isinstance(failure, (WebSocketDisconnect, ConnectionError)):
                log.warning("websocket for session %s failed: %s", session_id, type(failure).__name__)
    finally:
        sub.close()
        if websocket.client_state == WebSocketState.CONNECTED:
            try:
                await websocket.close()
            except Exception:
                pass


async def _refuse(websocket: WebSocket, code: int, reason: str) -> None:
    await websocket.accept()
    await websocket.close(code=code, reason=reason)


async def _send_loop(
    websocket: WebSocket, session_log: SessionLog, sub: Subscription, session_id: str, after: int
) -> None:
    store = session_log.store
    last = after
    backlog = await asyncio.to_thread(store.events, session_id, after)
    for ev in backlog:
        await websocket.send_text(ev.model_dump_json())
        last = ev.seq or last
        # Yield: a send on a lost connection does not raise until the loop has run its
        # connection_lost, so without this a client gone mid-catch-up costs one log line per event.
        await asyncio.sleep(0)
    caught_up = Event.of(session_id, CaughtUp(last_seq=last, sent=len(backlog)))
    await websocket.send_text(caught_up.model_dump_json())
    while True:
        item = await sub.get()
        if item is DROPPED:
            await websocket.close(code=CLOSE_TOO_SLOW, reason="client too slow; reconnect with after=")
            return
        assert isinstance(item, Event)
        if item.seq is None:
            await websocket.send_text(item.model_dump_json())
            continue
        if item.seq <= last:
            continue  # already sent during catch-up (or a hole fill)
        if item.seq > last + 1:
            for ev in await asyncio.to_thread(store.events, session_id, last, limit=item.seq - last - 1):
                await websocket.send_text(ev.model_dump_json())
                last = ev.seq or last
                await asyncio.sleep(0)  # as in the catch-up: stop at the first failed send
        await websocket.send_text(item.model_dump_json())
        last = item.seq


async def _receive_loop(websocket: WebSocket, session_log: SessionLog, session_id: str, rater: str) -> None:
    store = session_log.store
    app = websocket.app
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            raise WebSocketDisconnect(message.get("code", 1000))
        raw = message.get("text")
        if raw is None:
            raw = message.get("bytes") or b""
        try:
            op = parse_message(raw)
            rubric_ids = await app.state.rubric_tag_ids(session_id)
            event = await asyncio.to_thread(
                op_to_event,
                op,
                session_id=session_id,
                rater=rater,
                tag_exists=lambda tag_id: store.has_tag(session_id, tag_id),
                rubric_tag_ids=rubric_ids,
                segments=lambda ids: store.segments(session_id, ids),
            )
        except BadMessage as exc:
            err = Event.of(session_id, Status(level="error", component="server", message=str(exc)))
            await websocket.send_text(err.model_dump_json())
            continue
        session_log.record(event)  # persisted, then broadcast to every client, this one included
