"""`copilot bench browser`: browser capture -> final fragment at a websocket client, against the
file replay of the same audio.

Runs `copilot live --browser` as a user would and drives Chromium (Playwright, a local chromium
binary, never a download) through the real capture page, AudioWorklet and websocket: the stereo
file's left channel is Chromium's fake microphone (`--use-file-for-fake-audio-capture`), its
right channel the "call", an `<audio>` element's `captureStream()` handed in through the page's
test hook. Then `copilot replay` plays the same file at real-time pace.

Latency is measured the same way for both: a fragment's last word end (`end_ms`) placed on the
wall clock, to the fragment's arrival at a websocket client. For the replay, the `audio_clock`
control event places session audio on the wall clock. For browser capture, the capture page logs when
each 100 ms AudioWorklet block reached it; a fragment's end is placed by the block that holds it
(less the audio after the end in that block). One origin for the whole run (the page's `clock`
status) is also reported: it drifts when the browser's audio thread runs slower than real time,
as it does on a starved machine (`audio_clock_vs_wall` says how much). Also reported: WER of each
against the demo's script, and the browser's CPU time per minute of capture (every Chromium
process of the run, summed).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING, Any

from copilot.asr.options import DEFAULT_MODEL
from copilot.errors import CopilotError

if TYPE_CHECKING:  # numpy stays out of `copilot --help` (tests/test_import_graph.py)
    import numpy as np

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
HOOK = """
window.copilotCaptureTestHooks = { callStream: async () => {
  const bytes = Uint8Array.from(atob(window.__benchCall), (ch) => ch.charCodeAt(0));
  const a = new Audio(URL.createObjectURL(new Blob([bytes], { type: "audio/wav" })));
  window.__benchAudio = a;
  await a.play();
  return a.captureStream();
} };
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--file", default=None, help="stereo recording, left = mic, right = call (default: the demo)")
    p.add_argument("--model", default=DEFAULT_MODEL)
    p.add_argument("--asr-device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--chromium", default=CHROMIUM, help="Chromium binary (default %(default)s)")
    p.add_argument("--rate", type=int, default=0, help="AudioContext rate, e.g. 48000 (default: the browser's)")
    p.add_argument(
        "--page-options",
        default="",
        metavar="QUERY",
        help="extra capture-page options, e.g. 'aec=0&ns=1' (see web/capture.js)",
    )
    p.add_argument("--no-replay", action="store_true", help="skip the file replay comparison")
    p.add_argument("--json", action="store_true", help="print one JSON object")


