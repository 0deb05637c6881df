"""Browser capture end to end: `copilot live --browser` (real pipeline, ASR, SQLite, server) and
Debian's chromium driven by Playwright, through the real capture page, AudioWorklet, websocket
and BrowserSource.

- The microphone is Chromium's fake capture device playing a WAV file (`--use-fake-device-for-
  media-stream --use-file-for-fake-audio-capture=FILE%noloop`; Chromium resamples it to the
  AudioContext's rate, 44.1 kHz by default here, 48 kHz with `?rate=48000`).
- The call comes through the page's documented test hook (`window.copilotCaptureTestHooks.
  callStream`): an `<audio>` element playing a file, and its `captureStream()`.
- `getDisplayMedia` itself runs against Chromium's fake display capture (headless Chromium
  cannot capture a real tab: it answers NotReadableError, "Could not start video source").
"""

from __future__ import annotations

import base64
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from copilot.bench.asr import wer
from tests.conftest import REPO, requires_shared, shared_audio
from tests.synth import espeak_dialogue, read_wav, write_audio

CHROMIUM = "/usr/bin/chromium"
BASE_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--autoplay-policy=no-user-gesture-required",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
]
TOKEN = "capture-test-token"
JFK = "And so my fellow Americans, ask not what your country can do for you, ask what you can do for your country."

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (/usr/bin/chromium)")

# The call-side test hook: queued WAVs (base64) become <audio> elements whose captureStream() is
# the "shared tab"; "VIDEO_ONLY" is a share without an audio track (a window, not a tab).
HOOK = """
window.copilotCaptureTestHooks = { calls: [], audios: [], callStream: async function () {
  const item = this.calls.shift();
  if (item === undefined) throw new Error("test: no call audio queued");
  if (item === "VIDEO_ONLY") {
    const c = document.createElement("canvas"); c.getContext("2d").fillRect(0, 0, 2, 2); return c.captureStream();
  }
  const bytes = Uint8Array.from(atob(item), (ch) => ch.charCodeAt(0));
  const a = new Audio(URL.createObjectURL(new Blob([bytes], { type: "audio/wav" })));
  this.audios.push(a);
  await a.play();
  return a.captureStream();
} };
"""


class LiveBrowser:
    """`copilot live --browser` as a subprocess; its URLs are read from what it prints."""

    def __init__(self, data_dir: Path, token: str = TOKEN, extra: list[str] | None = None) -> None:
        env = {**os.environ, "COPILOT_TOKEN": token, "PYTHONUNBUFFERED": "1"}
        self.log_path = data_dir.parent / "live.log"
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "copilot",
                "live",
                "--browser",
                "--no-browser",
                "--asr-device",
                "cpu",
                "--data-dir",
                str(data_dir),
                "--consent-notice",
                "We transcribe this call on my laptop.",
                *(extra or []),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=open(self.log_path, "w"),
            text=True,
        )
        self.data_dir = data_dir
        self.values: dict[str, str] = {}
        self._ready = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(90) or "COPILOT_CAPTURE_URL" not in self.values:
            raise AssertionError(f"no capture URL (rc={self.proc.poll()}): {self.log_path.read_text()[-2000:]}")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            m = re.match(r"^(COPILOT_[A-Z_]+)=(.*)$", line.strip())
            if m:
                self.values[m.group(1)] = m.group(2)
                if m.group(1) == "COPILOT_CAPTURE_URL":
                    self._ready.set()
        self._ready.set()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def events(self) -> list:
        from copilot.session.store import SessionStore

        store = SessionStore(self.data_dir)
        try:
            return store.events(self.values["COPILOT_SESSION"])
        finally:
            store.close()


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def launch(p, mic_wav: Path | None):
    args = list(BASE_ARGS)
    if mic_wav is not None:
        args.append(f"--use-file-for-fake-audio-capture={mic_wav}%noloop")
    return p.chromium.launch(executable_path=CHROMIUM, args=args)


def wait_for(fn, timeout: float, what: str, step: float = 0.25):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = fn()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out waiting for {what}")


def text_of(events, speaker: str) -> str:
    return " ".join(e.data["text"] for e in events if e.type == "segment.final" and e.data["speaker"] == speaker)


