"""Live capture from sound devices (PortAudio via sounddevice): one device per channel/speaker.

`DeviceSource("mic")` is one channel; `DeviceSource("mic", system_device="monitor")` two: the
interviewer's microphone is channel 0, the call's system audio channel 1. Each device is opened
at its native rate (mixed down to mono there) and resampled to 16 kHz in the consumer thread.

The PortAudio callback only copies the block into a bounded queue and never blocks: when the
consumer falls behind, blocks are dropped and counted, and the consumer writes the same number
of zero samples in their place so session time stays true to the wall clock.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.audio.file_source import parse_speakers
from copilot.errors import AudioInputError

QUEUE_SECONDS = 10.0  # how far the consumer may fall behind before blocks are dropped
MAX_SKEW_MS = 1000  # a device this far behind the other is treated as stalled (zero-filled)


@dataclass(frozen=True)
class DeviceInfo:
    index: int
    name: str
    hostapi: str
    input_channels: int
    default_samplerate: float
    is_default: bool

    def describe(self) -> str:
        star = "*" if self.is_default else " "
        return (
            f"{star}{self.index:3d}  {self.name}  ({self.hostapi}, {self.input_channels} in, "
            f"{self.default_samplerate:.0f} Hz)"
        )


def _sd():
    try:
        import sounddevice
    except OSError as exc:  # libportaudio2 missing
        raise AudioInputError(f"audio backend unavailable: {exc} (install the libportaudio2 package)") from None
    return sounddevice


def list_devices(rescan: bool = False, inputs_only: bool = True) -> list[DeviceInfo]:
    """Sound devices PortAudio sees; `rescan` re-enumerates (PortAudio lists devices once, at start)."""
    sd = _sd()
    if rescan:
        sd._terminate()
        sd._initialize()
    try:
        devices = sd.query_devices()
        hostapis = sd.query_hostapis()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise AudioInputError(f"cannot list audio devices: {exc}") from None
    out = []
    for i, d in enumerate(devices):
        if inputs_only and d["max_input_channels"] <= 0:
            continue
        out.append(
            DeviceInfo(
                i,
                d["name"],
                hostapis[d["hostapi"]]["name"],
                int(d["max_input_channels"]),
                float(d["default_samplerate"]),
                i == default_in,
            )
        )
    return out


def find_device(spec: str | int | None, devices: list[DeviceInfo] | None = None) -> DeviceInfo:
    """An input device by index, exact name, or unique case-insensitive name fragment; None = default."""
    devices = list_devices() if devices is None else devices
    if not devices:
        raise AudioInputError(
            f"no audio input devices found{'' if spec is None else f' (wanted {spec!r})'}; "
            "is a microphone connected, or PulseAudio/PipeWire running?"
        )
    if spec is None or spec == "":
        for d in devices:
            if d.is_default:
                return d
        return devices[0]
    text = str(spec).strip()
    if text.isdigit():
        for d in devices:
            if d.index == int(text):
                return d
    exact = [d for d in devices if d.name == text]
    if exact:
        return exact[0]
    partial = [d for d in devices if text.lower() in d.name.lower()]
    if len(partial) == 1:
        return partial[0]
    names = "; ".join(f"{d.index}: {d.name}" for d in devices)
    if partial:
        raise AudioInputError(
            f"input device {text!r} is ambiguous; matches: " + "; ".join(f"{d.index}: {d.name}" for d in partial)
        )
    raise AudioInputError(f"no input device {text!r}; available: {names} (see `copilot devices`)")


class _Resampler:
    """Streaming mono float32 resampler to 16 kHz (FFmpeg's swr via PyAV keeps state across blocks)."""

    def __init__(self, rate: int) -> None:
        import av

        self.rate = rate
        self._av = av
        self._swr = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE) if rate != SAMPLE_RATE else None

    def __call__(self, x: np.ndarray) -> np.ndarray:
        if self._swr is None or len(x) == 0:
            return x
        frame = self._av.AudioFrame.from_ndarray(
            np.ascontiguousarray(x, dtype=np.float32).reshape(1, -1), format="flt", layout="mono"
        )
        frame.sample_rate = self.rate
        frame.pts = None
        out = [f.to_ndarray().reshape(-1) for f in self._swr.resample(frame)]
        return np.concatenate(out) if out else np.zeros(0, dtype=np.float32)


class _Channel:
    """One device: its stream, counters, and the 16 kHz samples not yet cut into chunks."""

    def __init__(self, index: int, info: DeviceInfo) -> None:
        self.index = index
        self.info = info
        self.rate = int(round(info.default_samplerate)) or SAMPLE_RATE
        self.resample = _Resampler(self.rate)
        self.pending = np.zeros(0, dtype=np.float32)
        self.emitted = 0  # 16 kHz samples already yielded
        self.dropped_blocks = 0  # written by the callback only
        self.dropped_frames = 0  # written by the callback only
        self.dropped_frames_seen = 0  # consumer's view, so it can zero-fill what was dropped
        self.overflows = 0
        self.stall_fill_samples = 0
        self.stream: Any = None  # a sounddevice.InputStream once opened


