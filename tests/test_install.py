"""`pip install .` into a fresh venv, then the product runs from somewhere else, with its own data.

Nothing of the checkout is on the path: the command runs in an empty temp dir with HOME pointing at
another, so the speech model, the trained classifier and the sessions all land in the user data
directory, and the web panel, rubrics, model manifest, demo audio and labelled data must come from
the installed package. pip's cache is reused (the install is real; only the downloads are saved).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from copilot.session.store import SessionStore
from tests.conftest import PIP_CACHE_DIR, REPO

pytestmark = [pytest.mark.slow, pytest.mark.audio]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    root = tmp_path_factory.mktemp("install")
    venv, home, work = root / "venv", root / "home", root / "work"
    home.mkdir()
    work.mkdir()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_", "XDG_", "PYTHON", "VIRTUAL_ENV"))}
    env.update(HOME=str(home), PIP_CACHE_DIR=PIP_CACHE_DIR, PATH=f"{venv / 'bin'}{os.pathsep}{env['PATH']}")
    pip = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(REPO)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert pip.returncode == 0, pip.stderr[-3000:]
    return venv, home, work, env


def run(installed, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    venv, home, work, env = installed
    proc = subprocess.run(
        [str(venv / "bin" / "copilot"), *args], cwd=work, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert proc.returncode == 0, (args, proc.stderr[-3000:])
    return proc


def test_the_package_is_imported_from_the_venv_not_the_checkout(installed):
    venv, home, work, env = installed
    out = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import copilot, copilot.config as c; print(copilot.__file__); print(c.checkout_dir())",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert Path(out[0]).is_relative_to(venv) and out[1] == "None"


def test_models_install_train_and_replay_the_demo_from_another_directory(installed):
    venv, home, work, env = installed
    user_data = home / ".local" / "share" / "interview-copilot"
    run(installed, "models", "install", "tiny.en")
    (row,) = [
        json.loads(line)
        for line in run(installed, "models", "list", "--json").stdout.splitlines()
        if json.loads(line)["name"] == "tiny.en"
    ]
    assert row["verified"] is True and Path(row["path"]) == user_data / "models" / "tiny.en"

    trained = run(installed, "tagger", "train", "--rubric", "default")
    assert (user_data / "models" / "tagger" / "default" / "meta.json").is_file(), trained.stderr

    replay = run(installed, "replay", "--demo", "--no-pace", "--no-browser", "--exit-when-done")
    sid = re.search(r"COPILOT_DONE=(\S+)", replay.stdout).group(1)
    with SessionStore(user_data) as store:
        events = store.events(sid)
    assert sum(e.type == "segment.final" for e in events) >= 8
    assert any(e.type == "tag.proposed" for e in events)
    assert events[-1].type == "session.ended" and events[-1].data["reason"] == "completed"
    assert list(work.iterdir()) == []  # nothing written where the command ran


def test_the_installed_server_serves_the_panel_from_package_data(installed):
    venv, home, work, env = installed
    proc = subprocess.Popen(
        [str(venv / "bin" / "copilot"), "serve", "--port", "0", "--no-browser"],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        port = None
        for line in proc.stdout:
            if m := re.match(r"COPILOT_PORT=(\d+)", line):
                port = int(m.group(1))
                break
        assert port, "serve never printed its port"
        for name in ("panel.html", "panel.js", "common.js", "review.html"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/{name}", timeout=30) as r:
                assert r.status == 200 and r.read() == (REPO / "web" / name).read_bytes(), name
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