def statuses(events, kind: str) -> list[dict]:
    return [e.data for e in events if e.type == "status" and e.data.get("details", {}).get("kind") == kind]


def sox(src: Path, dst: Path, *effects: str, rate: int = 48000) -> Path:
    subprocess.run(["sox", "-D", str(src), "-r", str(rate), "-c", "1", "-b", "16", str(dst), *effects], check=True)
    return dst


@requires_shared
def test_jfk_mic_silent_call_warning_reshare_and_stop(tmp_path):
    """jfk on the fake microphone, a silent call tab: WER <= 10 %, the silent-channel warning in
    the log and on the panel, the share ending shows the re-share prompt, the re-shared call is
    transcribed as the candidate, Stop ends the session cleanly."""
    from playwright.sync_api import sync_playwright

    mic = sox(shared_audio("jfk.flac"), tmp_path / "jfk48.wav", "pad", "0.5", "0")
    silent = tmp_path / "silent.wav"
    subprocess.run(["sox", "-n", "-r", "16000", "-c", "1", "-b", "16", str(silent), "trim", "0", "14"], check=True)
    call2 = sox(shared_audio("jfk.flac"), tmp_path / "call2.wav", rate=16000)
    live = LiveBrowser(tmp_path / "data")
    try:
        with sync_playwright() as p:
            browser = launch(p, mic)
            page = browser.new_page()
            page.add_init_script(HOOK)
            page.goto(live.values["COPILOT_CAPTURE_URL"])
            page.wait_for_function("document.getElementById('notice').textContent.includes('laptop')")
            assert page.is_disabled("#start")  # no capture before consent
            page.evaluate("(items) => window.copilotCaptureTestHooks.calls.push(...items)", [b64(silent), b64(call2)])
            page.fill("#by", "Dana")
            page.check("#consent")
            page.click("#start")
            page.wait_for_selector("#live-step:not([hidden])")
            panel = browser.new_page()
            panel.goto(live.values["COPILOT_URL"])

            # The silent call channel is flagged, stored, and shown on the panel with what to check.
            wait_for(lambda: statuses(live.events(), "silent_channel"), 30, "the silent-channel warning")
            warn = statuses(live.events(), "silent_channel")[0]
            assert warn["details"]["channel"] == 1 and warn["level"] == "warning" and "tab" in warn["message"]
            panel.wait_for_selector("#audio-banner:not([hidden])", timeout=10_000)
            assert "tab" in panel.inner_text("#audio-banner")
            levels = panel.evaluate("[0, 1].map((i) => document.getElementById('level-' + i).value)")
            assert levels[1] == -80 and levels[0] > -80, levels

            # The call tab's audio ends (the browser fires `ended` on the captured track): prompt.
            page.wait_for_selector("#reshare:not([hidden])", timeout=20_000)
            assert "share" in page.inner_text("#reshare-text").lower()
            wait_for(lambda: statuses(live.events(), "share_ended"), 10, "the share_ended warning")
            page.click("#reshare-btn")  # the session goes on; the call comes back
            page.wait_for_selector("#reshare", state="hidden")
            wait_for(
                lambda: "country" in text_of(live.events(), "candidate").lower(),
                40,
                "the re-shared call's words as the candidate",
            )
            stats = page.evaluate("window.copilotCapture.stats")
            page.click("#stop")
            assert live.wait(60) == 0
            browser.close()
    finally:
        live.close()
    events = live.events()
    types = [e.type for e in events]
    assert types[0] == "session.started" and types[-1] == "session.ended"
    assert events[-1].data["reason"] == "stopped"
    consent = [e for e in events if e.type == "consent.confirmed"]
    assert consent and consent[0].data["by"] == "Dana" and "laptop" in consent[0].data["notice"]
    assert types.index("consent.confirmed") < types.index("segment.final")
    hello = statuses(events, "hello")[0]["details"]
    assert hello["audio_rate"] in (44100, 48000)
    mic_text = text_of(events, "interviewer")
    score = wer(JFK, mic_text)
    print(f"browser jfk WER {score:.3f} ({hello['audio_rate']} Hz): {mic_text!r}; page stats {stats}")
    assert score <= 0.10, (score, mic_text)
    assert statuses(events, "share_live"), "the re-share was recorded"
    assert stats["droppedFrames"] == 0 and stats["framesByChannel"][0] > 100


