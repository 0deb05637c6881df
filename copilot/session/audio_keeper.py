"""`--keep-audio`: the session's audio, one channel per speaker, stored as FLAC beside the log.

During the call, chunks go through a queue to a writer thread that streams them into a temporary
16-bit WAV (cheap, append-only; the live path never waits on the disk). At the end the WAV is
encoded to FLAC (PyAV) into a temporary file that is renamed into place, so a crash leaves either
no FLAC or a complete one, never half of one. The files are private (0600) like the log.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import wave
from pathlib import Path

import numpy as np

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.fileio import atomic_path

log = logging.getLogger("copilot.session.audio_keeper")
_END = object()


class AudioKeeper:
    def __init__(self, final_path: str | os.PathLike[str], channels: int, *, max_queue: int = 10_000) -> None:
        self.final_path = Path(final_path)
        self.channels = max(1, channels)
        self.final_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self.wav_path = self.final_path.with_name(f".{self.final_path.stem}.recording.wav")
        fd = os.open(self.wav_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        self._wav = wave.open(os.fdopen(fd, "wb"), "wb")
        self._wav.setnchannels(self.channels)
        self._wav.setsampwidth(2)
        self._wav.setframerate(SAMPLE_RATE)
        self._written = 0  # frames written to the WAV (all channels)
        self._pending: list[list[np.ndarray]] = [[] for _ in range(self.channels)]
        self._q: queue.Queue[object] = queue.Queue(maxsize=max_queue)
        self.dropped_chunks = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="copilot-audio-keeper", daemon=True)
        self._thread.start()

    # -- called from the audio thread: never blocks ------------------------------------------
    def write(self, chunk: AudioChunk) -> None:
        try:
            self._q.put_nowait(chunk)
        except queue.Full:
            self.dropped_chunks += 1

    # -- the writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while True:
                item = self._q.get()
                if item is _END:
                    break
                assert isinstance(item, AudioChunk)
                self._add(item)
            self._drain(final=True)
        except BaseException as exc:
            self.error = exc

    def _add(self, chunk: AudioChunk) -> None:
        ch = chunk.channel
        if ch >= self.channels:
            return
        start = chunk.start_ms * SAMPLE_RATE // 1000
        have = self._written + self._pending_len(ch)
        if start > have:  # a gap (dropped device audio): keep the timeline with silence
            self._pending[ch].append(np.zeros(start - have, dtype=np.float32))
        self._pending[ch].append(np.asarray(chunk.samples, dtype=np.float32))
        self._drain(final=False)

    def _pending_len(self, ch: int) -> int:
        return sum(len(p) for p in self._pending[ch])

    def _drain(self, final: bool) -> None:
        # Invariant: every channel's pending audio starts at frame `_written`.
        lengths = [self._pending_len(c) for c in range(self.channels)]
        n = max(lengths) if final else min(lengths)
        if n <= 0:
            return
        frames = np.zeros((n, self.channels), dtype=np.float32)
        for c in range(self.channels):
            buf = np.concatenate(self._pending[c]) if self._pending[c] else np.zeros(0, np.float32)
            take = buf[:n]
            frames[: len(take), c] = take
            rest = buf[n:]
            self._pending[c] = [rest] if len(rest) else []
        pcm = (np.clip(frames, -1.0, 1.0) * 32767).astype("<i2")
        self._wav.writeframes(pcm.tobytes())
        self._written += n

    # -- end of session ----------------------------------------------------------------------
    def finish(self) -> Path | None:
        """Close the WAV, encode it to FLAC atomically, remove the WAV. Returns the FLAC path."""
        self._q.put(_END)
        self._thread.join()
        self._wav.close()
        if self.error is not None:
            raise self.error
        if self._written == 0:
            self.wav_path.unlink(missing_ok=True)
            return None
        with atomic_path(self.final_path) as tmp:  # created 0600
            wav_to_flac(self.wav_path, tmp)
        self.wav_path.unlink(missing_ok=True)
        return self.final_path

    def abort(self) -> None:
        self._q.put(_END)
        self._thread.join()
        self._wav.close()
        self.wav_path.unlink(missing_ok=True)


def wav_to_flac(src: Path, dst: Path) -> None:
    import av

    with av.open(str(src)) as inp, av.open(str(dst), "w", format="flac") as out:
        in_stream = inp.streams.audio[0]
        stream = out.add_stream("flac", rate=in_stream.rate)
        stream.layout = in_stream.layout.name
        stream.format = "s16"
        for frame in inp.decode(in_stream):
            frame.pts = None
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
