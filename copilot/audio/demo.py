"""The bundled demo interview: a stereo espeak-ng recording and its script (package data).

Left channel = interviewer, right channel = candidate, 16 kHz FLAC, about 76 s: a senior
system-design snippet in which the candidate gathers requirements, weighs two options, commits to
a direction and pushes back on a suggestion. Regenerate with `scripts/make_demo_audio.py`.

`DEMO_SCRIPT` is the list of turns, each a dict `{"speaker", "channel", "text", "start_ms",
"end_ms", "tags"}` (times of the speech in the file; `tags` = the rubric moments the turn was
written to show). `DEMO_INFO` is the whole JSON (title, speakers, duration_ms, voices, turns).
"""

from __future__ import annotations

import json
from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo_data"
DEMO_AUDIO = DEMO_DIR / "demo_interview.flac"
DEMO_SCRIPT_PATH = DEMO_DIR / "demo_interview.json"

DEMO_INFO: dict = json.loads(DEMO_SCRIPT_PATH.read_text())
DEMO_SCRIPT: list[dict] = DEMO_INFO["turns"]
DEMO_SPEAKERS: list[str] = DEMO_INFO["speakers"]
DEMO_TITLE: str = DEMO_INFO["title"]
