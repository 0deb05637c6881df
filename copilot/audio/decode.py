"""Decode an audio file (anything FFmpeg/PyAV reads) to 16 kHz float32, one row per channel.

Two ways in, one decoder:
- `AudioStream`: one pass over the file in blocks (a few thousand samples each), so memory stays
  bounded whatever the file's length. `FileSource` (the live replay) streams this way.
- `decode_audio`: the whole file as one array, for one-shot users (refining kept audio, tests that
  compare against a whole-file pass). A 2-hour stereo file is about 460 MB of float32 this way.

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
from typing import Any, Iterator

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


def channel_energies(x: np.ndarray, window: int = 1 << 20) -> np.ndarray:
    """Sums of squares of channel 0, channel 1 and their difference (no file-sized temporaries)."""
    sums = np.zeros(3)
    for i in range(0, x.shape[1], window):
        a = x[0, i : i + window].astype(np.float64)
        b = x[1, i : i + window].astype(np.float64)
        sums += (a @ a, b @ b, (a - b) @ (a - b))
    return sums


def is_dual_mono(sums: np.ndarray) -> bool:
    """Whether channel energies (`channel_energies`, summed over any stretch) say: one signal twice."""
    e0, e1, ediff = (float(v) for v in sums)
    peak = max(e0, e1)
    return peak > 0 and ediff**0.5 < DUAL_MONO_RATIO * peak**0.5


def fold_block(x: np.ndarray, mono: bool) -> np.ndarray:
    """Two rows -> their mean (one row) when `mono`; otherwise unchanged."""
    if mono and x.shape[0] == 2:
        return x.mean(axis=0, keepdims=True).astype(np.float32)
    return x


def _fold_channels(x: np.ndarray, mono: bool | None) -> tuple[np.ndarray, bool]:
    dual = False
    if x.shape[0] == 2 and mono is None:
        mono = dual = is_dual_mono(channel_energies(x))
    return fold_block(x, bool(mono)), dual


class AudioStream:
    """One pass over a file's audio as 16 kHz float32 blocks of shape (rows, n), rows <= 2.

    Opening checks what can be checked without decoding (the file, its container, an audio stream,
    a WAV's declared size). `blocks()` decodes and resamples block by block; a corrupt packet, no
    samples at all, or fewer samples than the header declares raise a one-line AudioInputError
    when the pass reaches them. Use it as a context manager, or call `close()`.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        import av  # heavy-ish; keep `copilot --help` instant

        self._av = av
        self.path = path = Path(path)
        _check_file(path)
        _check_riff(path)
        try:
            self._container = av.open(str(path), metadata_errors="ignore")
        except av.error.FFmpegError as exc:
            raise _fail(path, f"not an audio file FFmpeg can read ({_reason(exc)})") from None
        try:
            container = self._container
            if not container.streams.audio:
                fmt = getattr(container.format, "long_name", None) or container.format.name
                raise _fail(path, f"has no audio stream, so it is not an audio file (FFmpeg reads it as {fmt})")
            self._stream = stream = container.streams.audio[0]
            self.source_rate = int(stream.rate or stream.codec_context.sample_rate or 0)
            self.source_channels = int(stream.codec_context.channels or 0)
            if self.source_rate <= 0 or self.source_channels <= 0:
                raise _fail(path, "audio stream has no sample rate or channel count")
            self.declared = _declared_samples(stream, self.source_rate)  # at the source rate; 0 = unknown
        except BaseException:
            self._container.close()
            raise
        self.decoded = 0  # source samples decoded so far

    @property
    def rows(self) -> int:
        return min(2, self.source_channels)

    def blocks(self) -> Iterator[np.ndarray]:
        av, path, rate = self._av, self.path, self.source_rate
        # Keep the source layout: resampling to "stereo" would make FFmpeg downmix a 5.1 file.
        resampler = av.AudioResampler(format="fltp", layout=self._stream.layout, rate=SAMPLE_RATE)
        produced = 0
        try:
            for frame in self._container.decode(self._stream):
                self.decoded += frame.samples
                frame.pts = None  # resample by sample count; broken timestamps must not drop audio
                for out in resampler.resample(frame):
                    block = self._rows(out)
                    produced += block.shape[1]
                    yield block
            for out in resampler.resample(None):
                block = self._rows(out)
                produced += block.shape[1]
                yield block
        except av.error.FFmpegError as exc:
            raise _fail(
                path, f"corrupt or truncated audio data after {self.decoded / rate:.2f} s ({_reason(exc)})"
            ) from None
        if self.decoded == 0 or produced == 0:
            raise _fail(path, "contains no audio samples")
        if self.declared and self.decoded < self.declared * 0.98 - rate * 0.05:
            raise _fail(
                path,
                f"corrupt or truncated: decoded {self.decoded / rate:.2f} s of the {self.declared / rate:.2f} s "
                "its header declares",
            )

    def _rows(self, frame: Any) -> np.ndarray:
        x = frame.to_ndarray()
        # Only the first two channels are kept (module doc): drop the rest before anything holds them.
        return (x[:2] if x.shape[0] > 2 else x).astype(np.float32, copy=False)

    def close(self) -> None:
        self._container.close()

    def __enter__(self) -> "AudioStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def scan_length(path: str | os.PathLike) -> int | None:
    """The audio's length in source samples, read from its packets' timestamps without decoding.

    Seconds for hours of FLAC (the demuxer only parses frame headers), and it finds a file cut
    short before a replay starts: fewer samples than the header declares raise a one-line
    AudioInputError. None when no packet carries a timestamp (then the length is known only
    after decoding).
    """
    import av

    path = Path(path)
    with AudioStream(path) as s:
        stream = s._stream
        tb = stream.time_base
        end = 0
        try:
            for packet in s._container.demux(stream):
                if packet.pts is not None and tb is not None:  # some demuxers stamp only some packets
                    end = max(end, int((packet.pts + (packet.duration or 0)) * tb * s.source_rate))
        except av.error.FFmpegError as exc:
            raise _fail(path, f"corrupt or truncated audio data ({_reason(exc)})") from None
        start = int((stream.start_time or 0) * tb * s.source_rate) if tb is not None else 0
        length = max(0, end - start)
        if s.declared and length < s.declared * 0.98 - s.source_rate * 0.05:
            rate = s.source_rate
            raise _fail(
                path, f"truncated: holds {length / rate:.2f} s of the {s.declared / rate:.2f} s its header declares"
            )
        return length or None


def decode_audio(path: str | os.PathLike, *, mono: bool | None = None) -> DecodedAudio:
    """Decode all of `path` to 16 kHz float32 rows (see the module doc for the channel policy)."""
    with AudioStream(path) as s:
        declared = s.declared * SAMPLE_RATE // s.source_rate if s.declared else 0
        out = _Collector(s.rows, declared)
        for block in s.blocks():
            out.add(block)
        rate, channels = s.source_rate, s.source_channels
    x, dual = _fold_channels(out.result(), mono)
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


def _declared_samples(stream: Any, rate: int) -> int:
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
