"""`--keep-audio`: the session's audio, one channel per speaker, stored as FLAC beside the log.

During the call, chunks go through a queue to a writer thread that streams them into a temporary
16-bit WAV (cheap, append-only; the live path never waits on the disk). At the end the WAV is
encoded to FLAC (PyAV) into a temporary file that is renamed into place, so a crash leaves either
no FLAC or a complete one, never half of one. The files are private (0600) like the log.

A crash (SIGKILL, power loss) leaves the temporary WAV, `.ID.recording.wav`. Nothing of it is lost:
- `--continue ID --keep-audio` appends to it (never truncates), starting from the kept FLAC when
  the WAV is gone, so the final FLAC holds the audio of every run on one timeline;
- `recover_recording` (called by `sessions end` and by a `--continue` without `--keep-audio`)
  encodes it into the FLAC and removes it. Its header may be stale after a crash, so the frame
  count is taken from the file's length, not from the header.
"""

from __future__ import annotations

import logging
import os
import queue
import struct
import threading
from pathlib import Path
from typing import BinaryIO

import numpy as np

from copilot.audio.base import SAMPLE_RATE, AudioChunk
from copilot.errors import CopilotError
from copilot.fileio import atomic_path

log = logging.getLogger("copilot.session.audio_keeper")
_END = object()


class AudioKeeper:
    def __init__(self, final_path: str | os.PathLike[str], channels: int, *, max_queue: int = 10_000) -> None:
        self.final_path = Path(final_path)
        self.channels = max(1, channels)
        self.final_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.final_path.parent, 0o700)  # the copilot's own folder: raw interview audio
        self.wav_path = recording_path(self.final_path)
        # Never truncate: a recording left by an earlier run of this session (`--continue`) is
        # appended to, so the final FLAC keeps what was captured before the crash.
        self._wav = _open_for_append(self.final_path, self.channels)
        self._written = self._wav.frames  # frames already in the WAV (all channels)
        self.resumed_frames = self._written
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
        self._wav.append(pcm.tobytes(), n)
        self._written += n

    # -- end of session ----------------------------------------------------------------------
    def finish(self) -> Path | None:
        """Close the WAV, encode it to FLAC atomically, remove the WAV. Returns the FLAC path.

        When this run resumed a kept recording, the FLAC holds all of it, this run's audio after."""
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
        """Stop without encoding. A recording that holds audio of an earlier run is kept for
        recovery; one that holds only this run's audio is removed."""
        self._q.put(_END)
        self._thread.join()
        self._wav.close()
        if self.resumed_frames == 0:
            self.wav_path.unlink(missing_ok=True)


# --- the temporary recording: a PCM16 WAV that is only ever appended to --------------------------

_HEADER = struct.Struct("<4sI4s4sIHHIIHH4sI")  # RIFF .. WAVE fmt(16) data: the 44-byte PCM header


def recording_path(final_path: str | os.PathLike[str]) -> Path:
    """The temporary WAV that a keeper writes beside `final_path` (the session's FLAC)."""
    final_path = Path(final_path)
    return final_path.with_name(f".{final_path.stem}.recording.wav")


class _Wav:
    """A PCM16 WAV opened for appending; the header's sizes are rewritten after every append
    (as `wave` does), so a killed process leaves a file whose header is at most one block stale."""

    def __init__(self, f: BinaryIO, channels: int, frames: int) -> None:
        self.f = f
        self.channels = channels
        self.frames = frames

    @classmethod
    def create(cls, path: Path, channels: int) -> "_Wav":
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        wav = cls(os.fdopen(fd, "r+b"), channels, 0)
        wav._write_header()
        return wav

    @classmethod
    def open_existing(cls, path: Path) -> "_Wav":
        """Open a recording left by an earlier run, repairing a header left stale by a crash."""
        fd = os.open(path, os.O_RDWR)
        f = os.fdopen(fd, "r+b")
        try:
            channels, frames = _read_recording(f, path)
            f.truncate(_HEADER.size + frames * channels * 2)  # drop a half-written last frame
            wav = cls(f, channels, frames)
            wav._write_header()
        except BaseException:
            f.close()
            raise
        return wav

    def _write_header(self) -> None:
        data = self.frames * self.channels * 2
        self.f.seek(0)
        self.f.write(
            _HEADER.pack(
                b"RIFF",
                36 + data,
                b"WAVE",
                b"fmt ",
                16,
                1,
                self.channels,
                SAMPLE_RATE,
                SAMPLE_RATE * self.channels * 2,
                self.channels * 2,
                16,
                b"data",
                data,
            )
        )
        self.f.seek(0, os.SEEK_END)

    def append(self, pcm: bytes, frames: int) -> None:
        self.f.seek(0, os.SEEK_END)
        self.f.write(pcm)
        self.frames += frames
        self._write_header()
        self.f.flush()  # to the OS: a killed process loses nothing it wrote

    def close(self) -> None:
        if not self.f.closed:
            self._write_header()
            self.f.close()


