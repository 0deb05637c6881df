"""An audio file replayed as a source: as fast as possible, or at real-time pace.

The file is decoded up front (interview recordings are small next to RAM, and a decode error
should surface before the session starts, not half-way through it). Chunks are interleaved
across channels in time order: chunk i of channel 0, chunk i of channel 1, chunk i+1 of ...
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.audio.decode import DecodedAudio, decode_audio
from copilot.errors import AudioInputError

STEREO_SPEAKERS = ("interviewer", "candidate")
MONO_SPEAKER = "speaker"


def parse_speakers(speakers: str | Sequence[str] | None) -> list[str] | None:
    """`"a,b"` or `["a", "b"]` -> `["a", "b"]`; None stays None (use the defaults)."""
    if speakers is None:
        return None
    names = [s.strip() for s in (speakers.split(",") if isinstance(speakers, str) else speakers)]
    if not names or any(not n for n in names):
        raise AudioInputError(
            f"bad speaker names {speakers!r}: give one non-empty name per channel, e.g. interviewer,candidate"
        )
    if len(set(names)) != len(names):
        raise AudioInputError(f"bad speaker names {speakers!r}: names must differ")
    return names


def default_speakers(channels: int) -> list[str]:
    return [MONO_SPEAKER] if channels == 1 else list(STEREO_SPEAKERS[:channels])


class FileSource:
    """`AudioSource` over a file: 16 kHz float32 chunks of `chunk_ms`, one speaker per channel.

    `realtime=True` paces chunks against a monotonic clock started at the first chunk: chunk
    [t, t+chunk) is released at t+chunk (as a device would deliver it), divided by `speed`.
    Pacing from the start rather than sleeping per chunk keeps it from drifting.
    `mono`: None = auto (a dual-mono stereo file is one speaker), True = mix down, False = split.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        realtime: bool = False,
        speakers: str | Sequence[str] | None = None,
        chunk_ms: int = 100,
        speed: float = 1.0,
        mono: bool | None = None,
    ) -> None:
        if chunk_ms <= 0:
            raise ValueError("chunk_ms must be positive")
        if speed <= 0:
            raise AudioInputError(f"bad replay speed {speed}: must be > 0")
        self.path = Path(path)
        self.realtime = realtime
        self.speed = speed
        self.chunk_ms = chunk_ms
        self.audio: DecodedAudio = decode_audio(self.path, mono=mono)
        names = parse_speakers(speakers)
        if names is None:
            names = default_speakers(self.audio.channels)
        elif len(names) != self.audio.channels:
            if self.audio.dual_mono:
                what = "one speaker (its two channels carry the same signal)"
            else:
                what = "one channel (mono)" if self.audio.channels == 1 else f"{self.audio.channels} channels"
            raise AudioInputError(
                f"{self.path}: has {what} but {len(names)} speaker name(s) were given "
                f"({','.join(names)}); give one name per channel"
            )
        self.speakers: list[str] = names
        self._closed = threading.Event()

    @property
    def samples(self) -> np.ndarray:
        """All decoded audio, shape (channels, n) float32 16 kHz (for one-shot comparisons)."""
        return self.audio.samples

    @property
    def duration_ms(self) -> int:
        return self.audio.duration_ms

    def chunks(self) -> Iterator[AudioChunk]:
        x = self.audio.samples
        step = SAMPLE_RATE * self.chunk_ms // 1000
        total = x.shape[1]
        t0: float | None = None
        for begin in range(0, total, step):
            if self._closed.is_set():
                return
            end = min(begin + step, total)
            if self.realtime:
                if t0 is None:
                    t0 = time.monotonic()
                due = t0 + end / SAMPLE_RATE / self.speed
                delay = due - time.monotonic()
                if delay > 0 and self._closed.wait(delay):
                    return
            start_ms = begin * 1000 // SAMPLE_RATE
            for ch, speaker in enumerate(self.speakers):
                # A copy, so a consumer that keeps chunks does not pin the whole file's array.
                yield AudioChunk(x[ch, begin:end].copy(), ch, speaker, start_ms)

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
