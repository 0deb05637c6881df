"""Access control: the per-run token (REST and websocket), the Host and Origin checks (both), and
the response headers that keep pages and data private (`HttpGuard`).

The token arrives as `Authorization: Bearer <t>` or `?token=<t>` (browsers cannot set headers on
a websocket). It is compared in constant time and never logged.
"""

from __future__ import annotations

import os
import secrets
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import PlainTextResponse

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "[::1]", "::1"})


def new_token() -> str:
    """COPILOT_TOKEN when set (scripts, tests), else a fresh random token for this run."""
    return os.environ.get("COPILOT_TOKEN") or secrets.token_urlsafe(24)


def presented_token(conn: HTTPConnection) -> str | None:
    header = conn.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return conn.query_params.get("token")


def token_ok(conn: HTTPConnection, expected: str) -> bool:
    given = presented_token(conn)
    if not given:
        return False
    return secrets.compare_digest(given.encode(), expected.encode())


def require_token(request: Request) -> None:
    """FastAPI dependency for every /api route."""
    if not token_ok(request, request.app.state.token):
        raise HTTPException(
            status_code=status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong access token",
            headers={"WWW-Authenticate": "Bearer"},
        )


WILDCARD_HOSTS = frozenset({"0.0.0.0", "::", "[::]"})


def _allowed(hostname: str, extra_hosts: frozenset[str]) -> bool:
    allowed = LOOPBACK_HOSTS | extra_hosts
    return hostname in allowed or f"[{hostname}]" in allowed


def _host(conn: HTTPConnection) -> tuple[str, int | None] | None:
    """The Host header as (hostname, port), or None when it is missing or malformed."""
    try:
        parts = urlsplit(f"http://{conn.headers.get('host', '')}")
        port = parts.port  # raises ValueError for "127.0.0.1:1:2" or a port beyond 65535
    except ValueError:
        return None
    if not parts.hostname or parts.path or parts.query or parts.fragment or parts.username is not None:
        return None
    return parts.hostname, port


def host_ok(conn: HTTPConnection, extra_hosts: frozenset[str] = frozenset()) -> bool:
    """The Host header names this server: loopback, or a host the user chose to bind.

    Checked on every request (REST, pages, websocket) so that DNS rebinding (evil.example
    resolving to 127.0.0.1) is refused before anything is read. A wildcard bind (`--host 0.0.0.0`)
    accepts any Host: the user exposed the server on purpose, and the token still applies."""
    host = _host(conn)
    if host is None:
        return False
    return bool(extra_hosts & WILDCARD_HOSTS) or _allowed(host[0], extra_hosts)


def origin_ok(conn: HTTPConnection, extra_hosts: frozenset[str] = frozenset()) -> bool:
    """An Origin must be absent (non-browser clients) or this server's own origin.

    The server's own origin is `http://<Host header>` where that host is loopback (or a host the
    user chose to bind); checking the host too defeats DNS rebinding (evil.example resolving to
    127.0.0.1 would present a matching Host and Origin). Anything that does not parse as one
    origin (two origins in one header, a bad port) is foreign, never an error.
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    host = _host(conn)
    if host is None or not host_ok(conn, extra_hosts):
        return False
    try:
        o = urlsplit(origin)
        o_port = o.port
    except ValueError:
        return False
    if (
        o.scheme not in ("http", "https")
        or o.hostname is None
        or o.path
        or o.query
        or o.fragment
        or o.username is not None
        or any(c.isspace() for c in origin)
    ):
        return False
    same_port = (o_port or (443 if o.scheme == "https" else 80)) == (host[1] or 80)
    if extra_hosts & WILDCARD_HOSTS:  # any Host is allowed, so the Origin must be that very host
        return same_port and o.hostname == host[0]
    return same_port and _allowed(o.hostname, extra_hosts)


def allow_bound_host(app: Any, host: str) -> bool:
    """A server bound beyond loopback accepts its own host (REST, pages and websocket alike).

    Returns True when the bind exposes the server to the network."""
    if host in LOOPBACK_HOSTS:
        return False
    state = getattr(app, "state", None)
    if state is not None:
        state.extra_hosts = frozenset(getattr(state, "extra_hosts", frozenset())) | {host}
    return True


def exposure_warning(host: str, port: int) -> str:
    where = "every interface" if host in WILDCARD_HOSTS else host
    return (
        f"copilot: warning: listening on {where} (port {port}), not only 127.0.0.1: anyone on your network "
        f"who gets the token can read transcripts and audio; the token travels in clear over plain http"
    )


class HttpGuard:
    """ASGI middleware for plain HTTP: refuse a foreign Host or Origin (403) before any route, and
    mark every response private: `/api` responses (transcripts, audio) are never cached, and the
    pages may load only their own scripts and may not be framed by another site."""

    CSP = (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'; object-src 'none'"
    )

    def __init__(self, app: Any, extra_hosts: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.extra_hosts = extra_hosts

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)  # the websocket checks itself, with close codes
            return
        conn = HTTPConnection(scope)
        # The app's own list: `allow_bound_host` adds the host the server was bound to.
        extra = getattr(getattr(scope.get("app"), "state", None), "extra_hosts", self.extra_hosts)
        if not host_ok(conn, extra) or not origin_ok(conn, extra):
            response = PlainTextResponse("forbidden: foreign Host or Origin", status_code=403)
            await response(scope, receive, send)
            return
        is_api = scope["path"].startswith("/api/")

        async def send_private(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "no-referrer"  # page URLs may carry the token
                if is_api:
                    headers["Cache-Control"] = "no-store"
                else:
                    # The panel's websocket to this very host (the Host header was checked above).
                    ws_self = f"ws://{conn.headers['host']} wss://{conn.headers['host']}"
                    headers["Content-Security-Policy"] = self.CSP.replace("ws: wss:", ws_self)
                    headers["X-Frame-Options"] = "DENY"
            await send(message)

        await self.app(scope, receive, send_private)