def _write_wav(x: np.ndarray, path: Path) -> Path:
    import numpy as np

    pcm = (np.clip(x, -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(pcm.tobytes())
    return path


def _chromium_cpu_s() -> float:
    """CPU seconds of every Chromium process under this one (Playwright's driver starts them)."""
    import psutil

    total = 0.0
    for child in psutil.Process().children(recursive=True):
        try:
            if "chrom" in child.name().lower():
                t = child.cpu_times()
                total += t.user + t.system
        except psutil.Error:
            continue
    return total


def _reference(path: Path) -> str | None:
    from copilot.audio.demo import DEMO_AUDIO, DEMO_SCRIPT

    if path.resolve() != Path(DEMO_AUDIO).resolve():
        return None
    return " ".join(t["text"] for t in DEMO_SCRIPT)


def _collect(url: str, sink: list[tuple[float, dict[str, Any]]], done: threading.Event) -> None:
    from websockets.sync.client import connect

    with connect(url, max_size=2**22, open_timeout=30) as ws:
        for raw in ws:
            sink.append((time.time(), json.loads(raw)))
            if sink[-1][1]["type"] == "session.ended":
                break
    done.set()


def _latency(sink: list[tuple[float, dict[str, Any]]], t0: float) -> tuple[list[float], str]:
    lat, text = [], []
    for t, m in sink:
        if m["type"] == "segment.final":
            lat.append(t - (t0 + m["data"]["end_ms"] / 1000))
            text.append(m["data"]["text"])
    return lat, " ".join(text)


def _latency_by_blocks(sink: list[tuple[float, dict[str, Any]]], clock_log: list[tuple[int, float]]) -> list[float]:
    """Fragment end -> arrival, the end placed on the wall clock by the first captured block that
    covers it (when that block reached the page): right even when the browser's audio clock runs
    slower than real time."""
    import bisect

    log_sorted = sorted(clock_log)
    ends = [i for i, _ in log_sorted]
    lat = []
    for t, m in sink:
        if m["type"] != "segment.final":
            continue
        end = m["data"]["end_ms"] * 16
        k = bisect.bisect_left(ends, end)
        if k < len(log_sorted):  # the block's arrival, less the audio after the end inside it
            lat.append(t - (log_sorted[k][1] - (log_sorted[k][0] - end) / 16000))
    return lat


def _browser_run(args: argparse.Namespace, path: Path, work: Path) -> dict[str, Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        raise CopilotError(
            "the browser bench needs Playwright for Python (pip install playwright==1.65.2); "
            "it drives the local Chromium, it downloads nothing"
        ) from None
    if not Path(args.chromium).exists():
        raise CopilotError(f"no Chromium at {args.chromium} (give --chromium PATH)")
    from copilot.audio.decode import decode_audio

    audio = decode_audio(path, mono=False)
    if audio.channels != 2:
        raise CopilotError(f"{path}: the browser bench needs a stereo file (left = mic, right = call)")
    mic = _write_wav(audio.samples[0], work / "mic.wav")
    call = _write_wav(audio.samples[1], work / "call.wav")
    token = "bench-" + os.urandom(8).hex()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "copilot",
            "live",
            "--browser",
            "--no-browser",
            "--data-dir",
            str(work / "data"),
            "--model",
            args.model,
            "--asr-device",
            args.asr_device,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "COPILOT_TOKEN": token, "PYTHONUNBUFFERED": "1"},
    )
    values: dict[str, str] = {}
    assert proc.stdout is not None
    while "COPILOT_CAPTURE_URL" not in values:
        line = proc.stdout.readline()
        if not line:
            raise CopilotError("copilot live --browser exited before printing its capture URL")
        m = re.match(r"^(COPILOT_[A-Z_]+)=(.*)$", line.strip())
        if m:
            values[m.group(1)] = m.group(2)
    threading.Thread(target=proc.stdout.read, daemon=True).start()  # a full pipe would stall it
    sink: list[tuple[float, dict[str, Any]]] = []
    done = threading.Event()
    ws_url = f"ws://127.0.0.1:{values['COPILOT_PORT']}/ws/sessions/{values['COPILOT_SESSION']}?after=0&token={token}"
    threading.Thread(target=_collect, args=(ws_url, sink, done), daemon=True).start()
    capture_url = values["COPILOT_CAPTURE_URL"] + (f"&rate={args.rate}" if args.rate else "")
    if args.page_options:
        capture_url += "&" + args.page_options.lstrip("&?")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=args.chromium, args=CHROMIUM_ARGS + [f"--use-file-for-fake-audio-capture={mic}%noloop"]
            )
            page = browser.new_page()
            page.add_init_script(
                f"window.__benchCall = {json.dumps(base64.b64encode(call.read_bytes()).decode())};" + HOOK
            )
            page.goto(capture_url)
            page.check("#consent")
            cpu0, wall0 = _chromium_cpu_s(), time.monotonic()
            page.click("#start")
            page.wait_for_selector("#live-step:not([hidden])", timeout=30_000)
            time.sleep(audio.duration_ms / 1000 + 3)
            cpu1, wall1 = _chromium_cpu_s(), time.monotonic()
            rate = page.evaluate("window.copilotCapture.ctx.sampleRate")
            offset = page.evaluate("window.copilotCapture.offset") or 0
            clock_log = [(int(i) + offset, float(t)) for i, t in page.evaluate("window.copilotCapture.clockLog")]
            stats = page.evaluate("window.copilotCapture.stats")
            page.click("#stop")
            if not done.wait(120):
                raise CopilotError("the browser-captured session did not end")
            browser.close()
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(30)
    clocks = [
        m["data"]["details"]["audio_t0"]
        for _, m in sink
        if m["type"] == "status" and m["data"].get("details", {}).get("kind") == "clock"
    ]
    if not clocks:
        raise CopilotError("the capture page never reported its audio clock")
    lat_origin, text = _latency(sink, min(clocks))
    lat = _latency_by_blocks(sink, clock_log)
    minutes = (wall1 - wall0) / 60
    placed_s = max(i for i, _ in clock_log) / 16000 if clock_log else 0.0
    return {
        "latency": lat,
        "latency_one_origin": lat_origin,
        "text": text,
        "audio_rate": rate,
        "page_stats": stats,
        "realtime": placed_s / (clock_log[-1][1] - min(clocks)) if clock_log else float("nan"),
        "browser_cpu_s_per_min": (cpu1 - cpu0) / minutes if minutes > 0 else float("nan"),
    }


