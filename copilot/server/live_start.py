"""Start a browser-capture session from the sessions page (`copilot serve`).

`POST /api/live/browser` creates a live session captured by the capture page and answers with
that page's URL; `GET /api/live` says which capture is running; `POST /api/live/stop` ends it.
All three sit behind the same token, Host and Origin checks as the rest of `/api` (the guard
refuses a foreign Origin, so another site cannot start a recording), and starting is POST only.

The work (loading the speech model, creating the session, running the pipeline) belongs to the
process that composed the app: it sets `app.state.live_starter` to a `LiveStarter` (for
`copilot serve`: `copilot/cli/serve_live.py`). Without one (`copilot live`, `copilot replay`)
these routes answer 404. Consent is still asked on the capture page before any audio is taken.
"""

from __future__ import annotations

from typing import Annotated, Any, Protocol

from fastapi import APIRouter, Body, Depends, HTTPException, Request
from pydantic import BaseModel, Field

from copilot.errors import CopilotError
from copilot.server.auth import require_token


class LiveBusy(CopilotError):
    """A live capture is already running (or starting) in this server."""


class LiveStarter(Protocol):
    async def start(self, title: str | None) -> dict[str, Any]:
        """Create and start a browser-capture session; its `current()` view. Raises `LiveBusy`,
        or a `CopilotError` (no speech model, bad rubric) with nothing left in the store."""
        ...

    def current(self) -> dict[str, Any] | None:
        """The running capture: session_id, capture_url, panel_url, connected, consent."""
        ...

    async def stop(self) -> dict[str, Any] | None:
        """End the running capture (what was heard is still transcribed); None when none runs."""
        ...


class StartBody(BaseModel):
    title: str | None = Field(default=None, max_length=200)


router = APIRouter(prefix="/api/live", dependencies=[Depends(require_token)])


def _starter(request: Request) -> LiveStarter:
    starter: LiveStarter | None = getattr(request.app.state, "live_starter", None)
    if starter is None:
        raise HTTPException(404, "this server does not start live sessions (use `copilot serve`)")
    return starter


@router.get("")
async def live_status(request: Request) -> dict[str, Any]:
    starter: LiveStarter | None = getattr(request.app.state, "live_starter", None)
    return {"can_start": starter is not None, "browser": starter.current() if starter else None}


@router.post("/browser")
async def start_browser(request: Request, body: Annotated[StartBody | None, Body()] = None) -> dict[str, Any]:
    starter = _starter(request)
    title = (body.title or "").strip() if body else ""
    try:
        return await starter.start(title or None)
    except LiveBusy as exc:
        raise HTTPException(409, str(exc)) from None
    except CopilotError as exc:  # no speech model, a bad rubric: the server cannot capture as configured
        raise HTTPException(503, str(exc)) from None


@router.get("/browser")
async def start_browser_get() -> None:
    # Explicit: otherwise the static mount at "/" would answer a GET here with a 404.
    raise HTTPException(405, "starting a capture takes a POST", headers={"Allow": "POST"})


@router.post("/stop")
async def stop_live(request: Request) -> dict[str, Any]:
    ended = await _starter(request).stop()
    if ended is None:
        raise HTTPException(404, "no live capture is running")
    return ended
