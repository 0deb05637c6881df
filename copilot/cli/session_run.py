"""What `copilot live`, `replay` and `serve` do: wire store, bus, pipeline and server in one process.

Printed for people: the panel's URL (with the token) and how to stop. Printed for scripts and
tests, one per line, flushed: `COPILOT_SESSION=<id>`, `COPILOT_URL=<panel url>`,
`COPILOT_PORT=<port>`, and `COPILOT_DONE=<id>` when a replay has finished.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import webbrowser
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Generic, Iterator, Literal, TypeVar

from copilot.asr.options import DEFAULT_MODEL, AsrOptions
from copilot.audio.base import AudioSource
from copilot.audio.demo import DEMO_AUDIO, DEMO_SPEAKERS, DEMO_TITLE
from copilot.audio.device_source import DeviceSource
from copilot.audio.file_source import FileSource, parse_speakers
from copilot.cli.consent_prompt import confirm_consent
from copilot.cli.serve_live import ServeLive
from copilot.errors import CopilotError
from copilot.events import Status
from copilot.runtime import Runtime, RuntimeConfig
from copilot.server import runner
from copilot.session.consent import consent_notice, default_confirmer, record_consent
from copilot.session.pipeline import Transcriber

log = logging.getLogger("copilot.cli.session_run")


def _say(line: str) -> None:
    print(line, flush=True)


def _can_open_browser() -> bool:
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _open_browser(url: str, no_browser: bool) -> None:
    if no_browser or not _can_open_browser():
        return
    try:
        webbrowser.open(url, new=1)
    except Exception:  # a missing browser is not an error: the URL is printed
        pass


def runtime_config(args: argparse.Namespace) -> RuntimeConfig:
    """The root's config from `live` / `replay` / `serve` options (serve has no pipeline options)."""
    return RuntimeConfig(
        data_dir=args.data_dir,
        host=args.host,
        rubric=getattr(args, "rubric", "default"),
        llm=getattr(args, "llm", None),
        api_base=getattr(args, "api_base", None),
        asr=AsrOptions(
            getattr(args, "model", DEFAULT_MODEL),
            getattr(args, "asr_device", "auto"),
            getattr(args, "compute_type", None),
        ),
        keep_audio=bool(getattr(args, "keep_audio", False)),
        turns=not getattr(args, "no_turns", False),
        echo_gate=getattr(args, "echo_gate", True),
        # --redact / --no-redact; unset: on for a remote LLM endpoint (tagging/redact.py)
        llm_options={"redact": args.redact} if getattr(args, "redact", None) is not None else {},
    )