class DeviceSource:
    """`AudioSource` from one or two input devices (one speaker each), 16 kHz float32 chunks."""

    def __init__(
        self,
        device: str | int | None = None,
        system_device: str | int | None = None,
        speakers: Sequence[str] | str = ("interviewer", "candidate"),
        chunk_ms: int = 100,
        queue_seconds: float = QUEUE_SECONDS,
        rescan: bool = False,
    ) -> None:
        sd = _sd()
        devices = list_devices(rescan=rescan)
        infos = [find_device(device, devices)]
        if system_device is not None:
            infos.append(find_device(system_device, devices))
        names = parse_speakers(speakers) or []
        if len(names) < len(infos):
            raise AudioInputError(f"need {len(infos)} speaker name(s) for {len(infos)} device(s), got {names}")
        self.speakers: list[str] = names[: len(infos)]
        self.chunk_ms = chunk_ms
        self._step = SAMPLE_RATE * chunk_ms // 1000
        self._channels = [_Channel(i, info) for i, info in enumerate(infos)]
        max_blocks = max(4, int(queue_seconds * 1000 / chunk_ms) * len(infos))
        self._queue: queue.Queue[tuple[int, np.ndarray]] = queue.Queue(maxsize=max_blocks)
        self._closed = threading.Event()
        self._started = False
        try:
            for ch in self._channels:
                ch.stream = sd.InputStream(
                    device=ch.info.index,
                    channels=min(ch.info.input_channels, 2),
                    samplerate=ch.rate,
                    dtype="float32",
                    blocksize=max(1, ch.rate * chunk_ms // 1000),
                    latency="low",
                    callback=self._callback_for(ch),
                )
        except (sd.PortAudioError, ValueError) as exc:
            self.close()
            raise AudioInputError(f"cannot open input device {ch.info.name!r}: {exc}") from None

    # -- the real-time side: PortAudio's thread; copy, enqueue, never block
    def _callback_for(self, ch: _Channel):
        q = self._queue

        def callback(indata: np.ndarray, frames: int, time_info, status) -> None:
            if status.input_overflow:
                ch.overflows += 1
            block = indata.mean(axis=1, dtype=np.float32) if indata.shape[1] > 1 else indata[:, 0].copy()
            try:
                q.put_nowait((ch.index, block))
            except queue.Full:
                ch.dropped_blocks += 1
                ch.dropped_frames += frames

        return callback

    def start(self) -> None:
        if self._started:
            return
        self._started = True
        sd = _sd()
        for ch in self._channels:
            try:
                ch.stream.start()
            except sd.PortAudioError as exc:
                self.close()
                raise AudioInputError(f"cannot start input device {ch.info.name!r}: {exc}") from None

    def stats(self) -> dict:
        return {
            "dropped_blocks": sum(c.dropped_blocks for c in self._channels),
            "overflows": sum(c.overflows for c in self._channels),
            "stall_fill_ms": sum(c.stall_fill_samples for c in self._channels) * 1000 // SAMPLE_RATE,
            "queued_blocks": self._queue.qsize(),
            "devices": [c.info.name for c in self._channels],
            "native_rates": [c.rate for c in self._channels],
        }

    def chunks(self) -> Iterator[AudioChunk]:
        self.start()
        step = self._step
        chans = self._channels
        while not self._closed.is_set():
            try:
                index, block = self._queue.get(timeout=0.1)
            except queue.Empty:
                continue
            ch = chans[index]
            dropped = ch.dropped_frames - ch.dropped_frames_seen
            parts = [ch.pending]
            if dropped:
                ch.dropped_frames_seen += dropped
                parts.append(np.zeros(dropped * SAMPLE_RATE // ch.rate, dtype=np.float32))
            parts.append(ch.resample(block))
            ch.pending = np.concatenate(parts)
            if len(chans) > 1:
                self._fill_stalled(step)
            # Yield chunk i of every channel before chunk i+1 of any: time order across channels.
            while all(len(c.pending) >= step for c in chans):
                for c in chans:
                    samples, c.pending = c.pending[:step], c.pending[step:]
                    start_ms = c.emitted * 1000 // SAMPLE_RATE
                    c.emitted += step
                    yield AudioChunk(samples, c.index, self.speakers[c.index], start_ms)

    def _fill_stalled(self, step: int) -> None:
        # A device that stopped delivering must not hold the other speaker hostage.
        lead = max(c.emitted + len(c.pending) for c in self._channels)
        limit = MAX_SKEW_MS * SAMPLE_RATE // 1000
        for c in self._channels:
            behind = lead - (c.emitted + len(c.pending))
            if behind > limit:
                fill = behind - step
                c.pending = np.concatenate([c.pending, np.zeros(fill, dtype=np.float32)])
                c.stall_fill_samples += fill

    def close(self) -> None:
        self._closed.set()
        for ch in self._channels:
            if ch.stream is not None:
                try:
                    ch.stream.stop()
                    ch.stream.close()
                except Exception:  # closing a dead stream must not mask the real error
                    pass
                ch.stream = None

    def __enter__(self) -> "DeviceSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