def _replay_run(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    from copilot.bench import pipeline

    ns = argparse.Namespace(
        speed=1.0,
        model=args.model,
        asr_device=args.asr_device,
        compute_type=getattr(args, "compute_type", None),
        clients=1,
    )
    token = "bench-" + os.urandom(8).hex()
    with tempfile.TemporaryDirectory(prefix="copilot-bench-") as data:
        sinks = asyncio.run(pipeline._replay_with_clients(ns, path, token, data))
    sink = sinks[0]
    t0 = next(
        (m["data"]["audio_t0"] for _, m in sink if m["type"] == "control" and m["data"].get("kind") == "audio_clock"),
        None,
    )
    if t0 is None:
        raise CopilotError("the replay never sent its audio_clock control event")
    lat, text = _latency(sink, t0)
    return {"latency": lat, "text": text}


def measure(args: argparse.Namespace) -> dict[str, Any]:
    from copilot.audio.demo import DEMO_AUDIO
    from copilot.bench.asr import wer
    from copilot.bench.pipeline import _summary

    path = Path(args.file or DEMO_AUDIO)
    ref = _reference(path)
    out: dict[str, Any] = {"file": str(path), "cpu_count": os.cpu_count(), "model": args.model}
    with tempfile.TemporaryDirectory(prefix="copilot-bench-browser-") as tmp:
        b = _browser_run(args, path, Path(tmp))
    out["browser"] = {
        "segment_end_to_client_s": _summary(b["latency"]),
        "segment_end_to_client_one_origin_s": _summary(b["latency_one_origin"]),
        "audio_clock_vs_wall": b["realtime"],
        "audio_rate": b["audio_rate"],
        "browser_cpu_s_per_min": b["browser_cpu_s_per_min"],
        "page_stats": b["page_stats"],
        "wer": wer(ref, b["text"]) if ref else None,
    }
    if not args.no_replay:
        r = _replay_run(args, path)
        out["replay"] = {"segment_end_to_client_s": _summary(r["latency"]), "wer": wer(ref, r["text"]) if ref else None}
    return out


def run(args: argparse.Namespace) -> int:
    result = measure(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"browser bench: {result['file']}, {result['cpu_count']} CPUs, {result['model']}")
    for name in ("browser", "replay"):
        if name not in result:
            continue
        r = result[name]
        s = r["segment_end_to_client_s"]
        extra = (
            f", AudioContext {r['audio_rate']} Hz, browser CPU {r['browser_cpu_s_per_min']:.1f} s per minute"
            if name == "browser"
            else ""
        )
        w = f", WER {r['wer']:.3f}" if r.get("wer") is not None else ""
        print(
            f"  {name:7s} segment end -> client: median {s['median']:.2f} s, p95 {s['p95']:.2f} s, "
            f"max {s['max']:.2f} s (n={s['n']}){w}{extra}"
        )
    return 0
