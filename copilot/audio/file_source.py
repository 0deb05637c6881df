"""An audio file replayed as a source: as fast as possible, or at real-time pace.

The file is decoded and resampled in blocks while it plays (`decode.AudioStream`), so memory
stays bounded whatever its length (a 2-hour stereo file is about 460 MB as float32, and the old
whole-file decode held all of it). What can be checked before the session starts is checked in
the constructor: the file opens as audio, its packets add up to what the header declares (a file
cut short fails here, by `scan_length`, without decoding), and the first seconds decode. Damage
further in (a corrupt packet in the middle of an intact-looking file) surfaces as a one-line
AudioInputError from `chunks()` when the replay reaches it; the pipeline records it and ends the
session with what was heard.

Dual mono (a mono recording saved as two identical channels) is decided on the first
`DUAL_MONO_PROBE_S` seconds that carry sound, not on the whole file: the speakers must be known
before the first chunk, and a file is dual mono because of how it was made, which its first
half minute shows as well as its last. Leading digital silence is skipped, up to
`DUAL_MONO_PROBE_MAX_S`.

Chunks are interleaved across channels in time order: chunk i of channel 0, chunk i of channel 1,
chunk i+1 of ...
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Generator, Iterator, Sequence

import numpy as np

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.audio.decode import AudioStream, channel_energies, fold_block, is_dual_mono, scan_length
from copilot.errors import AudioInputError

STEREO_SPEAKERS = ("interviewer", "candidate")
MONO_SPEAKER = "speaker"
DUAL_MONO_PROBE_S = 30.0  # seconds with sound that decide dual mono
DUAL_MONO_PROBE_MAX_S = 300.0  # ... looked for at most this far into the file


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


@dataclass(frozen=True)
class FileInfo:
    """What the constructor learnt about the file, before any chunk."""

    source_rate: int
    source_channels: int
    channels: int  # rows delivered: 1 or 2
    dual_mono: bool  # two source channels folded into one because they carried the same signal
    source_samples: int | None  # length at the source rate (from the packets), None when unknown


def _probe(path: Path, mono: bool | None) -> FileInfo:
    """Open, scan the packets for truncation, and decide the channel policy on the first seconds."""
    with AudioStream(path) as s:
        rows, dual = s.rows, False
        if rows == 2 and mono is None:
            sums = np.zeros(3)
            seen = sounding = 0
            for block in s.blocks():  # at the end of a short file this also runs the end-of-file checks
                e = channel_energies(block)
                sums += e
                seen += block.shape[1]
                if e[0] > 0 or e[1] > 0:
                    sounding += block.shape[1]
                if sounding >= DUAL_MONO_PROBE_S * SAMPLE_RATE or seen >= DUAL_MONO_PROBE_MAX_S * SAMPLE_RATE:
                    break
            mono = dual = is_dual_mono(sums)
        else:
            for _ in zip(range(8), s.blocks()):  # a few blocks: the file really decodes
                pass
        rate, channels = s.source_rate, s.source_channels
    channels_out = 1 if (rows == 1 or mono) else 2
    return FileInfo(rate, channels, channels_out, dual, scan_length(path))


class FileSource:
    """`AudioSource` over a file: 16 kHz float32 chunks of `chunk_ms`, one speaker per channel.

    `realtime=True` paces chunks against a monotonic clock started at the first chunk: chunk
    [t, t+chunk) is released at t+chunk (as a device would deliver it), divided by `speed`.
    Pacing from the start rather than sleeping per chunk keeps it from drifting.
    `mono`: None = auto (a dual-mono stereo file is one speaker), True = mix down, False = split.
    Every `chunks()` call is a fresh pass over the file.
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
        self.audio: FileInfo = _probe(self.path, mono)
        self._mono = self.audio.channels == 1
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

    @cached_property
    def samples(self) -> np.ndarray:
        """All the audio as one (channels, n) float32 array, decoded on first use.

        For one-shot comparisons and tests only: this holds the whole file (the live path streams).
        """
        rows: list[list[np.ndarray]] = [[] for _ in self.speakers]
        for block in self._blocks():
            for ch, row in enumerate(rows):
                row.append(block[ch])
        return np.stack([np.concatenate(r) if r else np.zeros(0, np.float32) for r in rows])

    @property
    def duration_ms(self) -> int:
        """The file's length, from its packets (exact to a few samples); decoded once when unknown."""
        n = self.audio.source_samples
        if n is None:
            return sum(b.shape[1] for b in self._blocks()) * 1000 // SAMPLE_RATE
        return n * 1000 // self.audio.source_rate

    def _blocks(self) -> Generator[np.ndarray, None, None]:
        with AudioStream(self.path) as s:
            for block in s.blocks():
                yield fold_block(block, self._mono)

    def chunks(self) -> Iterator[AudioChunk]:
        step = SAMPLE_RATE * self.chunk_ms // 1000
        pending = np.zeros((len(self.speakers), 0), dtype=np.float32)
        begin = 0  # sample offset of pending[:, 0]
        t0: float | None = None
        blocks = self._blocks()
        try:
            while True:
                block = next(blocks, None)
                if block is not None:
                    pending = np.concatenate([pending, block], axis=1) if pending.shape[1] else block
                    if pending.shape[1] < step:
                        continue
                elif pending.shape[1] == 0:
                    return
                # Whole chunks while there are any; at the end of the file, the short remainder too.
                while pending.shape[1] >= step or (block is None and pending.shape[1] > 0):
                    if self._closed.is_set():
                        return
                    n = min(step, pending.shape[1])
                    end = begin + n
                    if self.realtime:
                        if t0 is None:
                            t0 = time.monotonic()
                        delay = t0 + end / SAMPLE_RATE / self.speed - time.monotonic()
                        if delay > 0 and self._closed.wait(delay):
                            return
                    start_ms = begin * 1000 // SAMPLE_RATE
                    for ch, speaker in enumerate(self.speakers):
                        # A copy, so a consumer that keeps chunks does not pin the decoder's block.
                        yield AudioChunk(pending[ch, :n].copy(), ch, speaker, start_ms)
                    pending = pending[:, n:]
                    begin = end
                if block is None:
                    return
        finally:
            blocks.close()

    def close(self) -> None:
        self._closed.set()

    def __enter__(self) -> "FileSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