def test_two_voice_dialogue_at_48k_each_turn_to_its_speaker_and_socket_resumes(tmp_path):
    """An espeak dialogue split into its two channels: the interviewer's on the fake microphone,
    the candidate's as the call tab, at a 48 kHz AudioContext. The socket is dropped mid-way and
    resumes (audio captured meanwhile is sent on resume). Every turn lands on its speaker."""
    from playwright.sync_api import sync_playwright

    turns = [
        ("interviewer", "Tell me how you would design a url shortener."),
        ("candidate", "Before I start, how many users do we expect each day?"),
        ("interviewer", "About ten million people every day."),
        ("candidate", "Then I would use a key value store because reads dominate."),
    ]
    stereo = tmp_path / "dialogue.wav"
    ref = espeak_dialogue(turns, stereo, gap_s=1.2)
    x = read_wav(stereo)
    mic = sox(write_audio(x[0], tmp_path / "mic16.wav"), tmp_path / "mic48.wav")
    call = write_audio(x[1], tmp_path / "call16.wav")
    live = LiveBrowser(tmp_path / "data")
    try:
        with sync_playwright() as p:
            browser = launch(p, mic)
            page = browser.new_page()
            page.add_init_script(HOOK)
            page.goto(live.values["COPILOT_CAPTURE_URL"] + "&rate=48000")
            page.evaluate("(b) => window.copilotCaptureTestHooks.calls.push(b)", b64(call))
            page.check("#consent")
            page.click("#start")
            wait_for(lambda: page.evaluate("window.copilotCapture.ready"), 20, "the capture socket")
            time.sleep(3)
            page.evaluate("window.copilotCapture.ws.close()")  # a dropped connection
            resumed = "window.copilotCapture.stats.reconnects >= 1 && window.copilotCapture.ready"
            wait_for(lambda: page.evaluate(resumed), 20, "the socket to resume")
            duration = ref[-1]["end_ms"] / 1000
            wait_for(
                lambda: (
                    "key" in text_of(live.events(), "candidate").lower()
                    or "value" in text_of(live.events(), "candidate").lower()
                ),
                duration + 30,
                "the last turn",
            )
            rate = page.evaluate("window.copilotCapture.ctx.sampleRate")
            page.click("#stop")
            assert live.wait(60) == 0
            browser.close()
    finally:
        live.close()
    events = live.events()
    assert rate == 48000
    assert statuses(events, "reconnected"), "the resumed socket was recorded"
    interviewer, candidate = text_of(events, "interviewer").lower(), text_of(events, "candidate").lower()
    for word in ("tell", "million", "people"):
        assert word in interviewer and word not in candidate, (interviewer, candidate)
    for word in ("start", "users", "key", "store"):
        assert word in candidate and word not in interviewer, (interviewer, candidate)
    hyp = " ".join(e.data["text"] for e in events if e.type == "segment.final")
    # Attribution is the point here; tiny.en mishears espeak ("url shortener") from run to run,
    # so the WER bound only catches garbled audio (one run here measured 0.32, another under 0.25).
    assert wer(" ".join(t for _, t in turns), hyp) <= 0.45


def test_wrong_token_sends_nothing(tmp_path):
    """A page opened with a wrong token says so, never starts capture, and sends no audio."""
    from playwright.sync_api import sync_playwright

    live = LiveBrowser(tmp_path / "data")
    try:
        with sync_playwright() as p:
            browser = launch(p, None)
            page = browser.new_page()
            page.add_init_script(HOOK)
            url = live.values["COPILOT_CAPTURE_URL"].replace(f"token={TOKEN}", "token=wrong")
            page.goto(url)
            page.wait_for_selector("#error:not([hidden])")
            assert "token" in page.inner_text("#error")
            page.check("#consent")
            assert page.is_disabled("#start")
            # Even forcing the socket open with the wrong token: refused before `ready`, nothing sent.
            code = page.evaluate("""() => new Promise((res) => {
              const sid = new URLSearchParams(location.search).get("session");
              const ws = new WebSocket(`ws://${location.host}/ws/capture/${sid}?token=wrong`);
              ws.onclose = (e) => res(e.code); })""")
            assert code == 4401
            assert page.evaluate("window.copilotCapture.stats.sentFrames") == 0
            assert page.evaluate("window.copilotCapture.ctx") is None  # no AudioContext: nothing captured
            browser.close()
    finally:
        live.close()
    events = live.events()
    assert not [e for e in events if e.type == "consent.confirmed"]
    assert not [e for e in events if e.type == "status" and e.data.get("component") == "capture"]
    assert not [e for e in events if e.type == "segment.final"]


