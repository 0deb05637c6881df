"""The audio frame type and the source interface every capture path implements."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Protocol

import numpy as np

SAMPLE_RATE = 16_000


@dataclass(frozen=True)
class AudioChunk:
    """A block of one channel's audio.

    `samples` are float32 in [-1, 1] at 16 kHz; `start_ms` is the chunk's offset in
    session audio, so downstream stages never need a wall clock to place words.
    """

    samples: np.ndarray
    channel: int
    speaker: str
    start_ms: int

    @property
    def duration_ms(self) -> int:
        return len(self.samples) * 1000 // SAMPLE_RATE

    @property
    def end_ms(self) -> int:
        return self.start_ms + self.duration_ms


class AudioSource(Protocol):
    """A blocking iterator of chunks, interleaved across channels in time order.

    `speakers[i]` names channel i. Iteration ends when the source is exhausted
    (a file) or closed (a device).
    """

    speakers: list[str]

    def chunks(self) -> Iterator[AudioChunk]: ...

    def close(self) -> None: ...
