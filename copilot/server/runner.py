"""Run the app with uvicorn inside an existing asyncio loop (the CLI) or in a thread (tests, benches).

Uvicorn's access log is off (query strings carry the token) and its signal handling is left to the
caller, which must end the session cleanly on Ctrl-C.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import threading
from typing import Any

import uvicorn

WS_MAX_SIZE = 1024 * 1024  # frames above this are cut at the protocol level; 8 KiB is the app's limit


class _Server(uvicorn.Server):
    def capture_signals(self) -> Any:  # the caller owns SIGINT/SIGTERM
        return contextlib.nullcontext()


def make_server(app: Any, host: str = "127.0.0.1", port: int = 0) -> uvicorn.Server:
    cfg = uvicorn.Config(
        app,
        host=host,
        port=port,
        ws="websockets-sansio",
        ws_max_size=WS_MAX_SIZE,
        access_log=False,
        log_level="warning",
        lifespan="off",
        server_header=False,
    )
    return _Server(cfg)


def bound_port(server: uvicorn.Server) -> int:
    for s in server.servers:
        for sock in s.sockets:
            return int(sock.getsockname()[1])
    raise RuntimeError("server is not listening")


async def serve(server: uvicorn.Server, app: Any) -> None:
    """`server.serve()`, with the store watcher alongside (events other processes append)."""
    from copilot.server.watch import StoreWatcher

    state = getattr(app, "state", None)
    store, bus = getattr(state, "store", None), getattr(state, "bus", None)
    watcher = asyncio.create_task(StoreWatcher(store, bus).run()) if store is not None and bus is not None else None
    try:
        await server.serve()
    finally:
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher


async def start(app: Any, host: str = "127.0.0.1", port: int = 0) -> tuple[uvicorn.Server, asyncio.Task[None], int]:
    """Start serving in the running loop; return once it listens, with the bound port.

    A bind beyond loopback is allowed as the app's own host, and said out loud on stderr."""
    from copilot.server.auth import allow_bound_host, exposure_warning

    exposed = allow_bound_host(app, host)
    server = make_server(app, host, port)
    task = asyncio.create_task(serve(server, app))
    while not server.started:
        if task.done():
            task.result()  # raises the startup error (port in use...)
            raise RuntimeError("server stopped during startup")
        await asyncio.sleep(0.02)
    bound = bound_port(server)
    if exposed:
        print(exposure_warning(host, bound), file=sys.stderr, flush=True)
    return server, task, bound


class ServerThread:
    """The app served from a background thread with its own loop (tests, the pipeline bench)."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.server = make_server(app, host, port)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="copilot-server", daemon=True)
        self.port = 0
        bus = getattr(getattr(app, "state", None), "bus", None)
        if bus is not None:
            bus.bind(self.loop)  # so events published from other threads reach this loop

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(serve(self.server, self.app))

    def __enter__(self) -> "ServerThread":
        self.thread.start()
        import time

        deadline = time.monotonic() + 20
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.02)
        self.port = bound_port(self.server)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"
