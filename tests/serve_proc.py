"""`copilot serve` as a subprocess for tests: a temp data dir, a known token, its printed URLs."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from pathlib import Path

from tests.conftest import REPO

TOKEN = "serve-capture-token"
NOTICE = "We transcribe this call on my laptop."


class Serve:
    """`copilot serve` as a subprocess; its URLs are read from what it prints."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"serve-{data_dir.name}.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "copilot", "serve", "--no-browser", "--asr-device", "cpu"]
            + ["--data-dir", str(data_dir), "--consent-notice", NOTICE],
            cwd=REPO,
            env={**os.environ, "COPILOT_TOKEN": TOKEN, "PYTHONUNBUFFERED": "1", **(env or {})},
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
        )
        self.values: dict[str, str] = {}
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(60) or "COPILOT_INDEX" not in self.values:
            self.proc.kill()  # never leave a stray server behind a failed start
            self.proc.wait(10)
            self._log.close()
            raise AssertionError(f"no sessions URL (rc={self.proc.poll()}): {self.log_path.read_text()[-2000:]}")
        self.base = f"http://127.0.0.1:{self.values['COPILOT_PORT']}"

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = re.match(r"^(COPILOT_[A-Z_]+)=(.*)$", line.strip())
            if m:
                self.values[m.group(1)] = m.group(2)
                if m.group(1) == "COPILOT_INDEX":
                    self._ready.set()
        self._ready.set()

    def api(self, method: str, path: str, token: str = TOKEN) -> tuple[int, dict]:
        req = urllib.request.Request(self.base + path, method=method, headers={"Authorization": f"Bearer {token}"})
        if method == "POST":
            req.data, req.headers["Content-Type"] = b"{}", "application/json"
        try:
            with urllib.request.urlopen(req, timeout=60) as res:
                return res.status, json.loads(res.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    def store(self):
        from copilot.session.store import SessionStore

        return SessionStore(self.data_dir)

    def close(self) -> int | None:
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGINT)
                try:
                    return self.proc.wait(60)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
            return self.proc.returncode
        finally:
            self._log.close()


def events_of(serve: Serve, sid: str) -> list:
    store = serve.store()
    try:
        return store.events(sid)
    finally:
        store.close()
