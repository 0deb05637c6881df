"""`copilot bench pipeline`: the live path measured where the interviewer sees it, at websocket clients.

Runs `copilot replay` (real-time pace, tiny.en, rules tagger) as a separate process, exactly as a
user would, connects N websocket clients to its session and measures:
- end of utterance -> final segment at a client: the reference end of each spoken turn (the demo's
  script gives it; for another file, the segment's last word) placed on the wall clock with the
  session's `audio_clock` control event, to the moment the turn's last segment arrives;
- segment -> its tags: the arrival of a `tag.proposed` minus the arrival of its segment;
- fan-out: for every stored event and every client, arrival time minus the event's creation time.
Targets (2-core CPU, tiny.en): latency median <= 1.5 s and p95 <= 3 s, tags median <= 100 ms,
fan-out p95 <= 100 ms with 50 clients.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from copilot.asr.options import add_asr_arguments
from copilot.bench.asr import percentile
from copilot.errors import CopilotError

# `copilot` imports this module to register `bench pipeline`, so what only a run needs is
# imported in the functions below: pydantic's events alone took `import copilot.cli` from
# 0.14 s to 2.3 s here (python -X importtime), the root (FastAPI, spaCy, the recognizer) seconds more.

TARGETS = {
    "utterance_to_segment_median_s": 1.5,
    "utterance_to_segment_p95_s": 3.0,
    "segment_to_tags_median_ms": 100.0,
    "fanout_p95_ms": 100.0,
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--file", default=None, help="recording to replay (default: the bundled demo interview)")
    p.add_argument("--speed", type=float, default=1.0, help="replay pace (default real time)")
    p.add_argument("--clients", type=int, default=50, help="websocket clients on the session (default 50)")
    add_asr_arguments(p, device_flag="--asr-device")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument(
        "--fanout-events",
        type=int,
        default=200,
        help="events for the isolated fan-out run (no ASR running; default %(default)s)",
    )


def _demo() -> tuple[Path, list[dict[str, Any]] | None]:
    from copilot.audio.demo import DEMO_AUDIO, DEMO_SCRIPT

    return Path(DEMO_AUDIO), list(DEMO_SCRIPT)


def _summary(xs: list[float]) -> dict[str, float | int]:
    return {
        "n": len(xs),
        "median": statistics.median(xs) if xs else float("nan"),
        "p95": percentile(xs, 0.95),
        "max": max(xs) if xs else float("nan"),
    }


async def _client(url: str, sink: list[tuple[float, dict[str, Any]]], done: asyncio.Event) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=2**22, open_timeout=30) as ws:
        async for raw in ws:
            t = time.time()
            sink.append((t, json.loads(raw)))
            msg = sink[-1][1]
            if msg["type"] == "session.ended":
                done.set()
                return


async def _measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.file:
        path, turns = Path(args.file), None
    else:
        path, turns = _demo()
    token = "bench-" + os.urandom(8).hex()
    with tempfile.TemporaryDirectory(prefix="copilot-bench-") as data:
        sinks = await _replay_with_clients(args, path, token, data)
    return _analyse(sinks, turns, args.speed, path)


async def _replay_with_clients(
    args: argparse.Namespace, path: Path, token: str, data: str
) -> list[list[tuple[float, dict[str, Any]]]]:
    cmd = [
        sys.executable,
        "-m",
        "copilot",
        "replay",
        str(path),
        "--no-browser",
        "--exit-when-done",
        "--speed",
        str(args.speed),
        "--data-dir",
        data,
        "--model",
        args.model,
        "--asr-device",
        args.asr_device,
    ]
    if args.compute_type:
        cmd += ["--compute-type", args.compute_type]
    proc = await asyncio.create_subprocess_exec(
        *cmd, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env={**os.environ, "COPILOT_TOKEN": token}
    )
    values: dict[str, str] = {}
    assert proc.stdout is not None
    while "COPILOT_PORT" not in values or "COPILOT_SESSION" not in values:
        line = await asyncio.wait_for(proc.stdout.readline(), 120)
        if not line:
            err = (await proc.stderr.read()).decode() if proc.stderr else ""
            raise RuntimeError(f"replay exited early: {err.strip()[-500:]}")
        key, _, value = line.decode().strip().partition("=")
        values[key] = value
    sid, port = values["COPILOT_SESSION"], values["COPILOT_PORT"]
    url = f"ws://127.0.0.1:{port}/ws/sessions/{sid}?after=0&token={token}"
    sinks: list[list[tuple[float, dict[str, Any]]]] = [[] for _ in range(args.clients)]
    dones = [asyncio.Event() for _ in range(args.clients)]
    tasks = [asyncio.create_task(_client(url, s, d)) for s, d in zip(sinks, dones)]
    drain = asyncio.create_task(proc.stdout.read())
    assert proc.stderr is not None
    drain_err = asyncio.create_task(proc.stderr.read())  # a full pipe would stall the replay
    try:
        await asyncio.wait_for(asyncio.gather(*(d.wait() for d in dones)), timeout=3600)
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await proc.wait()
        drain.cancel()
        drain_err.cancel()
    return sinks


def _analyse(
    sinks: list[list[tuple[float, dict[str, Any]]]], turns: list[dict[str, Any]] | None, speed: float, path: Path
) -> dict[str, Any]:
    first = sinks[0]
    t0 = next(
        (m["data"]["audio_t0"] for _, m in first if m["type"] == "control" and m["data"].get("kind") == "audio_clock"),
        None,
    )
    if t0 is None:
        raise RuntimeError("the session never reported its audio clock")
    seg_arrival: dict[str, float] = {}
    segments: list[dict[str, Any]] = []
    for t, m in first:
        if m["type"] == "segment.final":
            seg_arrival[m["data"]["id"]] = t
            segments.append(m["data"])
    # End of utterance -> final segment.
    utt: list[float] = []
    if turns:
        for turn in turns:
            mine = [
                s
                for s in segments
                if s["speaker"] == turn["speaker"]
                and s["start_ms"] < turn["end_ms"] + 500
                and s["end_ms"] > turn["start_ms"] - 500
            ]
            if not mine:
                continue
            last = max(mine, key=lambda s: seg_arrival[s["id"]])
            utt.append(seg_arrival[last["id"]] - (t0 + turn["end_ms"] / 1000 / speed))
    else:
        utt = [seg_arrival[s["id"]] - (t0 + s["end_ms"] / 1000 / speed) for s in segments]
    # Segment -> its tags.
    tag_ms = []
    for t, m in first:
        if m["type"] == "tag.proposed" and m["data"].get("source") == "rules":
            arrivals = [seg_arrival[s] for s in m["data"]["segment_ids"] if s in seg_arrival]
            if arrivals:
                tag_ms.append((t - max(arrivals)) * 1000)
    # Fan-out: every stored event that arrived live (not during catch-up), at every client.
    fan_ms = []
    for sink in sinks:
        live = False
        for t, m in sink:
            if m["type"] == "control" and m["data"].get("kind") == "caught_up":
                live = True
                continue
            if live and m["seq"] is not None:
                fan_ms.append((t - m["ts"]) * 1000)
    received = [sum(1 for _, m in s if m["seq"] is not None) for s in sinks]
    u, g, f = _summary(utt), _summary(tag_ms), _summary(fan_ms)
    figures = {
        "utterance_to_segment_median_s": u["median"],
        "utterance_to_segment_p95_s": u["p95"],
        "segment_to_tags_median_ms": g["median"],
        "fanout_p95_ms": f["p95"],
    }
    return {
        "file": str(path),
        "speed": speed,
        "clients": len(sinks),
        "cpu_count": os.cpu_count(),
        "segments": len(segments),
        "turns_matched": len(utt) if turns else None,
        "utterance_to_segment_s": u,
        "segment_to_tags_ms": g,
        "fanout_ms": f,
        "events_per_client": {"min": min(received), "max": max(received)},
        "figures": figures,
        "targets": TARGETS,
        "pass": {k: bool(figures[k] <= TARGETS[k]) for k in TARGETS},
    }


def _isolated_fanout(clients: int, events: int, rate_hz: float = 20.0) -> dict[str, Any]:
    """Fan-out alone: the real app in this process, clients in another, events recorded at `rate_hz`.

    Separates the server's own fan-out cost from CPU contention with the recognizer.
    """
    from copilot.events import Event, Segment, SessionStarted, Word
    from copilot.runtime import Runtime, RuntimeConfig
    from copilot.server.runner import ServerThread

    tmp = tempfile.TemporaryDirectory(prefix="copilot-bench-fanout-")
    rt = Runtime(RuntimeConfig(data_dir=tmp.name, token="bench-" + os.urandom(8).hex()))
    log, token = rt.log, rt.token
    sid = rt.store.create_session(SessionStarted(title="fan-out bench"))
    with ServerThread(rt.app()) as srv:
        url = f"ws://127.0.0.1:{srv.port}/ws/sessions/{sid}?after=0&token={token}"
        proc = subprocess.Popen(
            [sys.executable, "-m", "copilot.bench.ws_clients", url, str(clients), str(events)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        if proc.stdout.readline().strip() != "READY":
            raise RuntimeError("fan-out clients did not connect")
        words = [Word(text=f" word{i}", start_ms=i * 300, end_ms=i * 300 + 250, probability=0.9) for i in range(20)]
        for i in range(events):
            seg = Segment(
                speaker="candidate",
                start_ms=i * 1000,
                end_ms=i * 1000 + 900,
                text=" ".join(w.text for w in words),
                words=words,
            )
            log.record(Event.of(sid, seg))
            time.sleep(1 / rate_hz)
        out, _ = proc.communicate(timeout=120)
    rt.close()
    tmp.cleanup()
    delays = json.loads(out.strip().splitlines()[-1])
    return {"rate_hz": rate_hz, "events": events, **_summary(delays)}


def run(args: argparse.Namespace) -> int:
    if args.clients < 1:
        raise CopilotError("--clients must be at least 1")
    result = asyncio.run(_measure(args))
    if args.fanout_events > 0:
        result["fanout_isolated_ms"] = _isolated_fanout(args.clients, args.fanout_events)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    u, g, f = result["utterance_to_segment_s"], result["segment_to_tags_ms"], result["fanout_ms"]
    ok = result["pass"]
    mark = {True: "ok", False: "MISSED"}
    t = TARGETS
    print(
        f"pipeline bench: {result['file']} at {result['speed']}x, {result['clients']} websocket clients, "
        f"{result['cpu_count']} CPUs; {result['segments']} segments"
    )
    print(
        f"  end of utterance -> final segment: median {u['median']:.2f} s "
        f"[{mark[ok['utterance_to_segment_median_s']]} <= {t['utterance_to_segment_median_s']}], p95 {u['p95']:.2f} s "
        f"[{mark[ok['utterance_to_segment_p95_s']]} <= {t['utterance_to_segment_p95_s']}], max {u['max']:.2f} s (n={u['n']})"
    )
    print(
        f"  segment -> its tags:               median {g['median']:.1f} ms "
        f"[{mark[ok['segment_to_tags_median_ms']]} <= {t['segment_to_tags_median_ms']:g}], p95 {g['p95']:.1f} ms (n={g['n']})"
    )
    print(
        f"  fan-out delivery:                  median {f['median']:.1f} ms, p95 {f['p95']:.1f} ms "
        f"[{mark[ok['fanout_p95_ms']]} <= {t['fanout_p95_ms']:g}], max {f['max']:.1f} ms (n={f['n']})"
    )
    iso = result.get("fanout_isolated_ms")
    if iso:
        print(
            f"  fan-out alone (no ASR, {iso['events']} events at {iso['rate_hz']:.0f}/s): "
            f"median {iso['median']:.1f} ms, p95 {iso['p95']:.1f} ms, max {iso['max']:.1f} ms (n={iso['n']})"
        )
    ev = result["events_per_client"]
    print(f"  events per client: {ev['min']}..{ev['max']}")
    return 0
