"""Audio captured in a browser tab and pushed to us: the same `AudioSource` as a file or a device.

The browser (web/capture.js) sends each channel as 16 kHz mono PCM16 blocks, each tagged with
its channel and the index of its first sample on one session clock (both channels are counted
from the same AudioContext frame counter, so they cannot drift apart). This module knows nothing
of websockets: whoever receives the blocks calls `push()`; `chunks()` yields them in time order.

- `push` never blocks: the queue is bounded, and a block that does not fit is dropped and
  counted (the consumer writes silence in its place when the next block shows the hole).
- A block that starts after where its channel stands is a gap (socket down, share stopped):
  the gap becomes silence and is counted, so session time stays true to the capture clock.
- A block that overlaps audio already placed (resent after a reconnect) is trimmed.
- A channel that delivers nothing (the call not shared yet, the share stopped) must not hold the
  other speaker hostage: once it is `MAX_SKEW_MS` behind, it is filled with silence.
"""

from __future__ import annotations

import queue
import struct
import threading
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.audio.file_source import parse_speakers

QUEUE_SECONDS = 20.0  # how far the consumer may fall behind before blocks are dropped
MAX_SKEW_MS = 1500  # a channel this far behind the other is filled with silence
MAX_BLOCK_SAMPLES = SAMPLE_RATE * 5  # one frame carries at most 5 s (the browser sends 100 ms)

# Wire header of one binary frame, little-endian: version (u8), channel (u8), reserved (u16),
# index of the block's first sample on the session clock at 16 kHz (u64). PCM16 LE follows.
HEADER = struct.Struct("<BBHQ")
FRAME_VERSION = 1


class FrameError(ValueError):
    """A binary frame that is not a capture frame (wrong version, channel, size)."""


@dataclass(frozen=True)
class Frame:
    channel: int
    index: int  # first sample, 16 kHz samples since session audio 0
    pcm: np.ndarray  # int16


def parse_frame(data: bytes, channels: int) -> Frame:
    if len(data) < HEADER.size:
        raise FrameError(f"frame of {len(data)} bytes is shorter than its {HEADER.size}-byte header")
    version, channel, _reserved, index = HEADER.unpack_from(data)
    if version != FRAME_VERSION:
        raise FrameError(f"frame version {version} (this server speaks {FRAME_VERSION})")
    if channel >= channels:
        raise FrameError(f"frame for channel {channel}, but the session has {channels}")
    body = len(data) - HEADER.size
    if body % 2:
        raise FrameError("frame body is not whole 16-bit samples")
    if body // 2 > MAX_BLOCK_SAMPLES:
        raise FrameError(f"frame of {body // 2} samples is over the {MAX_BLOCK_SAMPLES} limit")
    return Frame(channel, index, np.frombuffer(data, dtype="<i2", offset=HEADER.size))


def encode_frame(channel: int, index: int, pcm: np.ndarray) -> bytes:
    """The browser's wire format, for tests and tools."""
    return HEADER.pack(FRAME_VERSION, channel, 0, index) + np.asarray(pcm, dtype="<i2").tobytes()


@dataclass
class ChannelStats:
    frames: int = 0
    samples: int = 0
    dropped_frames: int = 0  # did not fit the queue
    dropped_samples: int = 0
    gap_samples: int = 0  # silence written for holes in the capture clock
    gaps: int = 0
    lead_in_samples: int = 0  # silence before the channel's first block (shared later): not a gap
    overlap_samples: int = 0  # resent audio already placed, trimmed
    stall_fill_samples: int = 0  # silence while this channel delivered nothing


@dataclass
class _Channel:
    index: int
    pending: list[np.ndarray] = field(default_factory=list)
    pending_len: int = 0
    placed: int = 0  # session-clock index of the next sample this channel will place
    emitted: int = 0  # samples already yielded
    received: bool = False  # any block placed yet
    stats: ChannelStats = field(default_factory=ChannelStats)

    def append(self, x: np.ndarray) -> None:
        if len(x):
            self.pending.append(x)
            self.pending_len += len(x)
            self.placed += len(x)

    def take(self, n: int) -> np.ndarray:
        buf = np.concatenate(self.pending) if len(self.pending) != 1 else self.pending[0]
        out, rest = buf[:n], buf[n:]
        self.pending = [rest] if len(rest) else []
        self.pending_len = len(rest)
        return out


