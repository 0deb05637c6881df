"""`copilot serve`'s live captures, started from the sessions page (`POST /api/live/browser`).

One at a time per server: two cores carry one recognizer. Starting builds what can fail first
(rubric, speech model; the model loads in a thread so the server keeps answering), and only then
creates the session, so a missing model leaves nothing in the store. The session is fed by a
`BrowserSource` through the capture page, which still asks for consent before any audio. It ends
when the page says stop, when the page has been gone longer than the resume window (the page
keeps about 30 s of audio while its socket is down), when nothing ever connects within
`connect_timeout_s`, from the sessions page's Stop, or when the server shuts down. Serve keeps
running, and the ended session is listed and reviewed like any other.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from fastapi import FastAPI

from copilot.audio.browser_source import BrowserSource
from copilot.errors import CopilotError
from copilot.events import Status
from copilot.runtime import Runtime
from copilot.server.capture import CaptureHub
from copilot.server.live_start import LiveBusy
from copilot.session.pipeline import Pipeline, Transcriber

log = logging.getLogger("copilot.cli.serve_live")

SPEAKERS = ["interviewer", "candidate"]  # channel 0 the microphone, channel 1 the call's tab
RESUME_WINDOW_S = 60.0  # the page's socket may be down this long (it keeps ~30 s of audio meanwhile)
CONNECT_TIMEOUT_S = 30 * 60.0  # a start page that never starts capturing frees the server after this
WATCH_EVERY_S = 1.0


@dataclass
class _Capture:
    session_id: str
    title: str
    hub: CaptureHub
    source: BrowserSource
    pipeline: Pipeline
    started: float = field(default_factory=time.monotonic)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    ended_by: str = ""  # why the server ended it: "" when the page stopped it
    task: asyncio.Task[None] | None = None


class ServeLive:
    """The `LiveStarter` for `copilot serve` (`copilot.server.live_start`)."""

    def __init__(
        self,
        rt: Runtime,
        app: FastAPI,
        notice: str,
        *,
        resume_window_s: float = RESUME_WINDOW_S,
        connect_timeout_s: float = CONNECT_TIMEOUT_S,
    ) -> None:
        self.rt = rt
        self.app = app
        self.notice = notice
        self.resume_window_s = resume_window_s
        self.connect_timeout_s = connect_timeout_s
        self._starting = False
        self._closing = False
        self._capture: _Capture | None = None
        if not hasattr(app.state, "capture_hubs"):
            app.state.capture_hubs = {}
        app.state.live_starter = self

    # -- LiveStarter ------------------------------------------------------------------------------
    async def start(self, title: str | None) -> dict[str, Any]:
        # Checked and claimed with no await in between: two clicks cannot both pass.
        if self._starting:
            raise LiveBusy("a live capture is starting already; one capture at a time per server")
        if self._capture is not None:
            raise LiveBusy(
                f"session {self._capture.session_id} is capturing already; stop it first (one capture at a time)"
            )
        if self._closing:
            raise LiveBusy("the server is shutting down")
        self._starting = True
        try:
            transcriber = await asyncio.to_thread(self._prepare)
            sid, _ = await asyncio.to_thread(
                self.rt.open_session, mode="live", title=title or "Live interview", speakers=SPEAKERS, source="browser"
            )
            try:
                if self._closing:  # shutdown began while the model loaded: start nothing
                    raise LiveBusy("the server is shutting down")
                self._capture = self._begin(sid, title or "Live interview", transcriber)
            except BaseException as exc:
                # Nothing half-created stays behind: no audio was accepted yet, so the session goes.
                await asyncio.to_thread(self.rt.store.delete_session, sid)
                if isinstance(exc, OSError):  # e.g. the kept-audio folder cannot be made: one line
                    raise CopilotError(f"cannot start the capture: {exc}") from None
                raise
        finally:
            self._starting = False
        info = self.current()
        assert info is not None
        return info

    def current(self) -> dict[str, Any] | None:
        cap = self._capture
        if cap is None:
            return None
        q = f"session={cap.session_id}&token={self.rt.token}"
        consent = cap.hub.consent
        return {
            "session_id": cap.session_id,
            "title": cap.title,
            "capture_url": f"capture.html?{q}",
            "panel_url": f"panel.html?{q}",
            "connected": cap.hub.connected,
            "consent": None if consent is None else consent.model_dump(mode="json"),
        }

    async def stop(self) -> dict[str, Any] | None:
        cap = self._capture
        if cap is None:
            return None
        info = self.current()
        cap.ended_by = cap.ended_by or "stopped from the sessions page"
        cap.stop.set()
        if cap.task is not None:
            await asyncio.shield(cap.task)
        return info

    async def aclose(self) -> None:
        """Server shutdown: end a running capture cleanly (its transcript is finished)."""
        self._closing = True
        cap = self._capture
        if cap is not None:
            cap.ended_by = cap.ended_by or "the server is shutting down"
            await self.stop()

    # -- inside ---------------------------------------------------------------------------------
    def _prepare(self) -> Transcriber:
        """What can fail on configuration, before any session exists (runs in a thread)."""
        self.rt.tagging()
        return self.rt.transcriber(list(SPEAKERS))

    def _begin(self, sid: str, title: str, transcriber: Transcriber) -> _Capture:
        # The ASR thread holds the GIL in bursts; a short switch interval keeps the loop answering.
        sys.setswitchinterval(0.001)
        self.rt.bus.bind(asyncio.get_running_loop())
        source = BrowserSource(list(SPEAKERS))
        self.rt.log.record_payload(
            sid, Status(component="tagger", message="tagging with rules", tagger=self.rt.tagging().tagger.name)
        )
        pipeline = self.rt.pipeline(
            sid, source, transcriber, keeper=self.rt.keeper(sid, len(SPEAKERS)), live_device=True, speed=1.0
        )
        stop = asyncio.Event()
        hub = CaptureHub(sid, source, self.rt.log, self.notice, on_stop=stop.set)
        cap = _Capture(sid, title, hub, source, pipeline, stop=stop)
        self.app.state.capture_hubs[sid] = hub
        cap.task = asyncio.create_task(self._run(cap))
        return cap

    async def _run(self, cap: _Capture) -> None:
        pipe_task = asyncio.create_task(cap.pipeline.run())
        watch_task = asyncio.create_task(self._watch(cap))
        stop_task = asyncio.create_task(cap.stop.wait())
        try:
            await asyncio.wait({pipe_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            if not pipe_task.done():
                if cap.ended_by:
                    cap.hub.status("info", f"capture ended: {cap.ended_by}", kind="ended_by_server")
                cap.pipeline.stop()  # what was heard is still transcribed, then session.ended
            stats = await pipe_task
            log.info("session %s: %d segments, %d tags", cap.session_id, stats.finals, stats.tags)
        except Exception:
            log.exception("live capture %s failed", cap.session_id)
        finally:
            watch_task.cancel()
            stop_task.cancel()
            self.app.state.capture_hubs.pop(cap.session_id, None)
            cap.source.close()
            if self._capture is cap:
                self._capture = None

    async def _watch(self, cap: _Capture) -> None:
        """End a capture whose page is gone: past the resume window, or never connected."""
        gone_since: float | None = None
        while not cap.stop.is_set():
            await asyncio.sleep(WATCH_EVERY_S)
            now = time.monotonic()
            hub = cap.hub
            if hub.connections == 0:
                if now - cap.started > self.connect_timeout_s:
                    cap.ended_by = f"no capture page started capturing within {self.connect_timeout_s:.0f} s"
                    cap.stop.set()
                continue
            if hub.connected:
                gone_since = None
                continue
            gone_since = gone_since or now
            if now - gone_since > self.resume_window_s:
                cap.ended_by = f"the capture page was gone for more than {self.resume_window_s:.0f} s"
                cap.stop.set()
