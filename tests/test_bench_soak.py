"""`copilot bench soak`, briefly (issue 11): a couple of minutes of looped audio through the live
pipeline with 5 websocket clients (one slow), and its report says nothing was lost."""

from __future__ import annotations

import json

import numpy as np
import pytest

from copilot.audio.base import SAMPLE_RATE
from copilot.bench.soak import LoopSource, slope_per_hour
from tests.conftest import run_copilot


def test_loop_source_plays_files_round_on_one_clock(tmp_path):
    import subprocess

    mono = tmp_path / "m.wav"
    stereo = tmp_path / "s.wav"
    subprocess.run(["sox", "-D", "-n", "-r", "16000", "-c", "1", str(mono), "synth", "0.5", "sine", "300"], check=True)
    subprocess.run(
        ["sox", "-D", "-n", "-r", "8000", "-c", "2", str(stereo), "synth", "0.3", "sine", "200", "sine", "900"],
        check=True,
    )
    src = LoopSource([mono, stereo], total_ms=5000, realtime=False, gap_ms=200)
    chunks = list(src.chunks())
    assert src.speakers == ["interviewer", "candidate"]
    assert [c.channel for c in chunks[:4]] == [0, 1, 0, 1]
    starts = [c.start_ms for c in chunks[::2]]
    assert starts == sorted(starts) and starts[0] == 0
    per_channel = [np.concatenate([c.samples for c in chunks if c.channel == ch]) for ch in (0, 1)]
    assert len(per_channel[0]) == len(per_channel[1]) == 5 * SAMPLE_RATE  # stops at the requested length
    # The mono file alternates channels lap by lap; the other channel is silent meanwhile.
    first = per_channel[0][: SAMPLE_RATE // 2]
    assert np.abs(first).max() > 0.3 and np.abs(per_channel[1][: SAMPLE_RATE // 2]).max() == 0
    assert src.laps >= 2


def test_slope_per_hour():
    assert slope_per_hour([0, 1800, 3600], [100, 110, 120]) == pytest.approx(20)
    assert slope_per_hour([5], [1]) is None


@pytest.mark.slow
@pytest.mark.audio
def test_soak_smoke_nothing_lost(tmp_path):
    proc = run_copilot(
        "bench",
        "soak",
        "--hours",
        "0.02",  # 72 s of audio: most of the demo interview
        "--speed",
        "6",
        "--sample-s",
        "10",
        "--stall-s",
        "1",
        "--json",
        data=tmp_path / "data",
        timeout=240,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout)
    assert r["audio_s"] == pytest.approx(72, abs=0.2)
    assert r["clients"] == 5 and len(r["received"]) == 5 and r["received"][0]["slow"]
    assert r["nothing_lost"] and r["lost"]["seqs_contiguous"] and r["lost"]["clients_complete"]
    assert r["events"]["segments"] > 5 and r["events"]["turns"] > 2 and r["events"]["tags"] > 0
    assert r["events"]["by_type"]["segment.final"] == r["events"]["segments"]
    stored = r["events"]["stored"]
    assert all(c["distinct"] == stored and c["duplicates"] == 0 for c in r["received"])
    assert len(r["samples"]) >= 6 and all(s["rss_mb"] > 50 for s in r["samples"])
    assert r["store_mb"] > 0 and r["speed_achieved"] > 0.5
    assert set(r["pass"]) == {"rss_growth_mb_per_audio_h", "asr_lag_growth_s", "nothing_lost"}