class BrowserSource:
    """`AudioSource` fed by `push()`; channel 0 the interviewer's microphone, 1 the call."""

    def __init__(
        self,
        speakers: str | Sequence[str] = ("interviewer", "candidate"),
        chunk_ms: int = 100,
        queue_seconds: float = QUEUE_SECONDS,
        max_skew_ms: int = MAX_SKEW_MS,
    ) -> None:
        names = parse_speakers(speakers) or ["interviewer", "candidate"]
        self.speakers: list[str] = names
        self.chunk_ms = chunk_ms
        self._step = SAMPLE_RATE * chunk_ms // 1000
        self._skew = max_skew_ms * SAMPLE_RATE // 1000
        # Frames are ~100 ms each; the queue holds `queue_seconds` of both channels.
        self._queue: queue.Queue[Frame] = queue.Queue(maxsize=max(4, int(queue_seconds * 10) * len(names)))
        self._channels = [_Channel(i) for i in range(len(names))]
        self._closed = threading.Event()
        self._lock = threading.Lock()  # push() may be called from more than one connection

    # -- the producer side (the server's event loop): never blocks -------------------------------
    def push(self, frame: Frame) -> bool:
        """Queue one block; False when it was dropped (the queue is full, or the source closed)."""
        if frame.channel >= len(self._channels):
            raise FrameError(f"frame for channel {frame.channel}, but the source has {len(self._channels)}")
        st = self._channels[frame.channel].stats
        with self._lock:
            if self._closed.is_set():
                return False
            try:
                self._queue.put_nowait(frame)
            except queue.Full:
                st.dropped_frames += 1
                st.dropped_samples += len(frame.pcm)
                return False
            st.frames += 1
            st.samples += len(frame.pcm)
        return True

    def next_index(self) -> list[int]:
        """Where each channel's next sample belongs (a reconnecting client resumes from here)."""
        return [c.placed for c in self._channels]

    def stats(self) -> dict:
        per = [vars(c.stats).copy() for c in self._channels]
        total = {k: sum(p[k] for p in per) for k in per[0]}
        return {**total, "channels": per, "queued_frames": self._queue.qsize()}

    # -- the consumer side (the pipeline's audio thread) -----------------------------------------
    def chunks(self) -> Iterator[AudioChunk]:
        while True:
            try:
                frame = self._queue.get(timeout=0.1)
            except queue.Empty:
                if self._closed.is_set():
                    break
                continue
            self._place(frame)
            yield from self._ready(fill_stalled=True)
        # Closed: what was captured is still transcribed; the last chunk is padded.
        while True:
            try:
                self._place(self._queue.get_nowait())
            except queue.Empty:
                break
        yield from self._ready(fill_stalled=True)
        end = max(c.placed for c in self._channels)
        end += -end % self._step
        for c in self._channels:
            if c.placed < end:
                c.append(np.zeros(end - c.placed, dtype=np.float32))
        yield from self._ready(fill_stalled=False)

    def _place(self, frame: Frame) -> None:
        ch = self._channels[frame.channel]
        x = frame.pcm.astype(np.float32) / 32768.0
        start = frame.index
        if start < ch.placed:  # resent or overlapping: keep only the new tail
            cut = min(len(x), ch.placed - start)
            ch.stats.overlap_samples += cut
            x, start = x[cut:], start + cut
        if start > ch.placed:
            hole = start - ch.placed
            if ch.received:
                ch.stats.gaps += 1
                ch.stats.gap_samples += hole
            else:
                ch.stats.lead_in_samples += hole
            ch.append(np.zeros(hole, dtype=np.float32))
        ch.received = True
        ch.append(x)

    def _ready(self, fill_stalled: bool) -> Iterator[AudioChunk]:
        chans = self._channels
        if fill_stalled and len(chans) > 1:
            lead = max(c.placed for c in chans)
            for c in chans:
                if lead - c.placed > self._skew:
                    fill = lead - c.placed - self._step
                    c.stats.stall_fill_samples += fill
                    c.append(np.zeros(fill, dtype=np.float32))
        step = self._step
        # Chunk i of every channel before chunk i+1 of any: time order across channels.
        while all(c.pending_len >= step for c in chans):
            for c in chans:
                samples = c.take(step)
                start_ms = c.emitted * 1000 // SAMPLE_RATE
                c.emitted += step
                yield AudioChunk(samples, c.index, self.speakers[c.index], start_ms)

    def close(self) -> None:
        with self._lock:
            self._closed.set()

    def __enter__(self) -> "BrowserSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
