"""WER of a session's live turns against the same turns after `copilot sessions refine`.

    .venv/bin/python scripts/refine_wer.py --demo [--model base] [--speed 4]
    .venv/bin/python scripts/refine_wer.py FILE --ref "left channel text" --ref "right channel text"

Replays the file as a user would (`copilot replay --keep-audio`, live model tiny.en), refines the
session (`copilot sessions refine --model MODEL`), then scores each channel's turns, joined in time
order, against its reference (jiwer, lowercase, punctuation removed), for revision 0 (live) and
the latest revision (refined). Prints one JSON object. A measurement, not a test.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def copilot(*args: str) -> subprocess.CompletedProcess[str]:
    out = subprocess.run([sys.executable, "-m", "copilot", *args], cwd=REPO, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"copilot {' '.join(args)} failed: {out.stderr.strip()[-2000:]}")
    return out


def main() -> int:
    from copilot.bench.asr import word_errors
    from copilot.events import Turn
    from copilot.session.store import SessionStore

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("file", nargs="?")
    p.add_argument("--demo", action="store_true", help="the bundled demo interview and its script")
    p.add_argument("--ref", action="append", default=[], help="reference text, one per channel in order")
    p.add_argument("--model", default="base")
    p.add_argument("--live-model", default="tiny.en")
    p.add_argument("--speed", type=float, default=4.0)
    args = p.parse_args()
    if args.demo:
        from copilot.audio.demo import DEMO_AUDIO, DEMO_SCRIPT

        path = Path(DEMO_AUDIO)
        refs = [" ".join(t["text"] for t in DEMO_SCRIPT if t["channel"] == ch) for ch in (0, 1)]
    else:
        path, refs = Path(args.file), args.ref
    with tempfile.TemporaryDirectory(prefix="refine-wer-") as tmp:
        out = copilot(
            "replay",
            str(path),
            "--keep-audio",
            "--exit-when-done",
            "--no-browser",
            "--speed",
            str(args.speed),
            "--model",
            args.live_model,
            "--data-dir",
            tmp,
        )
        sid = re.search(r"COPILOT_SESSION=(\S+)", out.stdout).group(1)
        t0 = time.perf_counter()
        summary = copilot("sessions", "refine", sid, "--model", args.model, "--data-dir", tmp).stdout.strip()
        refine_s = time.perf_counter() - t0
        with SessionStore(tmp) as store:
            turns = [Turn.model_validate(e.data) for e in store.events(sid) if e.type == "turn.final"]
    live = [t for t in turns if t.revision == 0]
    latest: dict[str, Turn] = {}
    for t in turns:
        if t.id not in latest or t.revision > latest[t.id].revision:
            latest[t.id] = t

    def score(ts: list[Turn]) -> float:
        errs = n = 0
        for ch, ref in enumerate(refs):
            text = " ".join(t.text for t in sorted(ts, key=lambda t: t.start_ms) if t.channel == ch)
            e, k = word_errors(ref, text)
            errs, n = errs + e, n + k
        return round(errs / max(1, n), 3)

    print(
        json.dumps(
            {
                "file": str(path),
                "live_model": args.live_model,
                "model": args.model,
                "turns": len(live),
                "live_turn_wer": score(live),
                "refined_turn_wer": score(list(latest.values())),
                "refine_s": round(refine_s, 1),
                "summary": summary,
            },
            indent=1,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
