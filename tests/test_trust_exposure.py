"""Issue 11, finding 8: exposure beyond loopback is said out loud and consistent (REST and the
panel's websocket alike), and a loose data directory is tightened or named."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from copilot.events import SessionStarted
from copilot.session.store import SessionStore

REPO = Path(__file__).resolve().parent.parent
TOKEN = "exposure-token"


class _Serve:
    def __init__(self, data: Path, host: str) -> None:
        env = {**os.environ, "COPILOT_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1"}
        self.p = subprocess.Popen(
            [sys.executable, "-m", "copilot", "serve", "--no-browser", "--host", host, "--data-dir", str(data)],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.out: list[str] = []
        self.err: list[str] = []
        for stream, sink in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=lambda s=stream, k=sink: [k.append(line) for line in s], daemon=True).start()

    def port(self) -> int:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            for line in self.out:
                if line.startswith("COPILOT_PORT="):
                    return int(line.split("=", 1)[1])
            assert self.p.poll() is None, "".join(self.err)
            time.sleep(0.05)
        raise AssertionError("no port")

    def stop(self) -> None:
        self.p.send_signal(signal.SIGINT)
        self.p.wait(timeout=20)


def _ws_code(port: int, sid: str, host: str, origin: str) -> int | None:
    """The close code, or None when the socket was accepted and stayed open."""
    import socket

    sock = socket.create_connection(("127.0.0.1", port))  # dialled here, named as `host` in the request
    url = f"ws://{host}/ws/sessions/{sid}?token={TOKEN}"
    with connect(url, sock=sock, origin=origin, open_timeout=5) as ws:
        try:
            ws.recv(timeout=3)  # session.started
            return None
        except ConnectionClosed as exc:
            return exc.rcvd.code


@pytest.fixture()
def data(tmp_path):
    data = tmp_path / "data"
    with SessionStore(data) as store:
        sid = store.create_session(SessionStarted(title="exposed"))
    return data, sid


def test_wildcard_bind_warns_and_serves_the_lan_consistently(data):
    data, sid = data
    srv = _Serve(data, "0.0.0.0")
    try:
        port = srv.port()
        time.sleep(0.3)
        warning = [line for line in srv.err if "warning: listening on every interface" in line]
        assert warning and "token" in warning[0]
        lan = f"192.0.2.10:{port}"  # how a LAN peer names this machine
        r = httpx.get(
            f"http://127.0.0.1:{port}/api/sessions/{sid}",
            headers={"Host": lan, "Authorization": f"Bearer {TOKEN}", "Origin": f"http://{lan}"},
        )
        assert r.status_code == 200
        assert _ws_code(port, sid, lan, f"http://{lan}") is None  # the panel's websocket works too (was 4403)
        assert _ws_code(port, sid, lan, "http://evil.example") == 4403
        assert _ws_code(port, sid, lan, f"http://192.0.2.11:{port}") == 4403  # another host's page
    finally:
        srv.stop()


def test_named_host_bind_is_allowed_for_rest_and_websocket(data):
    data, sid = data
    srv = _Serve(data, "127.0.0.2")
    try:
        port = srv.port()
        host = f"127.0.0.2:{port}"
        url = f"ws://127.0.0.2:{port}/ws/sessions/{sid}?token={TOKEN}"
        with connect(url, origin=f"http://{host}", open_timeout=5) as ws:
            assert '"session.started"' in ws.recv(timeout=5)
        r = httpx.get(f"http://{host}/api/sessions/{sid}", headers={"Authorization": f"Bearer {TOKEN}"})
        assert r.status_code == 200
        r = httpx.get(
            f"http://{host}/api/sessions/{sid}",
            headers={"Authorization": f"Bearer {TOKEN}", "Host": f"evil.example:{port}"},
        )
        assert r.status_code == 403
        assert any("warning: listening on 127.0.0.2" in line for line in srv.err)
    finally:
        srv.stop()


def test_a_loose_data_dir_is_tightened_or_named(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger="copilot.session.store")
    ours = tmp_path / "ours"
    ours.mkdir(mode=0o755)
    os.chmod(ours, 0o755)
    SessionStore(ours).close()
    assert (ours.stat().st_mode & 0o777) == 0o700
    assert any("tightened to 0700" in r.getMessage() for r in caplog.records)
    SessionStore(ours).close()  # again: private now, nothing said
    assert sum("tightened" in r.getMessage() for r in caplog.records) == 1

    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o755)
    (shared / "someone-elses.txt").write_text("x")
    SessionStore(shared).close()
    assert (shared.stat().st_mode & 0o777) == 0o755  # not ours to change
    assert any("left as it is" in r.getMessage() and str(shared) in r.getMessage() for r in caplog.records)
    assert (os.stat(shared / "sessions.db").st_mode & 0o777) == 0o600
