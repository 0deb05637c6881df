"""Synthetic speech for tests: espeak-ng voices assembled into a dialogue (deterministic).

`espeak_dialogue([("interviewer", "..."), ("candidate", "..."), ...], path)` writes a 16 kHz
file (stereo: one speaker per channel, in order of first appearance; or mono) and returns the
reference turns with the times where each turn's speech really is in the file:
`[{"speaker", "channel", "text", "start_ms", "end_ms"}, ...]`.

espeak-ng renders each turn (22.05 kHz), sox resamples it to 16 kHz, numpy lays the turns out
with `gap_s` of silence between them, and the result is written as WAV (or converted by sox to
whatever the suffix names: .flac, .ogg, ...).
"""

from __future__ import annotations

import subprocess
import tempfile
import wave
from pathlib import Path
from typing import Sequence

import numpy as np

RATE = 16_000
VOICES = ("en-us", "en-gb+m3")  # two clearly different voices, both transcribed well by Whisper
LEAD_IN_S = 0.3
SILENCE = 1e-3  # below this |sample| counts as the silence espeak pads each utterance with


def _run(cmd: Sequence[str]) -> None:
    proc = subprocess.run(list(cmd), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed: {proc.stderr.strip()}")


def render(text: str, voice: str = VOICES[0], wpm: int = 165) -> np.ndarray:
    """One utterance as 16 kHz float32 mono, leading/trailing silence trimmed."""
    with tempfile.TemporaryDirectory(prefix="espeak-") as tmp:
        raw, res = Path(tmp) / "raw.wav", Path(tmp) / "16k.wav"
        _run(["espeak-ng", "-v", voice, "-s", str(wpm), "-w", str(raw), text])
        _run(["sox", "-D", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(res)])
        x = read_wav(res)[0]
    voiced = np.flatnonzero(np.abs(x) > SILENCE)
    return x[voiced[0] : voiced[-1] + 1] if len(voiced) else x


def read_wav(path: str | Path) -> np.ndarray:
    """A 16-bit PCM WAV as float32 (channels, n)."""
    with wave.open(str(path), "rb") as w:
        n_ch = w.getnchannels()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    return data.reshape(-1, n_ch).T.astype(np.float32) / 32768.0


def write_audio(x: np.ndarray, path: str | Path, rate: int = RATE) -> Path:
    """float32 (channels, n) -> 16-bit file; any suffix sox knows (WAV written directly)."""
    path = Path(path)
    x = np.atleast_2d(x)
    pcm = (np.clip(x, -1, 1) * 32767).round().astype("<i2").T.copy()
    target = path if path.suffix.lower() == ".wav" else path.with_name(path.stem + ".tmp.wav")
    with wave.open(str(target), "wb") as w:
        w.setnchannels(x.shape[0])
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm.tobytes())
    if target != path:
        try:
            _run(["sox", "-D", str(target), str(path)])
        finally:
            target.unlink(missing_ok=True)
    return path


def espeak_dialogue(
    turns: Sequence[tuple[str, str]],
    path: str | Path,
    stereo: bool = True,
    gap_s: float | Sequence[float] = 0.8,
    voices: dict[str, str] | None = None,
    tail_s: float = 0.5,
    wpm: int = 165,
) -> list[dict]:
    """Write a dialogue to `path`; return the reference turns with their times (ms).

    `gap_s` is the silence between turns: one value, or one per gap (cycled if shorter).
    """
    order: list[str] = []
    for speaker, _ in turns:
        if speaker not in order:
            order.append(speaker)
    voices = dict(voices or {})
    for i, speaker in enumerate(order):
        voices.setdefault(speaker, VOICES[i % len(VOICES)])
    pieces = [render(text, voices[speaker], wpm) for speaker, text in turns]
    gap_list = [gap_s] if isinstance(gap_s, (int, float)) else list(gap_s)
    gaps = [int(gap_list[i % len(gap_list)] * RATE) for i in range(max(len(pieces) - 1, 0))] + [0]
    total = int(LEAD_IN_S * RATE) + sum(len(p) for p in pieces) + sum(gaps) + int(tail_s * RATE)
    channels = len(order) if stereo else 1
    out = np.zeros((channels, total), dtype=np.float32)
    ref = []
    pos = int(LEAD_IN_S * RATE)
    for (speaker, text), piece, gap in zip(turns, pieces, gaps):
        ch = order.index(speaker) if stereo else 0
        out[ch, pos : pos + len(piece)] += piece
        ref.append(
            {
                "speaker": speaker,
                "channel": ch,
                "text": text,
                "start_ms": pos * 1000 // RATE,
                "end_ms": (pos + len(piece)) * 1000 // RATE,
            }
        )
        pos += len(piece) + gap
    write_audio(out, path)
    return ref


def espeak_say(
    text: str, path: str | Path, voice: str = VOICES[0], lead_in_s: float = 0.3, tail_s: float = 0.3
) -> dict:
    """One voice saying `text` into a mono 16 kHz file; returns its reference turn."""
    piece = render(text, voice)
    lead, tail = int(lead_in_s * RATE), int(tail_s * RATE)
    x = np.zeros((1, lead + len(piece) + tail), dtype=np.float32)
    x[0, lead : lead + len(piece)] = piece
    write_audio(x, path)
    return {
        "speaker": "speaker",
        "channel": 0,
        "text": text,
        "start_ms": lead * 1000 // RATE,
        "end_ms": (lead + len(piece)) * 1000 // RATE,
    }
