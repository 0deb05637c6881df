"""Decode an audio file (anything FFmpeg/PyAV reads) to 16 kHz float32, one row per channel.

Channel policy (see docs/audio.md):
- 1 channel -> 1 row.
- 2 channels -> 2 rows (one speaker per channel), except a "dual mono" file whose two channels
  carry the same signal (a mono recording saved as stereo, like jfk.flac): that is one speaker,
  so it becomes 1 row (the mean). `mono=True/False` forces either way.
- more than 2 channels -> the first two (front left/right of a surround file, the first two tracks
  of a multitrack export); a downmix would put both speakers on one channel and lose attribution.

Every failure is an AudioInputError with one line naming the file and the problem: missing,
a directory, empty, not audio, no audio stream, corrupt or truncated data, no samples.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from copilot.audio.base import SAMPLE_RATE
from copilot.errors import AudioInputError

# Two channels whose difference carries less than this share of the signal's RMS are one signal.
DUAL_MONO_RATIO = 0.05


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, shape (channels, n), 16 kHz
    source_rate: int
    source_channels: int
    dual_mono: bool  # two source channels folded into one because they carried the same signal

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_ms(self) -> int:
        return self.samples.shape[1] * 1000 // SAMPLE_RATE


def _fail(path: Path, problem: str) -> AudioInputError:
    return AudioInputError(f"{path}: {problem}")


def _check_file(path: Path) -> None:
    if not path.exists():
        raise _fail(path, "no such file")
    if path.is_dir():
        raise _fail(path, "is a directory, not an audio file")
    if not os.access(path, os.R_OK):
        raise _fail(path, "not readable (permission denied)")
    if path.stat().st_size == 0:
        raise _fail(path, "empty file (0 bytes)")


def _check_riff(path: Path) -> None:
    """A WAV whose data chunk claims more bytes than the file holds was cut short.

    FFmpeg silently clamps such a file to what is there, so check the header ourselves.
    Streaming writers put 0 or 0xFFFFFFFF in the size fields: those are treated as unknown.
    """
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(12)
        if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
            return
        pos = 12
        while pos + 8 <= size:
            f.seek(pos)
            chunk_id, chunk_size = struct.unpack("<4sI", f.read(8))
            if chunk_id == b"data":
                if chunk_size in (0, 0xFFFFFFFF):
                    return
                have = size - pos - 8
                if have < chunk_size:
                    raise _fail(path, f"truncated WAV: header says {chunk_size} bytes of audio, file has {have}")
                return
            pos += 8 + chunk_size + (chunk_size & 1)
        if pos + 8 > size and pos != size:
            raise _fail(path, "truncated WAV: ends inside its header")


def _energies(x: np.ndarray, window: int = 1 << 20) -> tuple[float, float, float]:
    """Mean squares of channel 0, channel 1 and their difference, in windows (no file-sized temporaries)."""
    sums = np.zeros(3)
    for i in range(0, x.shape[1], window):
        a = x[0, i : i + window].astype(np.float64)
        b = x[1, i : i + window].astype(np.float64)
        sums += (a @ a, b @ b, (a - b) @ (a - b))
    return tuple(sums / max(x.shape[1], 1))  # type: ignore[return-value]


def _fold_channels(x: np.ndarray, mono: bool | None) -> tuple[np.ndarray, bool]:
    if x.shape[0] > 2:
        x = x[:2]
    if x.shape[0] == 2:
        if mono is None:
            e0, e1, ediff = _energies(x)
            rms = max(e0, e1) ** 0.5
            mono = rms > 0 and ediff**0.5 < DUAL_MONO_RATIO * rms
            dual = mono
        else:
            dual = False
        if mono:
            return x.mean(axis=0, keepdims=True).astype(np.float32), dual
    elif mono is False:
        pass  # a 1-channel file cannot be split
    return x, False


def decode_audio(path: str | os.PathLike, *, mono: bool | None = None) -> DecodedAudio:
    """Decode `path` to 16 kHz float32 rows (see the module doc for the channel policy)."""
    import av  # heavy-ish; keep `copilot --help` instant

    path = Path(path)
    _check_file(path)
    _check_riff(path)
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except av.error.FFmpegError as exc:
        raise _fail(path, f"not an audio file FFmpeg can read ({_reason(exc)})") from None
    with container:
        if not container.streams.audio:
            fmt = getattr(container.format, "long_name", None) or container.format.name
            raise _fail(path, f"has no audio stream, so it is not an audio file (FFmpeg reads it as {fmt})")
        stream = container.streams.audio[0]
        rate = int(stream.rate or stream.codec_context.sample_rate or 0)
        channels = int(stream.codec_context.channels or 0)
        if rate <= 0 or channels <= 0:
            raise _fail(path, "audio stream has no sample rate or channel count")
        declared = _declared_samples(stream, container, rate)
        # Keep the source layout: resampling to "stereo" would make FFmpeg downmix a 5.1 file.
        resampler = av.AudioResampler(format="fltp", layout=stream.layout, rate=SAMPLE_RATE)
        out = _Collector(channels, declared * SAMPLE_RATE // rate if declared else 0)
        decoded = 0
        try:
            for frame in container.decode(stream):
                decoded += frame.samples
                frame.pts = None  # resample by sample count; broken timestamps must not drop audio
                for block in resampler.resample(frame):
                    out.add(block.to_ndarray())
            for block in resampler.resample(None):
                out.add(block.to_ndarray())
        except av.error.FFmpegError as exc:
            raise _fail(
                path, f"corrupt or truncated audio data after {decoded / rate:.2f} s ({_reason(exc)})"
            ) from None
    if decoded == 0 or out.length == 0:
        raise _fail(path, "contains no audio samples")
    if declared and decoded < declared * 0.98 - rate * 0.05:
        raise _fail(
            path, f"truncated: decoded {decoded / rate:.2f} s of the {declared / rate:.2f} s its header declares"
        )
    x = out.result()
    x, dual = _fold_channels(x, mono)
    # Rows are contiguous (what consumers slice); the 2-D view is not copied to save a full-size copy.
    return DecodedAudio(x, rate, channels, dual)


class _Collector:
    """Decoded blocks into one (channels, n) float32 array.

    When the header says how long the file is, the array is allocated once (an hour of stereo is
    460 MB; collecting blocks and concatenating would need twice that at the peak).
    """

    def __init__(self, channels: int, expected: int) -> None:
        self.buf = np.empty((channels, expected + SAMPLE_RATE), dtype=np.float32) if expected else None
        self.blocks: list[np.ndarray] = []
        self.length = 0

    def add(self, block: np.ndarray) -> None:
        n = block.shape[1]
        if self.buf is not None and self.length + n <= self.buf.shape[1]:
            self.buf[:, self.length : self.length + n] = block
        else:
            if self.buf is not None:  # the header under-declared: fall back to a list
                self.blocks.append(self.buf[:, : self.length])
                self.buf = None
            self.blocks.append(block.astype(np.float32, copy=False))
        self.length += n

    def result(self) -> np.ndarray:
        if self.buf is not None:
            return self.buf[:, : self.length]
        return np.concatenate(self.blocks, axis=1) if len(self.blocks) > 1 else self.blocks[0]


def _declared_samples(stream, container, rate: int) -> int:
    """Samples the header promises (FLAC STREAMINFO, WAV size), or 0 when unknown or estimated."""
    try:
        if stream.duration and stream.time_base:
            return int(stream.duration * stream.time_base * rate)
    except (TypeError, ValueError):
        pass
    return 0


def _reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return str(text).splitlines()[0] if text else type(exc).__name__