def _read_recording(f: BinaryIO, path: Path) -> tuple[int, int]:
    """(channels, whole frames held) of a keeper's WAV; the frame count comes from the file size."""
    head = f.read(_HEADER.size)
    if len(head) < _HEADER.size:
        return 1, 0  # killed before the header was written: nothing recorded
    riff, _, wave_, fmt, fmt_len, pcm, channels, rate, _, _, bits, data, _ = _HEADER.unpack(head)
    if (riff, wave_, fmt, fmt_len, pcm, rate, bits, data) != (
        b"RIFF",
        b"WAVE",
        b"fmt ",
        16,
        1,
        SAMPLE_RATE,
        16,
        b"data",
    ) or not 1 <= channels <= 8:
        raise CopilotError(f"{path} is not a recording made by the audio keeper; move it away and retry")
    size = f.seek(0, os.SEEK_END)
    return channels, max(0, size - _HEADER.size) // (channels * 2)


def _recording_frames(path: Path) -> tuple[int, int] | None:
    """(channels, frames) of the WAV at `path`, or None when there is none."""
    try:
        with open(path, "rb") as f:
            return _read_recording(f, path)
    except FileNotFoundError:
        return None


def _flac_info(path: Path) -> tuple[int, int] | None:
    """(channels, frames) of a kept FLAC, or None when there is none."""
    if not path.exists():
        return None
    import av

    with av.open(str(path)) as inp:
        stream = inp.streams.audio[0]
        channels = stream.codec_context.channels
        if stream.duration is not None and stream.time_base is not None:
            return channels, int(round(stream.duration * stream.time_base * stream.rate))
        return channels, sum(frame.samples for frame in inp.decode(stream))


def _open_for_append(final_path: Path, channels: int) -> _Wav:
    """The keeper's WAV, holding whatever an earlier run of this session kept (WAV or FLAC)."""
    wav_path = recording_path(final_path)
    held = _recording_frames(wav_path)
    flac = _flac_info(final_path)
    if held is not None and flac is not None and flac[1] > held[1]:
        # A crash while the FLAC was being turned back into a WAV: the FLAC holds more.
        wav_path.unlink()
        held = None
    if held is None and flac is not None:
        _flac_to_wav(final_path, wav_path)
        held = _recording_frames(wav_path)
    if held is None or held[1] == 0:
        return _Wav.create(wav_path, channels)
    if held[0] != channels:
        raise CopilotError(
            f"the audio kept for this session has {held[0]} channel(s) and this run has {channels}; "
            f"continue it with the same sources, or without --keep-audio"
        )
    return _Wav.open_existing(wav_path)


def _flac_to_wav(src: Path, dst: Path) -> None:
    """Decode a kept FLAC into a keeper WAV (atomically: a crash leaves the FLAC as it was)."""
    import av

    with atomic_path(dst) as tmp, av.open(str(src)) as inp:
        stream = inp.streams.audio[0]
        channels = stream.codec_context.channels
        wav = _Wav.create(tmp, channels)
        try:
            resampler = av.AudioResampler(format="s16", layout=stream.layout.name, rate=SAMPLE_RATE)
            for frame in inp.decode(stream):
                for out in resampler.resample(frame):
                    pcm = out.to_ndarray().astype("<i2").tobytes()
                    wav.append(pcm, out.samples)
            for out in resampler.resample(None):
                wav.append(out.to_ndarray().astype("<i2").tobytes(), out.samples)
        finally:
            wav.close()


def recover_recording(final_path: str | os.PathLike[str]) -> Path | None:
    """Encode a recording left by a crash into the session's FLAC and remove it.

    Returns the FLAC when the session has one afterwards. A FLAC that already holds at least as
    much (a crash after the FLAC was written, before the WAV was removed) is kept as it is."""
    final_path = Path(final_path)
    wav_path = recording_path(final_path)
    held = _recording_frames(wav_path)
    if held is None:
        return final_path if final_path.exists() else None
    if held[1] > 0:
        flac = _flac_info(final_path)
        if flac is None or flac[1] < held[1]:
            _Wav.open_existing(wav_path).close()  # a header the decoder can trust
            with atomic_path(final_path) as tmp:  # created 0600
                wav_to_flac(wav_path, tmp)
    wav_path.unlink()
    return final_path if final_path.exists() else None


def recorded_ms(final_path: str | os.PathLike[str]) -> int:
    """How much audio is kept for the session (FLAC or a crash's WAV), in ms, rounded up.

    `--continue` starts the new run's clock no earlier than this, so the kept audio and the
    transcript stay on one timeline."""
    final_path = Path(final_path)
    held = _recording_frames(recording_path(final_path))
    flac = _flac_info(final_path)
    frames = max(held[1] if held else 0, flac[1] if flac else 0)
    return -(-frames * 1000 // SAMPLE_RATE)


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
