#!/usr/bin/env python3
"""Regenerate the bundled demo interview: copilot/audio/demo_data/demo_interview.{flac,json}.

A senior system-design interview snippet spoken by two espeak-ng voices (interviewer en-us on the
left channel, candidate en-gb-x-rp on the right), 16 kHz stereo FLAC, with the script and the
times of every turn in the JSON beside it. `tags` in the JSON are the rubric moments each turn
was written to show (what a good tagger should find), not the output of any tagger.

    .venv/bin/python scripts/make_demo_audio.py      # needs espeak-ng and sox

Deterministic: the same espeak-ng/sox versions give the same file (sox dithering is off).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.synth import espeak_dialogue  # noqa: E402  (the same synthesis the tests use)

OUT = REPO / "copilot" / "audio" / "demo_data"
I, C = "interviewer", "candidate"
RG, TA, SD = "requirement_gathering", "tradeoff_articulation", "steering_decision"

TURNS: list[tuple[str, str, list[str]]] = [
    (I, "Thanks for joining. Today I'd like you to design a notification service for our mobile app.", []),
    (C, "Sounds good. Before I start, who sends these notifications, and roughly how many go out per day?", [RG]),
    (I, "About ten million daily users. Marketing sends a few campaigns a day, and the app sends password resets.", []),
    (C, "Should password resets arrive within seconds, while campaigns can wait a few minutes?", [RG]),
    (I, "Yes, resets should be fast. Campaigns can wait.", []),
    (
        C,
        "The first option is one shared queue with priorities. It is simpler to run, but a large campaign can "
        "still delay a reset. The second option is separate queues. They cost more to operate, but they isolate "
        "the two workloads.",
        [TA],
    ),
    (I, "Okay.", []),
    (C, "I'll go with two separate queues. I'm going to skip weekly reports for now.", [SD]),
    (I, "Could we just check the database every minute instead?", []),
    (
        C,
        "I would push back on that idea. Checking every minute adds up to a minute of delay for each reset, so "
        "I would keep the queues and check the database only for scheduled campaigns.",
        [SD, TA],
    ),
    (I, "That makes sense. Let's move on to storage.", []),
    (C, "Sure. Let me sketch the data model first.", []),
]
# Clear voices for Whisper (measured tiny.en WER on these lines: en-gb-x-rp 0.15-0.18, en-gb+m3 0.15-0.23).
VOICES = {I: "en-us", C: "en-gb-x-rp"}
GAPS = [1.0, 0.8, 1.2, 0.7, 1.5, 0.6, 1.1, 0.9, 1.3, 0.8, 1.0]


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    tmp = OUT / ".demo_interview.tmp.flac"
    ref = espeak_dialogue([(s, t) for s, t, _ in TURNS], tmp, stereo=True, gap_s=GAPS, wpm=155, voices=VOICES)
    for turn, (_, _, tags) in zip(ref, TURNS):
        turn["tags"] = tags
    duration_ms = ref[-1]["end_ms"] + 500
    script = {
        "title": "Demo: system design interview (notification service)",
        "audio": "demo_interview.flac",
        "sample_rate": 16000,
        "channels": {"0": I, "1": C},
        "speakers": [I, C],
        "duration_ms": duration_ms,
        "voices": {s: f"espeak-ng {v}" for s, v in VOICES.items()},
        "wpm": 155,
        "turns": ref,
    }
    json_tmp = OUT / ".demo_interview.tmp.json"
    json_tmp.write_text(json.dumps(script, indent=1) + "\n")
    os.replace(tmp, OUT / "demo_interview.flac")
    os.replace(json_tmp, OUT / "demo_interview.json")
    size = (OUT / "demo_interview.flac").stat().st_size
    print(f"wrote {OUT / 'demo_interview.flac'} ({duration_ms / 1000:.1f} s, {size / 1e6:.2f} MB) and its .json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