async def _run_session(
    rt: Runtime,
    args: argparse.Namespace,
    source: AudioSource,
    transcriber: Transcriber,
    *,
    sid: str,
    offset_ms: int,
    live_device: bool,
    speed: float,
    exit_when_done: bool,
    attach: Callable[[Any, Callable[[], None]], str] | None = None,
) -> int:
    # The ASR worker thread holds the GIL in bursts (VAD, numpy); with the default 5 ms switch
    # interval, the loop thread fanning one event out to many websockets can wait 5 ms per hop.
    sys.setswitchinterval(0.001)
    loop = asyncio.get_running_loop()
    rt.bus.bind(loop)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    keeper = rt.keeper(sid, len(source.speakers))
    rt.log.record_payload(
        sid, Status(component="tagger", message="tagging with rules", tagger=rt.tagging().tagger.name)
    )

    app = rt.app()
    server, server_task, port = await runner.start(app, args.host, args.port)
    host = "127.0.0.1" if args.host in ("127.0.0.1", "0.0.0.0", "::") else args.host
    url = f"http://{host}:{port}/panel.html?session={sid}&token={rt.token}"
    _say(f"COPILOT_SESSION={sid}")
    _say(f"COPILOT_PORT={port}")
    _say(f"COPILOT_URL={url}")
    _say(f"Side panel: {url}")
    first_page = url
    if attach is not None:  # browser capture: the start page is what the user opens first
        first_page = f"http://{host}:{port}/{attach(app, stop.set)}"
        _say(f"COPILOT_CAPTURE_URL={first_page}")
        _say(f"Capture page (open it, confirm consent, pick the microphone and the call's tab): {first_page}")
    _say("Press Ctrl-C to stop.")
    _open_browser(first_page, args.no_browser)

    pipeline = rt.pipeline(
        sid, source, transcriber, keeper=keeper, live_device=live_device, speed=speed, offset_ms=offset_ms
    )
    pipe_task = asyncio.create_task(pipeline.run())
    stop_task = asyncio.create_task(stop.wait())
    user_stopped = False
    try:
        await asyncio.wait({pipe_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        if not pipe_task.done():
            user_stopped = True
            _say("Stopping: finishing the transcript (Ctrl-C again to drop what is still queued)...")
            pipeline.stop()
            stop.clear()
            again = asyncio.create_task(stop.wait())
            await asyncio.wait({pipe_task, again}, return_when=asyncio.FIRST_COMPLETED)
            if not pipe_task.done():
                pipeline.abort()
                await pipe_task
            again.cancel()
        stats = pipe_task.result()
        _say(f"COPILOT_DONE={sid}")
        _say(f"Session {sid}: {stats.finals} segments, {stats.tags} tags.")
        if not exit_when_done and not user_stopped:
            _say(f"Still serving the session at {url} - press Ctrl-C to quit.")
            await stop.wait()
    finally:
        stop_task.cancel()
        server.should_exit = True
        await server_task
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    return 0


def run_replay(args: argparse.Namespace) -> int:
    if args.speed <= 0:
        raise CopilotError(f"--speed must be > 0, not {args.speed}")
    if args.demo and args.file:
        raise CopilotError("give either FILE or --demo, not both")
    if args.demo:
        path = Path(DEMO_AUDIO)
        title = args.title or DEMO_TITLE
        args.speakers = args.speakers or ",".join(DEMO_SPEAKERS)
    elif args.file:
        path = Path(args.file)
        title = args.title or path.stem
    else:
        raise CopilotError("replay needs a FILE (or --demo)")
    speakers = parse_speakers(args.speakers)
    pace = not args.no_pace
    source = FileSource(path, realtime=pace, speakers=speakers, speed=args.speed)
    if speakers is None and len(source.speakers) == 2:
        source.speakers = ["interviewer", "candidate"]  # a stereo call recording: mic left, call right
    rt = Runtime(runtime_config(args))
    try:
        # Everything that can fail on bad input (file, rubric, model) fails before the session exists.
        rt.tagging()
        transcriber = rt.transcriber(list(source.speakers), realtime=pace)
        sid, offset = rt.open_session(
            mode="replay", title=title, speakers=list(source.speakers), source=str(path), continue_id=args.continue_id
        )
        return asyncio.run(
            _run_session(
                rt,
                args,
                source,
                transcriber,
                sid=sid,
                offset_ms=offset,
                live_device=False,
                speed=args.speed,
                exit_when_done=args.exit_when_done,
            )
        )
    finally:
        source.close()
        rt.close()


SourceT = TypeVar("SourceT", bound=AudioSource)
ConsentGiven = tuple[Literal["browser", "flag", "terminal"], str]  # (method, who confirmed)


@dataclass
class LiveSetup(Generic[SourceT]):
    """What a `copilot live` session runs on, once set up by `live_setup`."""

    rt: Runtime
    source: SourceT
    transcriber: Transcriber
    sid: str
    offset_ms: int

    def run(self, args: argparse.Namespace, attach: Callable[[Any, Callable[[], None]], str] | None = None) -> int:
        return asyncio.run(
            _run_session(
                self.rt,
                args,
                self.source,
                self.transcriber,
                sid=self.sid,
                offset_ms=self.offset_ms,
                live_device=True,
                speed=1.0,
                exit_when_done=True,
                attach=attach,
            )
        )


@contextmanager
def live_setup(
    args: argparse.Namespace,
    speakers: list[str],
    open_source: Callable[[], SourceT],
    *,
    describe: str,
    notice: str,
    consent: ConsentGiven | None,
    continue_id: str | None = None,
) -> Iterator[LiveSetup[SourceT]]:
    """Runtime, tagging, transcriber, source, session and consent for `copilot live` (devices or
    the browser), in the order that makes a bad rubric or model fail before a device opens or a
    session exists. `consent` is (method, by), stored before any audio is captured; None leaves
    it to the capture page. The source and the runtime are closed on the way out."""
    rt = Runtime(runtime_config(args))
    source: SourceT | None = None
    try:
        rt.tagging()
        transcriber = rt.transcriber(speakers)
        source = open_source()
        sid, offset = rt.open_session(
            mode="live",
            title=args.title or "Live interview",
            speakers=list(source.speakers),
            source=describe,
            continue_id=continue_id,
        )
        if consent is not None:
            method, by = consent
            record_consent(rt.log, sid, by=by, notice=notice, method=method)
        yield LiveSetup(rt, source, transcriber, sid, offset)
    finally:
        if source is not None:
            source.close()
        rt.close()


def run_live(args: argparse.Namespace) -> int:
    if getattr(args, "browser", False):
        return _run_live_browser(args)
    speakers = parse_speakers(args.speakers) or ["interviewer", "candidate"]
    notice = consent_notice(getattr(args, "consent_notice", None))
    consent = confirm_consent(notice, confirmed=getattr(args, "consent_confirmed", False))
    desc = args.device or "default input"
    if args.system_device:
        desc += f" + {args.system_device}"
    with live_setup(
        args,
        speakers,
        lambda: DeviceSource(args.device, args.system_device, speakers=speakers),
        describe=desc,
        notice=notice,
        consent=consent,
        continue_id=args.continue_id,
    ) as live:
        return live.run(args)


def _run_live_browser(args: argparse.Namespace) -> int:
    """`copilot live --browser`: the capture page feeds a BrowserSource once consent is stored."""
    from copilot.audio.browser_source import BrowserSource
    from copilot.server.capture import CaptureHub

    if args.device or args.system_device:
        raise CopilotError("--browser captures in the browser; --device and --system-device are for device capture")
    speakers = parse_speakers(args.speakers) or ["interviewer", "candidate"]
    if len(speakers) != 2:
        raise CopilotError(f"--browser captures two channels (microphone, call); got {len(speakers)} speaker name(s)")
    notice = consent_notice(getattr(args, "consent_notice", None))
    consent: ConsentGiven | None = None
    if getattr(args, "consent_confirmed", False):  # else the capture page asks
        consent = ("flag", default_confirmer())
    with live_setup(
        args, speakers, lambda: BrowserSource(speakers), describe="browser", notice=notice, consent=consent
    ) as live:

        def attach(app: Any, stop: Callable[[], None]) -> str:
            app.state.capture_hubs = {live.sid: CaptureHub(live.sid, live.source, live.rt.log, notice, on_stop=stop)}
            return f"capture.html?session={live.sid}&token={live.rt.token}"

        return live.run(args, attach)


def run_serve(args: argparse.Namespace) -> int:
    rt = Runtime(runtime_config(args))
    store, token = rt.store, rt.token

    async def main() -> int:
        loop = asyncio.get_running_loop()
        rt.bus.bind(loop)
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        app = rt.app()
        live = ServeLive(rt, app, consent_notice(getattr(args, "consent_notice", None)))  # the sessions page's "New"
        server, task, port = await runner.start(app, args.host, args.port)
        base = f"http://127.0.0.1:{port}"
        _say(f"COPILOT_PORT={port}")
        sessions = store.list_sessions()
        newest = f"{base}/review.html?session={sessions[0]['id']}&token={token}" if sessions else None
        index = f"{base}/index.html?token={token}"
        _say(f"COPILOT_URL={newest or index}")
        _say(f"COPILOT_INDEX={index}")
        if sessions:
            _say(f"{len(sessions)} session(s); newest:")
            for s in sessions[:10]:
                _say(f"  {s['id']} [{s['status']}] {s['title']}: {base}/review.html?session={s['id']}&token={token}")
        else:
            _say("no sessions stored yet")
        _open_browser(index, args.no_browser)
        _say("Press Ctrl-C to stop.")
        try:
            await stop.wait()
        finally:
            await live.aclose()  # a running capture's transcript is finished before the server goes
            server.should_exit = True
            await task
        return 0

    try:
        return asyncio.run(main())
    finally:
        rt.close()
