"""RSS while decoding utterances of many lengths (issue: soak RSS grows in steps).

Decodes N slices (1-12 s) of a real file with `transcribe_utterance`, each a random length,
and prints the process RSS every `--every` decodes with the number of distinct encoder input
lengths used so far. The engine caps oneDNN's primitive cache when it loads the model
(`engine.bound_onednn_cache`); ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 (oneDNN's default) in the
environment restores the old behaviour. See docs/asr.md for figures.

    .venv/bin/python scripts/asr_shape_rss.py --n 300 --every 30       # bounded
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 .venv/bin/python scripts/asr_shape_rss.py --n 300 --every 30
    ONEDNN_PRIMITIVE_CACHE_CAPACITY=1024 .venv/bin/python scripts/asr_shape_rss.py --lengths 5
"""

from __future__ import annotations

import argparse
import os
import random
import time

import numpy as np


def rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def load_audio(path: str) -> np.ndarray:
    from copilot.audio.decode import decode_audio

    return np.ascontiguousarray(decode_audio(path, mono=True).samples[0])


def main_with(args) -> None:
    from copilot.asr.engine import load_model, transcribe_utterance

    audio = load_audio(args.file)
    model = load_model("tiny.en", "cpu")
    rng = random.Random(args.seed)
    fixed = [rng.randint(16000, 12 * 16000) for _ in range(args.lengths)] if args.lengths else None
    print(f"oneDNN cache capacity {os.environ.get('ONEDNN_PRIMITIVE_CACHE_CAPACITY')}", flush=True)
    print(f"start rss {rss_mb():.0f} MB, audio {len(audio) / 16000:.0f} s", flush=True)
    frames: set[int] = set()
    t0 = time.time()
    for i in range(1, args.n + 1):
        n = rng.choice(fixed) if fixed else rng.randint(16000, 12 * 16000)
        start = rng.randint(0, len(audio) - n - 1)
        r = transcribe_utterance(model, audio[start : start + n])
        frames.add(r.encoder_frames)
        if i % args.every == 0:
            print(
                f"{i:5d} decodes  rss {rss_mb():7.1f} MB  distinct shapes {len(frames):4d}  {time.time() - t0:6.1f} s",
                flush=True,
            )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--file", default="copilot/audio/demo_data/demo_interview.flac")
    p.add_argument("--n", type=int, default=400)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--lengths", type=int, default=0, help="only this many distinct lengths (0 = any)")
    p.add_argument("--seed", type=int, default=1)
    main_with(p.parse_args())


if __name__ == "__main__":
    main()
