"""REST for the review and calibration pages: `router`, which `server.app.create_app` includes.

- `GET /api/sessions/{id}/review`: the folded session (segments, tags with status and history,
  notes), the rubric, a per-tag summary and the tag sources present (for filters).
- `GET /api/sessions/{id}/calibration?raters=a,b`: agreement statistics, disagreements and each
  rater's timeline (`copilot.review.calibration`).
- `GET /api/sessions/{id}/audio`: the kept FLAC (`--keep-audio`), with HTTP Range so the
  browser's <audio> can seek; 404 when none was kept.

Every route needs the token (`server.auth.require_token`: Bearer header or `?token=`).
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import FileResponse

from copilot import actors
from copilot.errors import SessionError
from copilot.review.calibration import calibrate_view
from copilot.review.summary import summarize
from copilot.server.auth import require_token
from copilot.session.fold import SessionView, fold

router = APIRouter(prefix="/api/sessions", dependencies=[Depends(require_token)])


def _fold(store: Any, session_id: str) -> SessionView:
    try:
        if not store.exists(session_id):
            raise SessionError(f"no session {session_id}")
        return fold(store.events(session_id), session_id)
    except SessionError as exc:
        raise HTTPException(404, str(exc)) from None


async def _load(request: Request, session_id: str) -> tuple[SessionView, dict[str, Any]]:
    store = request.app.state.store
    view = await asyncio.to_thread(_fold, store, session_id)
    rubric = await request.app.state.rubric_json(view.rubric)  # None for a missing rubric
    return view, rubric or {"id": view.rubric, "tags": []}


def _labels(rubric: dict[str, Any]) -> dict[str, str]:
    return {t["id"]: t.get("label") or t["id"] for t in rubric.get("tags", [])}


@router.get("/{session_id}/review")
async def review(session_id: str, request: Request) -> dict[str, Any]:
    view, rubric = await _load(request, session_id)
    out = view.to_json()
    out["rubric"] = rubric
    out["summary"] = [s.to_json() for s in summarize(view, _labels(rubric))]
    groups = sorted({actors.group(t.source) for t in view.tags}, key=lambda g: (actors.is_human(g), g))
    out["sources"] = groups
    out["has_audio"] = request.app.state.store.audio_path(session_id).exists()
    return out


@router.get("/{session_id}/calibration")
async def calibration(
    session_id: str, request: Request, raters: str | None = Query(None, max_length=2000)
) -> dict[str, Any]:
    view, rubric = await _load(request, session_id)
    names = [r for r in (raters or "").split(",") if r.strip()] or None
    cal = await asyncio.to_thread(calibrate_view, view, names, _labels(rubric))
    out = cal.to_json()
    out["title"] = view.title
    out["rubric"] = rubric
    # The page's rows are the units calibration counted: turns (and any fragment no turn settled).
    out["segments"] = [u.to_json() for u in view.units()]
    out["duration_ms"] = view.duration_ms()
    return out


@router.get("/{session_id}/audio")
async def audio(session_id: str, request: Request) -> FileResponse:
    store = request.app.state.store
    if not await asyncio.to_thread(store.exists, session_id):
        raise HTTPException(404, f"no session {session_id}")
    path = store.audio_path(session_id)
    if not path.is_file():
        raise HTTPException(404, f"session {session_id} kept no audio (record with --keep-audio)")
    # FileResponse answers Range requests (206 + Content-Range), which <audio> needs to seek.
    return FileResponse(path, media_type="audio/flac", filename=f"{session_id}.flac", content_disposition_type="inline")
