"""Access control: the per-run token (REST and websocket) and the websocket Origin check.

The token arrives as `Authorization: Bearer <t>` or `?token=<t>` (browsers cannot set headers on
a websocket). It is compared in constant time and never logged.
"""

from __future__ import annotations

import os
import secrets
from urllib.parse import urlsplit

from fastapi import HTTPException, Request, status
from starlette.requests import HTTPConnection

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


def origin_ok(conn: HTTPConnection, extra_hosts: frozenset[str] = frozenset()) -> bool:
    """A websocket's Origin must be absent (non-browser clients) or this server's own origin.

    The server's own origin is `http://<Host header>` where that host is loopback (or a host the
    user chose to bind); checking the host too defeats DNS rebinding (evil.example resolving to
    127.0.0.1 would present a matching Host and Origin).
    """
    origin = conn.headers.get("origin")
    if origin is None:
        return True
    host = conn.headers.get("host", "")
    hostname = urlsplit(f"http://{host}").hostname or ""
    allowed_hosts = LOOPBACK_HOSTS | extra_hosts
    if hostname not in allowed_hosts and f"[{hostname}]" not in allowed_hosts:
        return False
    try:
        o = urlsplit(origin)
    except ValueError:
        return False
    if o.scheme not in ("http", "https") or o.hostname is None:
        return False
    port = urlsplit(f"http://{host}").port
    same_port = (o.port or (443 if o.scheme == "https" else 80)) == (port or 80)
    return same_port and (o.hostname in allowed_hosts or f"[{o.hostname}]" in allowed_hosts)
