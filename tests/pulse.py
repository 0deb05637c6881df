"""A private PulseAudio server with null sinks, for real capture tests without a sound card.

`with pulse_server(tmp_path) as pa:` starts `pulseaudio` (as root too: it only warns) with its
HOME and XDG_RUNTIME_DIR in `tmp_path`, a unix socket with anonymous auth, and null sinks
(`copilot_test` by default, the default source being its monitor). It points this process at
that server (PULSE_SERVER, for the ALSA `pulse` device that PortAudio opens) and, on exit,
terminates the daemon and restores the environment. `pa.play(wav, sink)` runs
`paplay --latency-msec=30`, which is what a call's audio looks like to the capture side.

Extra ALSA PCMs named `<sink>_capture` record a given sink's monitor, so two sinks can feed two
"devices" (interviewer microphone, system audio) of one DeviceSource.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence


@dataclass
class PulseServer:
    root: Path
    socket: Path
    env: dict[str, str]
    sinks: tuple[str, ...]

    def pactl(self, *args: str) -> str:
        return subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, check=True, timeout=10
        ).stdout

    def play(self, wav: str | Path, sink: str | None = None) -> subprocess.Popen:
        sink = sink or self.sinks[0]
        return subprocess.Popen(
            ["paplay", "--latency-msec=30", f"--device={sink}", str(wav)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )


def available() -> str | None:
    """None when a PulseAudio test can run here, else why not."""
    for tool in ("pulseaudio", "pactl", "paplay"):
        if shutil.which(tool) is None:
            return f"{tool} not installed (Debian packages pulseaudio, pulseaudio-utils; `make test` installs them)"
    return None


@contextmanager
def pulse_server(tmp: Path, sinks: Sequence[str] = ("copilot_test",), rate: int = 48000) -> Iterator[PulseServer]:
    root = Path(tmp) / "pulse"
    run = root / "run"
    run.mkdir(parents=True, exist_ok=True)
    os.chmod(run, 0o700)
    socket = run / "native"
    script = root / "server.pa"
    lines = [f"load-module module-native-protocol-unix auth-anonymous=1 socket={socket}"]
    for sink in sinks:
        lines.append(f"load-module module-null-sink sink_name={sink} rate={rate} channels=2")
    lines += [f"set-default-sink {sinks[0]}", f"set-default-source {sinks[0]}.monitor"]
    script.write_text("\n".join(lines) + "\n")
    # ALSA PCMs for each sink's monitor, so PortAudio can open them as separate input devices.
    asoundrc = root / "asoundrc"
    asoundrc.write_text("".join(f"pcm.{s}_capture {{ type pulse device {s}.monitor }}\n" for s in sinks))
    env = dict(
        os.environ,
        HOME=str(root),
        XDG_RUNTIME_DIR=str(run),
        XDG_CONFIG_HOME=str(root / ".config"),
        PULSE_SERVER=f"unix:{socket}",
    )
    log = open(root / "pulseaudio.log", "wb")
    proc = subprocess.Popen(
        [
            "pulseaudio",
            "--daemonize=no",
            "--exit-idle-time=-1",
            "-n",
            "-F",
            str(script),
            "--disallow-exit",
            "--use-pid-file=no",
            "--log-target=stderr",
            "--log-level=warning",
        ],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    saved = {k: os.environ.get(k) for k in ("PULSE_SERVER", "ALSA_CONFIG_PATH")}
    try:
        deadline = time.monotonic() + 15
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"pulseaudio exited ({proc.returncode}): {(root / 'pulseaudio.log').read_text()[-800:]}"
                )
            ok = subprocess.run(["pactl", "info"], env=env, capture_output=True, timeout=10).returncode == 0
            if ok:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("pulseaudio did not come up within 15 s")
            time.sleep(0.1)
        os.environ["PULSE_SERVER"] = env["PULSE_SERVER"]
        # The system ALSA config plus our PCMs (ALSA_CONFIG_PATH replaces the default list).
        os.environ["ALSA_CONFIG_PATH"] = f"/usr/share/alsa/alsa.conf:{asoundrc}"
        yield PulseServer(root, socket, env, tuple(sinks))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
        log.close()
