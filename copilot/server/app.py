"""The FastAPI app: REST over the session log, the session websocket, and the static pages.

`create_app(store, bus, token)` builds it around an existing store and bus, so the live pipeline,
`copilot serve` and the tests all share one code path. Every `/api/*` route and the websocket need
the token; the static pages do not (they hold no data).
"""

from __future__ import annotations

import asyncio
import logging
import re
from pathlib import Path
from typing import Any, Callable

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query
from fastapi.responses import PlainTextResponse, Response
from fastapi.staticfiles import StaticFiles

from copilot import config
from copilot.errors import CopilotError, SessionError
from copilot.review.exports import export_session
from copilot.server.auth import HttpGuard, require_token
from copilot.server.capture import router as capture_router
from copilot.server.live_start import router as live_router
from copilot.server.messages import MAX_SEQ
from copilot.server.review_routes import router as review_router
from copilot.server.ws import router as ws_router
from copilot.session.bus import Bus
from copilot.session.log import SessionLog
from copilot.session.store import SessionStore

log = logging.getLogger("copilot.server")
_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,80}$")
EXPORT_TYPES = {
    "json": "application/json",
    "md": "text/markdown; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
}


def create_app(
    store: SessionStore,
    bus: Bus,
    token: str,
    *,
    web_dir: Path | None = None,
    extra_hosts: frozenset[str] = frozenset(),
    session_log: SessionLog | None = None,
    rubric_loader: Callable[[str], dict[str, Any]] | None = None,
) -> FastAPI:
    app = FastAPI(title="interview copilot", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.store = store
    app.state.bus = bus
    app.state.session_log = session_log or SessionLog(store, bus)
    app.state.token = token
    app.state.extra_hosts = extra_hosts
    load = rubric_loader or load_rubric_json
    rubric_cache: dict[str, dict[str, Any] | None] = {}

    async def rubric_json(name: str) -> dict[str, Any] | None:
        if name not in rubric_cache:
            try:
                rubric_cache[name] = await asyncio.to_thread(load, name)
            except (CopilotError, ImportError, OSError) as exc:
                log.warning("rubric %s unavailable: %s", name, type(exc).__name__)
                rubric_cache[name] = None
        return rubric_cache[name]

    async def rubric_tag_ids(session_id: str) -> set[str] | None:
        info = await asyncio.to_thread(store.session_info, session_id)
        rubric = await rubric_json(info["rubric"])
        if rubric is None:
            return None
        return {t["id"] for t in rubric.get("tags", [])}

    app.state.rubric_json = rubric_json
    app.state.rubric_tag_ids = rubric_tag_ids

    api = APIRouter(prefix="/api", dependencies=[Depends(require_token)])

    @api.get("/sessions")
    async def list_sessions() -> list[dict[str, Any]]:
        rows = await asyncio.to_thread(store.list_sessions)
        return [
            {k: r[k] for k in ("id", "title", "status", "started_at", "ended_at", "mode", "rubric", "last_seq")}
            for r in rows
        ]

    @api.get("/sessions/{session_id}")
    async def get_session(session_id: str) -> dict[str, Any]:
        view = await asyncio.to_thread(_get, store, session_id)
        rubric = await rubric_json(view["rubric"])
        view["rubric_name"] = view["rubric"]
        view["rubric"] = rubric if rubric is not None else {"id": view["rubric"], "tags": []}
        view["has_audio"] = store.audio_path(session_id).exists()
        return view

    @api.get("/sessions/{session_id}/events")
    async def session_events(session_id: str, after: int = Query(0, ge=0, le=MAX_SEQ)) -> list[dict[str, Any]]:
        if not await asyncio.to_thread(store.exists, session_id):
            raise HTTPException(404, f"no session {session_id}")
        events = await asyncio.to_thread(store.events, session_id, after)
        return [e.model_dump(mode="json") for e in events]

    @api.get("/sessions/{session_id}/export")
    async def export(session_id: str, format: str = Query("md")) -> Response:
        if format not in EXPORT_TYPES:
            raise HTTPException(400, f"unknown export format {format!r} (json, md, vtt, srt)")
        if not await asyncio.to_thread(store.exists, session_id):
            raise HTTPException(404, f"no session {session_id}")
        events = await asyncio.to_thread(store.events, session_id)
        text = export_session(events, format)
        return PlainTextResponse(
            text,
            media_type=EXPORT_TYPES[format],
            headers={"Content-Disposition": f'attachment; filename="{session_id}.{format}"'},
        )

    @api.get("/rubrics/{name}")
    async def rubric(name: str) -> dict[str, Any]:
        if not _NAME.match(name):
            raise HTTPException(400, "bad rubric name")
        data = await rubric_json(name)
        if data is None:
            raise HTTPException(404, f"no rubric {name}")
        return data

    app.include_router(api)
    app.include_router(ws_router)
    app.include_router(review_router)
    app.include_router(capture_router)
    app.include_router(live_router)

    app.add_middleware(HttpGuard, extra_hosts=extra_hosts)  # Host/Origin checks and private headers
    static = web_dir or config.web_dir()
    app.mount("/", StaticFiles(directory=static, html=True, check_dir=False), name="web")
    return app


def _get(store: SessionStore, session_id: str) -> dict[str, Any]:
    try:
        return store.get_session(session_id)
    except SessionError as exc:
        raise HTTPException(404, str(exc)) from None


def load_rubric_json(name: str) -> dict[str, Any]:
    from copilot.tagging.rubric import load_rubric

    return load_rubric(name).model_dump(mode="json")