def test_real_get_display_media_path_stops_video_and_warns_without_audio(tmp_path):
    """The page's own getDisplayMedia call, against Chromium's fake display capture (a screen
    with a fake audio track): the video track is stopped at once, the audio is captured on
    channel 1. A share without audio (a window) shows the prompt and stores a warning."""
    from playwright.sync_api import sync_playwright

    live = LiveBrowser(tmp_path / "data")
    try:
        with sync_playwright() as p:
            browser = launch(p, None)
            page = browser.new_page()
            page.goto(live.values["COPILOT_CAPTURE_URL"])
            page.check("#consent")
            page.click("#start")
            wait_for(
                lambda: page.evaluate("window.copilotCapture.stats.framesByChannel[1] > 10"),
                20,
                "frames from the shared screen's audio",
            )
            share = page.evaluate("""() => { const s = window.copilotCapture.lastShare;
              const states = (tracks) => tracks.map((t) => t.readyState);
              return { video: states(s.getVideoTracks()), audio: states(s.getAudioTracks()) }; }""")
            assert share == {"video": ["ended"], "audio": ["live"]}, share
            # Now a share that has no audio track, through the hook (as when a window is shared).
            page.evaluate(HOOK + "; window.copilotCaptureTestHooks.calls.push('VIDEO_ONLY')")
            page.evaluate(
                "window.copilotCapture.inputs[1].track.stop(); "
                "window.copilotCapture.inputs[1].track.dispatchEvent(new Event('ended'))"
            )
            page.wait_for_selector("#reshare:not([hidden])")
            page.click("#reshare-btn")
            page.wait_for_function("document.getElementById('reshare-text').textContent.includes('no audio')")
            wait_for(lambda: statuses(live.events(), "no_audio"), 10, "the no-audio warning")
            page.click("#stop")
            assert live.wait(60) == 0
            browser.close()
    finally:
        live.close()
    events = live.events()
    assert statuses(events, "share_ended") and events[-1].type == "session.ended"


def _bursts(seconds: float, first_s: float, freq: float, every_s: float = 2.0) -> np.ndarray:
    x = np.zeros(int(seconds * 16000), dtype=np.float32)
    t = np.arange(int(0.05 * 16000)) / 16000
    burst = (0.5 * np.sin(2 * np.pi * freq * t)).astype(np.float32)
    for start in np.arange(first_s, seconds - 0.1, every_s):
        i = int(start * 16000)
        x[i : i + len(burst)] = burst
    return x


def _onsets(x: np.ndarray, threshold: float = 0.05, quiet_s: float = 0.5) -> list[float]:
    loud = np.flatnonzero(np.abs(x) > threshold)
    out: list[float] = []
    last = -1e9
    for i in loud:
        if i - last > quiet_s * 16000:
            out.append(i / 16000)
        last = i
    return out


