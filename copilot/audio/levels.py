"""Per-channel levels and the silent-channel check, for any source (device, browser, file).

The worst capture failure is a channel that records silence with no error: the wrong tab was
shared, the call's tab is muted, or the call plays into a headset the loopback does not hear.
`LevelWatch` sees every chunk (the pipeline's audio thread) and answers, from the status loop:
the peak level per channel since the last reading (for the panel's meters), and whether a
channel has been silent for `window_ms` of session audio while the other one had speech.
"""

from __future__ import annotations

import math
import threading
from collections import deque
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from copilot.audio.base import AudioChunk

FLOOR_DB = -100.0
SILENT_DB = -60.0  # far below speech (speech sits around -35..-15 dBFS at the chunk level)
SPEECH_DB = -42.0
WINDOW_MS = 10_000
SPEECH_MS = 2_000  # the other channel needs at least this much speech in the window

CHECK_HINTS = {
    0: "check that the right microphone is picked, that it is not muted, and that a headset mic is not "
    "routed elsewhere",
    1: "check that the call's tab (not another tab or a window) is shared with its audio, that the tab is not "
    "muted, and that the call's sound is not routed only to a headset",
}


def level_db(samples: np.ndarray) -> float:
    if len(samples) == 0:
        return FLOOR_DB
    rms = float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))
    return max(FLOOR_DB, 20 * math.log10(rms)) if rms > 0 else FLOOR_DB


@dataclass(frozen=True)
class SilenceChange:
    channel: int
    speaker: str
    silent: bool  # True: went silent while the other spoke; False: came back
    digital: bool  # exact zeros (nothing captured at all) rather than a faint signal
    other: int

    def message(self) -> str:
        if not self.silent:
            return f"sound on the {self.speaker} channel again"
        what = "digital silence" if self.digital else "far below speech level"
        hint = CHECK_HINTS.get(self.channel, "check that channel's input")
        return (
            f"no sound from the {self.speaker} channel (channel {self.channel}, {what}) for "
            f"{WINDOW_MS // 1000} s while the other channel has speech: {hint}"
        )


class _Track:
    def __init__(self) -> None:
        self.window: deque[tuple[int, float, bool]] = deque()  # (end_ms, dB, all zeros)
        self.seen_ms = 0
        self.first_ms: int | None = None
        self.peak = FLOOR_DB
        self.flagged = False


class LevelWatch:
    def __init__(
        self,
        speakers: Sequence[str],
        window_ms: int = WINDOW_MS,
        silent_db: float = SILENT_DB,
        speech_db: float = SPEECH_DB,
        speech_ms: int = SPEECH_MS,
    ) -> None:
        self.speakers = list(speakers)
        self.window_ms = window_ms
        self.silent_db = silent_db
        self.speech_db = speech_db
        self.speech_ms = speech_ms
        self._tracks = [_Track() for _ in self.speakers]
        self._lock = threading.Lock()

    def observe(self, chunk: AudioChunk) -> None:
        if chunk.channel >= len(self._tracks):
            return
        db = level_db(chunk.samples)
        zeros = not np.any(chunk.samples)
        with self._lock:
            t = self._tracks[chunk.channel]
            if t.first_ms is None:
                t.first_ms = chunk.start_ms
            t.window.append((chunk.end_ms, db, zeros))
            t.seen_ms = max(t.seen_ms, chunk.end_ms)
            while t.window and t.window[0][0] <= chunk.end_ms - self.window_ms:
                t.window.popleft()
            t.peak = max(t.peak, db)

    def meter(self) -> list[float]:
        """Peak chunk level per channel (dBFS) since the last call; resets the peaks."""
        with self._lock:
            out = [round(t.peak, 1) for t in self._tracks]
            for t in self._tracks:
                t.peak = FLOOR_DB
        return out

    def check(self) -> list[SilenceChange]:
        """Channels that went silent while another spoke, or came back, since the last check."""
        if len(self._tracks) < 2:
            return []
        changes = []
        with self._lock:
            speech = [sum(1 for _, db, _ in t.window if db >= self.speech_db) for t in self._tracks]
            chunk_ms = [self._chunk_ms(t) for t in self._tracks]
            for i, t in enumerate(self._tracks):
                if not t.window or t.first_ms is None:
                    continue
                full = t.seen_ms - t.first_ms >= self.window_ms
                loudest = max(db for _, db, _ in t.window)
                others = [j for j in range(len(self._tracks)) if j != i and speech[j] * chunk_ms[j] >= self.speech_ms]
                if not t.flagged and full and loudest < self.silent_db and others:
                    t.flagged = True
                    changes.append(SilenceChange(i, self.speakers[i], True, all(z for _, _, z in t.window), others[0]))
                elif t.flagged and loudest >= self.silent_db:
                    t.flagged = False
                    changes.append(SilenceChange(i, self.speakers[i], False, False, -1))
        return changes

    @staticmethod
    def _chunk_ms(t: _Track) -> int:
        if len(t.window) < 2:
            return 100
        return max(1, t.window[-1][0] - t.window[-2][0])
