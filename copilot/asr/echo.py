"""Echo and crosstalk gate between two channels, before the transcriber.

When the interviewer uses speakers, the call's audio (channel 1, the candidate) leaks into the
microphone (channel 0): a quieter, slightly late, linearly related copy. Transcribed as is, the
candidate's words come out a second time as the interviewer's. This gate cuts each channel into
short blocks aligned on session time and asks, per block: is this channel's audio explained by
the other channel's recent past? It measures the normalized cross-correlation of the block's
window against the other channel at lags 0..`max_lag_ms` (pre-emphasised, so the peak is sharp
and a vowel's pitch does not correlate with itself), and the fitted level of the copy. A block
that is a copy (correlation >= `threshold`) and no louder than its source (fitted gain <=
`max_gain`) is the other channel's leak: it is replaced by silence, so the VAD sees no speech
there. The louder, earlier channel owns correlated speech; when both channels look like a copy of
the other, only the better-explained one is gated. Real double-talk (both speak at once) keeps
both: the leak is a small part of a loud block, so the correlation stays low.

Latency: a block is decided as soon as both channels have delivered it (the other channel's
*past* is all the analysis needs), so the gate adds nothing beyond waiting for the other
channel's chunk of the same time. A channel that has never delivered holds nobody back (mono
input passes through), and a stalled one is waited for at most `max_wait_ms`.

Pure numpy; one batch of FFTs per chunk. It knows nothing of models or servers.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from copilot.audio.base import SAMPLE_RATE, AudioChunk


@dataclass(frozen=True)
class EchoConfig:
    block_ms: int = 20  # decision granularity
    window_ms: int = 40  # analysis window ending at the block's end
    max_lag_ms: int = 100  # how late a leak may be
    threshold: float = 0.6  # |normalized correlation| above which a block is a copy...
    release: float = 0.4  # ...and, while already gating, the level it must fall below to stop
    track: float = 0.9  # a gated block this well explained updates the echo path (lag, gain)
    path_life_s: float = 10.0  # an echo path not seen for this long is forgotten
    relearn_blocks: int = 5  # copy-like blocks in a row at a new lag that replace a known path
    silence: float = 0.99  # a leak block this well explained is silenced; below, the fitted copy is subtracted
    max_gain: float = 1.0  # a leak is no louder than its source (amplitude ratio)
    floor_dbfs: float = -65.0  # blocks quieter than this are left alone (nothing to hear)
    max_wait_ms: int = 500  # how long a lagging (stalled) channel is waited for
    preemphasis: float = 0.95


@dataclass
class EchoStats:
    blocks: int = 0  # blocks decided (per channel pair)
    gated: list[int] = field(default_factory=lambda: [0, 0])  # blocks silenced, per channel
    subtracted: list[int] = field(default_factory=lambda: [0, 0])  # blocks with the copy subtracted
    passthrough_chunks: int = 0  # chunks passed on ungated (one channel only, late data)
    cpu_s: float = 0.0  # time spent deciding


class EchoSuppressor:
    """Feed `AudioChunk`s of two channels (interleaved, any size); get gated chunks back.

    `push` returns the chunks that are ready, in time order per channel; `flush` returns the
    rest at the end of the stream. Chunks of channels other than 0 and 1 pass through.
    """

    def __init__(self, config: EchoConfig | None = None) -> None:
        c = self.config = config or EchoConfig()
        self.block = SAMPLE_RATE * c.block_ms // 1000
        self.window = max(self.block, SAMPLE_RATE * c.window_ms // 1000)
        self.lag = SAMPLE_RATE * c.max_lag_ms // 1000
        self.history = self.window + self.lag + 1  # +1: the pre-emphasis needs the sample before
        self.nfft = _fast_len(self.window + self.lag)
        self.floor = float(10 ** (c.floor_dbfs / 10)) * self.window  # energy of a window at the floor
        self.stats = EchoStats()
        self._base: int | None = None  # session sample index of buffer index 0 (both channels)
        self._buf = [np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.float32)]
        self._len = [0, 0]  # real samples delivered per channel (buffer index)
        self._seen = [0, 0]  # chunks delivered per channel
        self._pos = 0  # buffer index up to which blocks are decided
        self._out = [0, 0]  # buffer index up to which each channel was emitted
        self._speaker = ["", ""]
        self._gating = [False, False]  # this channel is being silenced as the other's leak
        self._onset = [False, False]  # the last block heard looked like a copy (gating starts at two)
        self._gain = [1.0, 1.0]  # gain applied at the end of the last block (for the ramp)
        # The other channel's echo path into this one, as last seen clearly.
        self.path_life = int(c.path_life_s * 1000 / c.block_ms)
        self._path_lag = [0, 0]
        self._path_gain = [0.0, 0.0]
        self._path_age = [self.path_life + 1, self.path_life + 1]  # blocks since it was seen
        self._onset_lag = [-1, -1]
        self._new_lag = [-1, -1]  # a candidate new path (the old one moved) and its run length
        self._new_count = [0, 0]

    # -- public
    def push(self, chunk: AudioChunk) -> list[AudioChunk]:
        ch = chunk.channel
        if ch not in (0, 1):
            self.stats.passthrough_chunks += 1
            return [chunk]
        samples = np.asarray(chunk.samples, dtype=np.float32).reshape(-1)
        start = chunk.start_ms * SAMPLE_RATE // 1000
        if self._base is None:
            self._base = start
        self._speaker[ch] = chunk.speaker
        self._seen[ch] += 1
        out: list[AudioChunk] = []
        begin = start - self._base
        if begin < 0:  # before the session's first sample: nothing to align it with
            samples, begin = samples[-begin:], 0
        late = self._store(ch, begin, samples)
        if late is not None:  # audio for a time already decided: on as it is
            self.stats.passthrough_chunks += 1
            out.append(late)
        out.extend(self._advance(final=False))
        return out

    def flush(self) -> list[AudioChunk]:
        return self._advance(final=True)

    def process(self, x: np.ndarray, chunk_ms: int = 100) -> np.ndarray:
        """Gate a whole (2, n) recording (offline use: kept audio, tests); returns a new array."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[0] != 2:
            raise ValueError(f"expected audio of shape (2, n), got {x.shape}")
        out = np.zeros_like(x)
        step = SAMPLE_RATE * chunk_ms // 1000
        pieces: list[AudioChunk] = []
        for i in range(0, x.shape[1], step):
            for ch in (0, 1):
                pieces += self.push(AudioChunk(x[ch, i : i + step], ch, str(ch), i * 1000 // SAMPLE_RATE))
        pieces += self.flush()
        for p in pieces:
            a = p.start_ms * SAMPLE_RATE // 1000
            out[p.channel, a : a + len(p.samples)] = p.samples
        return out

    # -- buffering
    def _store(self, ch: int, begin: int, samples: np.ndarray) -> AudioChunk | None:
        """Put samples at buffer index `begin`; returns the part before `_pos`, already decided."""
        end = begin + len(samples)
        buf = self._buf[ch]
        if end > len(buf):
            grown = np.zeros(max(end, 2 * len(buf)), dtype=np.float32)
            grown[: len(buf)] = buf
            buf = self._buf[ch] = grown
        late = None
        keep_from = max(begin, self._out[ch])  # never emit a time twice
        if keep_from < self._pos and keep_from < end:
            a, b = keep_from, min(end, self._pos)
            late = self._chunk(ch, a, samples[a - begin : b - begin].copy())
            self._out[ch] = max(self._out[ch], b)
        buf[begin:end] = samples
        self._len[ch] = max(self._len[ch], end)
        return late

    def _ready_end(self, final: bool) -> int:
        """Buffer index up to which blocks can be decided now."""
        lens = self._len
        if final:
            return max(lens)
        end, lead = min(lens), max(lens)
        wait = SAMPLE_RATE * self.config.max_wait_ms // 1000
        for ch in (0, 1):
            if self._seen[ch] == 0 and self._seen[1 - ch] >= 2:
                end = lead  # never heard from (mono input): holds nobody back
            elif lead - lens[ch] > wait:
                end = max(end, lead - wait)  # stalled: waited for `max_wait_ms`, then taken as silence
        return end

    def _advance(self, final: bool) -> list[AudioChunk]:
        end = self._ready_end(final)
        n_blocks = (end - self._pos) // self.block
        if final and end > self._pos + n_blocks * self.block:
            n_blocks += 1  # the ragged tail is decided as a (zero-padded) block
        if n_blocks <= 0:
            return []
        t0 = time.perf_counter()
        stop = self._pos + n_blocks * self.block
        for ch in (0, 1):
            if len(self._buf[ch]) < stop:
                grown = np.zeros(stop, dtype=np.float32)
                grown[: len(self._buf[ch])] = self._buf[ch]
                self._buf[ch] = grown
        gains, subtract = self._decide(self._pos, n_blocks)
        clean = [self._buf[ch][self._pos : stop].copy() for ch in (0, 1)]
        for ch, i, lag, g in subtract:
            s = self._pos + i * self.block
            if s - lag >= 0:
                block = clean[ch][i * self.block : (i + 1) * self.block]
                residual = block - g * self._buf[1 - ch][s - lag : s - lag + self.block]
                # Taking out a true copy only ever lowers the energy; a wrong estimate would add
                # the other voice, so it is not applied.
                if np.dot(residual, residual) < np.dot(block, block):
                    block[:] = residual
        out = []
        for ch in (0, 1):
            a = max(self._out[ch], self._pos)
            b = min(stop, max(self._len[ch], a))  # only what the channel really delivered
            if b > a:
                seg = (clean[ch] * self._gain_curve(ch, gains[ch]))[a - self._pos : b - self._pos]
                out.append(self._chunk(ch, a, seg.astype(np.float32)))
                self._out[ch] = b
            self._gain[ch] = float(gains[ch][-1])
        self._pos = stop
        self._trim()
        self.stats.cpu_s += time.perf_counter() - t0
        return out

    def _trim(self) -> None:
        drop = self._pos - self.history
        if drop >= 4 * SAMPLE_RATE and all(o >= self._pos for o, s in zip(self._out, self._seen) if s):
            assert self._base is not None
            for ch in (0, 1):
                self._buf[ch] = self._buf[ch][drop:].copy()
                self._len[ch] = max(0, self._len[ch] - drop)
                self._out[ch] = max(0, self._out[ch] - drop)
            self._pos -= drop
            self._base += drop

    def _chunk(self, ch: int, index: int, samples: np.ndarray) -> AudioChunk:
        assert self._base is not None
        return AudioChunk(samples, ch, self._speaker[ch] or str(ch), (self._base + index) * 1000 // SAMPLE_RATE)

    def _gain_curve(self, ch: int, block_gains: np.ndarray) -> np.ndarray:
        """Per-sample gain: each block's gain, with a 2 ms ramp where it changes (no clicks)."""
        curve = np.repeat(block_gains.astype(np.float32), self.block)
        ramp = SAMPLE_RATE * 2 // 1000
        prev = self._gain[ch]
        for i, g in enumerate(block_gains):
            if g != prev:
                s = i * self.block
                curve[s : s + ramp] = np.linspace(prev, g, ramp, dtype=np.float32)
            prev = g
        return curve

    # -- the decision
    def _windows(self, ch: int, pos: int, n_blocks: int, length: int) -> np.ndarray:
        """(n_blocks, length) pre-emphasised windows of channel `ch` ending at each block's end."""
        buf = self._buf[ch]
        first_end = pos + self.block
        lo = first_end - length - 1
        pad = max(0, -lo)
        seg = buf[max(0, lo) : pos + n_blocks * self.block]
        if pad:
            seg = np.concatenate([np.zeros(pad, dtype=np.float32), seg])
        emph = seg[1:] - self.config.preemphasis * seg[:-1]
        idx = np.arange(n_blocks)[:, None] * self.block + np.arange(length)[None, :]
        return emph[idx]

    def _decide(self, pos: int, n_blocks: int) -> tuple[list[np.ndarray], list[tuple[int, int, int, float]]]:
        """Gain per block and channel (0 where the block is the other channel's leak, else 1), and
        the blocks from which the fitted copy is subtracted: (channel, block, lag, gain)."""
        c = self.config
        self.stats.blocks += n_blocks
        ones = [np.ones(n_blocks, dtype=np.float32), np.ones(n_blocks, dtype=np.float32)]
        subtract: list[tuple[int, int, int, float]] = []
        if min(self._seen) == 0:
            return ones, subtract  # one channel only: nothing can leak
        W, L = self.window, self.lag
        rho = np.zeros((2, n_blocks))
        gain = np.zeros((2, n_blocks))  # fitted amplitude of the copy (signed: polarity may flip)
        lag = np.zeros((2, n_blocks), dtype=np.int64)
        energy = np.zeros((2, n_blocks))
        wins = [self._windows(ch, pos, n_blocks, W) for ch in (0, 1)]
        for ch in (0, 1):
            energy[ch] = np.einsum("ij,ij->i", wins[ch], wins[ch])
        # Only blocks with something to hear are analysed (most of a conversation is one voice or
        # none, so this skips most of the FFT work).
        rows = np.flatnonzero((energy > self.floor).any(axis=0))
        if len(rows):
            refs = [self._windows(ch, pos, n_blocks, W + L)[rows] for ch in (0, 1)]
            spec_r = [np.fft.rfft(r, self.nfft, axis=1) for r in refs]
            for ch in (0, 1):
                other = 1 - ch
                a, r = wins[ch][rows], refs[other]
                # xc[:, j] = sum_n r[j + n] a[n]: the other channel `L - j` samples earlier.
                xc = np.fft.irfft(spec_r[other] * np.conj(np.fft.rfft(a, self.nfft, axis=1)), self.nfft, axis=1)[
                    :, : L + 1
                ]
                c2 = np.zeros((len(rows), W + L + 1))
                np.cumsum(r * r, axis=1, out=c2[:, 1:])
                er = c2[:, W : W + L + 1] - c2[:, : L + 1]
                norm = np.abs(xc) / np.sqrt(energy[ch, rows][:, None] * er + 1e-12)
                j = np.argmax(norm, axis=1)
                k = np.arange(len(rows))
                rho[ch, rows] = norm[k, j]
                gain[ch, rows] = xc[k, j] / (er[k, j] + 1e-12)
                lag[ch, rows] = L - j
        gains = ones
        for i in range(n_blocks):
            quiet = [bool(energy[ch, i] <= self.floor) for ch in (0, 1)]
            copy = [False, False]
            for ch in (0, 1):
                thr = c.release if self._gating[ch] else c.threshold
                copy[ch] = bool(not quiet[ch] and rho[ch, i] >= thr and abs(gain[ch, i]) <= c.max_gain)
                if copy[ch] and self._gating[ch] and abs(int(lag[ch, i]) - self._onset_lag[ch]) > 16:
                    copy[ch] = False  # a leak keeps its lag: a jump is a chance likeness, not the leak
                if copy[ch] and self._path_age[ch] <= self.path_life and abs(int(lag[ch, i]) - self._path_lag[ch]) > 16:
                    # Off the known echo path: a chance likeness of two voices, unless the path
                    # really moved, which then holds for `relearn_blocks` at the new lag.
                    if abs(int(lag[ch, i]) - self._new_lag[ch]) <= 16:
                        self._new_count[ch] += 1
                    else:
                        self._new_lag[ch], self._new_count[ch] = int(lag[ch, i]), 1
                    if self._new_count[ch] < c.relearn_blocks:
                        copy[ch] = False
                    else:
                        self._path_age[ch] = self.path_life + 1
            if copy[0] and copy[1]:  # each looks like the other's copy: the better-explained one is
                copy[int(rho[0, i] >= rho[1, i])] = False
            for ch in (0, 1):
                if quiet[ch]:
                    pass  # nothing to hear: the state carries over the pauses between words
                elif not copy[ch]:
                    self._gating[ch] = self._onset[ch] = False
                elif not self._gating[ch]:
                    # A leak is speech, hundreds of ms long: gating starts at its second copy-like
                    # block at the same lag, so one chance match (a window with a few ms of
                    # signal) gates nothing.
                    same_lag = abs(int(lag[ch, i]) - self._onset_lag[ch]) <= 16
                    self._gating[ch], self._onset[ch] = self._onset[ch] and same_lag, True
                    self._onset_lag[ch] = int(lag[ch, i])
                self._path_age[ch] += 1
                if self._gating[ch] and rho[ch, i] >= c.track:
                    # A clean look at the leak: remember its path (lag, gain), which stays put
                    # while the same speakers and room are in the call.
                    same = self._path_age[ch] <= self.path_life and abs(int(lag[ch, i]) - self._path_lag[ch]) <= 16
                    self._path_gain[ch] = 0.8 * self._path_gain[ch] + 0.2 * gain[ch, i] if same else gain[ch, i]
                    self._path_lag[ch] = int(lag[ch, i])
                    self._path_age[ch] = 0
                if self._gating[ch] and rho[ch, i] >= c.silence:
                    gains[ch][i] = 0.0
                    self.stats.gated[ch] += 1
                elif not quiet[ch] and self._path_age[ch] <= self.path_life:
                    # Partly explained, or both talk: take out the copy along the path last seen
                    # clearly and keep the rest, so the near speaker's sounds are not cut away (a
                    # fit on this block alone would be biased by the near speaker).
                    subtract.append((ch, i, self._path_lag[ch], self._path_gain[ch]))
                    self.stats.subtracted[ch] += 1
                elif self._gating[ch] and not quiet[ch]:
                    # No clear look at the path yet: this block's own fit.
                    subtract.append((ch, i, int(lag[ch, i]), float(gain[ch, i])))
                    self.stats.subtracted[ch] += 1
        return gains, subtract


def _fast_len(n: int) -> int:
    """The smallest 2^a 3^b 5^c >= n (pocketfft is fast on these)."""
    best = 1 << int(np.ceil(np.log2(n)))
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best