# The 10-minute run is the drift proof; it runs in `make test` (CI has the time) and
# is left out of `make test-fast` by the slow marker.
@pytest.mark.slow
@pytest.mark.parametrize("seconds", [60, 600])
def test_paced_capture_keeps_both_channels_in_step_without_memory_growth(tmp_path, seconds):
    """Tone bursts every 2 s on the mic (from 0.5 s) and on the call (from 1.5 s), captured for
    `seconds`: in the kept session audio, the call's bursts stay 1 s + a constant after the
    mic's (drift < 200 ms), none is lost, and the server's memory does not grow."""
    import psutil
    from playwright.sync_api import sync_playwright

    from copilot.audio.decode import decode_audio
    from copilot.session.store import SessionStore

    mic = write_audio(_bursts(seconds, 0.5, 1000), tmp_path / "mic.wav")
    call = write_audio(_bursts(seconds, 1.5, 2000), tmp_path / "call.wav")
    live = LiveBrowser(tmp_path / "data", extra=["--keep-audio"])
    server = psutil.Process(live.proc.pid)
    rss: list[float] = []
    try:
        with sync_playwright() as p:
            browser = launch(p, mic)
            page = browser.new_page()
            page.add_init_script(HOOK)
            page.goto(live.values["COPILOT_CAPTURE_URL"])
            page.evaluate("(b) => window.copilotCaptureTestHooks.calls.push(b)", b64(call))
            page.check("#consent")
            page.click("#start")
            page.wait_for_selector("#live-step:not([hidden])")
            t_start = time.monotonic()
            t_end = t_start + seconds + 1.5
            while time.monotonic() < t_end:
                time.sleep(min(5.0, max(0.0, t_end - time.monotonic())))
                rss.append(server.memory_info().rss / 2**20)
            stats = page.evaluate("window.copilotCapture.stats")
            wall_s = time.monotonic() - t_start
            page.click("#stop")
            assert live.wait(90) == 0
            browser.close()
    finally:
        live.close()
    store = SessionStore(live.data_dir)
    audio = decode_audio(store.audio_path(live.values["COPILOT_SESSION"]), mono=False)
    kinds = ("disconnected", "gap", "dropped", "pace_slow")
    capture = [
        e.data["details"]
        for e in store.events(live.values["COPILOT_SESSION"])
        if e.type == "status" and e.data["details"].get("kind") in kinds
    ]
    store.close()
    mic_on, call_on = _onsets(audio.samples[0]), _onsets(audio.samples[1])
    expected = int((seconds - 1.6) / 2) + 1
    # Pair each call burst with the mic burst before it: their distance should stay constant.
    offsets = []
    for c in call_on:
        before = [m for m in mic_on if m < c]
        if before and c - before[-1] < 2.0:
            offsets.append(c - before[-1])
    drift = max(offsets) - min(offsets)
    # Audio the browser lost before the worklet saw it: bursts closer than 2 s on one channel.
    lost = [round(float(-sum(d for d in (np.diff(on) - 2.0) if -1.9 < d < -0.005)), 3) for on in (mic_on, call_on)]
    warm = rss[max(1, len(rss) // 5)]  # after the first 20 % of the run (model loaded, queues steady)
    print(
        f"{seconds} s capture: bursts mic {len(mic_on)}, call {len(call_on)} of {expected}; offset "
        f"{min(offsets):.3f}..{max(offsets):.3f} s over {len(offsets)} pairs, drift {drift * 1000:.0f} ms; "
        f"lost inside the browser (mic, call) {lost} s; server RSS {warm:.0f} -> {rss[-1]:.0f} MiB; "
        f"page {stats}; server {capture}"
    )
    # What our side guarantees, whatever the machine's load: no frame dropped by the page or the
    # server, both channels equally long, no memory growth. A gap (the browser's renderer skipped
    # frames: the worklet saw a hole in its frame counter) is written as silence so time stays
    # true; one run here recorded 236 ms of gaps and measured 10 ms of drift.
    assert stats["droppedFrames"] == 0 and not [c for c in capture if c.get("kind") == "dropped"]
    assert abs(len(mic_on) - len(call_on)) <= 3
    assert rss[-1] - warm < 40, rss
    # Drift needs a browser whose audio thread keeps real time. A starved one (this 2-core machine
    # under other jobs: 7 % lost in 10 minutes) renders fewer frames than wall time and drops
    # captured input before the worklet; say so rather than pretend.
    realtime = audio.duration_ms / 1000 / wall_s
    if realtime < 0.96:  # the page noticed and the interviewer was told
        assert [c for c in capture if c.get("kind") == "pace_slow"], (realtime, capture)
    if realtime < 0.99:
        pytest.skip(
            f"Chromium rendered {realtime:.1%} of real time (audio thread starved of CPU): "
            f"drift not measurable here; measured {drift * 1000:.0f} ms, lost {lost} s"
        )
    assert len(mic_on) >= 0.98 * expected and len(call_on) >= 0.98 * expected
    assert len(offsets) >= 0.95 * expected
    assert drift < 0.2, offsets
    assert stats["droppedFrames"] == 0
