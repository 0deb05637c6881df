"""`copilot bench soak`: hours of audio through the live pipeline, watched for leaks, lag and loss.

Recordings are looped into one two-channel source (the bundled demo interview, plus the real
recordings of `../shared/data/audio` when the checkout sits beside them, or the `--file`s given; a
mono file goes on one channel, alternating, the other channel silent; one second of silence
between files) and replayed at `--speed` through the real live path, built by `copilot.runtime`
as `copilot replay` builds it: the streaming file decoder, ASR with the turn layer and echo gate,
the rules tagger, the SQLite store, and the server, with `--clients` websocket clients in another
process (client 0 deliberately slow: it sleeps after every message and stalls now and then, so the
bus may drop it and it must reconnect with `after=`).

Reported:
- RSS of this process (ASR, store, server; not the clients) sampled every `--sample-s` seconds of
  audio, and its growth per hour after the warm-up (least squares over the samples; target
  <= 50 MB per audio hour); beside it Python's allocated blocks, which tell Python objects that
  pile up from native memory (the recognizer, malloc arenas);
- ASR lag (audio produced minus audio transcribed, what the panel shows) over time, first vs last
  stretch after the warm-up (target: no growth, within 2 s);
- the achieved speed (audio seconds per wall second: a paced replay the ASR cannot keep up with
  slips, it does not drop audio);
- event rate by type, store size;
- nothing lost: the store's seqs are contiguous, every fragment and turn the ASR produced is in
  the store, every tag the tagger proposed too, and every client received every stored event
  exactly once (a re-sent duplicate is counted) up to `session.ended`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence

from copilot.asr.options import add_asr_arguments
from copilot.errors import CopilotError

# Imported lazily below (as in bench/pipeline.py): `import copilot.cli` registers this module and
# must not load pydantic, FastAPI, the recognizer or PyAV.

TARGETS = {"rss_growth_mb_per_audio_h": 50.0, "asr_lag_growth_s": 2.0}
SPEAKERS = ["interviewer", "candidate"]
SHARED_AUDIO = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "audio"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--hours", type=float, default=8.0, help="hours of audio to replay (default 8)")
    p.add_argument(
        "--speed", type=float, default=1.0, help="replay pace, x real time (default 1; the ASR may not keep up)"
    )
    p.add_argument("--no-pace", action="store_true", help="feed audio as fast as the ASR takes it")
    p.add_argument(
        "--file",
        action="append",
        default=None,
        metavar="FILE",
        help="a recording to loop (repeatable; default: the demo interview + ../shared/data/audio when present)",
    )
    p.add_argument("--clients", type=int, default=5, help="websocket clients, the first one slow (default 5)")
    p.add_argument("--slow-ms", type=float, default=20.0, help="the slow client's pause after each message (ms)")
    p.add_argument("--stall-s", type=float, default=5.0, help="... and how long it stops reading now and then (s)")
    p.add_argument("--sample-s", type=float, default=60.0, help="an RSS/lag sample every N seconds of audio")
    p.add_argument(
        "--warmup-s",
        type=float,
        default=None,
        help="audio seconds left out of the growth figures (default: a quarter of the run, at most 15 min)",
    )
    p.add_argument("--data-dir", default=None, help="keep the soak's store here (default: a temp dir, removed)")
    add_asr_arguments(p, device_flag="--asr-device")
    p.add_argument("--json", action="store_true", help="print one JSON object")


# --------------------------------------------------------------------------- the looped source


def default_files() -> list[Path]:
    from copilot.audio.demo import DEMO_AUDIO

    files = [Path(DEMO_AUDIO)]
    if SHARED_AUDIO.is_dir():
        files += sorted(p for p in SHARED_AUDIO.rglob("*") if p.suffix.lower() in (".wav", ".flac"))
    return files


class LoopSource:
    """Recordings one after another, round and round, as one two-channel `AudioSource`.

    Each file streams through `FileSource` (so each lap also exercises the block decoder); times
    are re-stamped onto one session clock and paced against it from the first chunk.
    """

    def __init__(
        self,
        files: Sequence[Path],
        total_ms: int,
        *,
        speed: float = 1.0,
        realtime: bool = True,
        chunk_ms: int = 100,
        gap_ms: int = 1000,
    ) -> None:
        from copilot.audio.file_source import FileSource

        if not files:
            raise CopilotError("soak: no recordings to loop")
        # Probed once here: a bad file fails before the soak starts.
        self.files = [FileSource(f, chunk_ms=chunk_ms) for f in files]
        self.total = total_ms * 16  # samples at 16 kHz
        self.speed, self.realtime, self.chunk_ms, self.gap_ms = speed, realtime, chunk_ms, gap_ms
        self.speakers = list(SPEAKERS)
        self.laps = 0
        self._closed = threading.Event()

    def chunks(self) -> Iterator[Any]:
        import numpy as np

        from copilot.audio.base import SAMPLE_RATE, AudioChunk

        offset = 0  # session samples delivered
        t0: float | None = None
        mono_turn = 0
        step = SAMPLE_RATE * self.chunk_ms // 1000

        def timed(pair: list[np.ndarray]) -> Iterator[AudioChunk]:
            nonlocal offset, t0
            n = len(pair[0])
            if self.realtime:
                if t0 is None:
                    t0 = time.monotonic()
                delay = t0 + (offset + n) / SAMPLE_RATE / self.speed - time.monotonic()
                if delay > 0:
                    self._closed.wait(delay)
            start_ms = offset * 1000 // SAMPLE_RATE
            for ch, samples in enumerate(pair):
                yield AudioChunk(samples, ch, self.speakers[ch], start_ms)
            offset += n

        while offset < self.total:
            for src in self.files:
                two = len(src.speakers) == 2
                channel = mono_turn % 2
                if not two:
                    mono_turn += 1
                pending: dict[int, np.ndarray] = {}
                for chunk in src.chunks():
                    if self._closed.is_set() or offset >= self.total:
                        return
                    if two:
                        pending[chunk.channel] = chunk.samples
                        if len(pending) < 2:
                            continue
                        pair = [pending[0], pending[1]]
                        pending = {}
                    else:
                        silence = np.zeros_like(chunk.samples)
                        pair = [chunk.samples, silence] if channel == 0 else [silence, chunk.samples]
                    yield from timed(pair)
                for _ in range(0, SAMPLE_RATE * self.gap_ms // 1000, step):  # a pause between recordings
                    if self._closed.is_set() or offset >= self.total:
                        return
                    yield from timed([np.zeros(step, np.float32), np.zeros(step, np.float32)])
            self.laps += 1

    def close(self) -> None:
        self._closed.set()


# --------------------------------------------------------------------------- measuring


def rss_mb() -> float:
    """Resident set size of this process now (Linux /proc; elsewhere the peak, via resource)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 2**20 if sys.platform == "darwin" else peak / 1024


def store_bytes(db: Path) -> int:
    return sum(p.stat().st_size for p in (db, Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists())


@dataclass
class Produced:
    """Ids of every fragment and turn the transcriber handed to the pipeline."""

    segments: set[str]
    turns: set[str]

    @classmethod
    def watch(cls, transcriber: Any) -> "Produced":
        from copilot.events import Segment, Turn

        seen = cls(set(), set())
        feed, flush = transcriber.feed, transcriber.flush

        def note(out: Sequence[Any]) -> Sequence[Any]:
            for o in out:
                if isinstance(o, Turn):
                    seen.turns.add(o.id)
                elif isinstance(o, Segment):
                    seen.segments.add(o.id)
            return out

        # The pipeline takes any object with feed/flush; wrapping the instance keeps its type,
        # which `Runtime.pipeline` reads to switch the turn layer's tagging on.
        setattr(transcriber, "feed", lambda chunk: note(feed(chunk)))  # noqa: B010 (mypy: no method assignment)
        setattr(transcriber, "flush", lambda: note(flush()))  # noqa: B010
        return seen


def slope_per_hour(xs: list[float], ys: list[float]) -> float | None:
    """Least-squares slope of ys over xs given in seconds, per hour; None with fewer than 2 points."""
    if len(xs) < 2 or max(xs) == min(xs):
        return None
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    cov = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    var = sum((x - mx) ** 2 for x in xs)
    return cov / var * 3600


async def _soak(args: argparse.Namespace, data_dir: str) -> dict[str, Any]:
    from copilot.asr.options import AsrOptions
    from copilot.runtime import Runtime, RuntimeConfig
    from copilot.server import runner

    files = [Path(f) for f in args.file] if args.file else default_files()
    total_ms = int(args.hours * 3600 * 1000)
    source = LoopSource(files, total_ms, speed=args.speed, realtime=not args.no_pace)
    token = "soak-" + os.urandom(8).hex()
    rt = Runtime(
        RuntimeConfig(data_dir=data_dir, token=token, asr=AsrOptions(args.model, args.asr_device, args.compute_type))
    )
    try:
        rt.tagging()
        transcriber = rt.transcriber(list(source.speakers), realtime=not args.no_pace)
        produced = Produced.watch(transcriber)
        sid, _ = rt.open_session(
            mode="replay", title="soak", speakers=list(source.speakers), source=f"soak: {len(files)} file(s) looped"
        )
        loop = asyncio.get_running_loop()
        rt.bus.bind(loop)
        sys.setswitchinterval(0.001)  # as `copilot replay` runs (cli/session_run.py)
        server, server_task, port = await runner.start(rt.app(), "127.0.0.1", 0)
        clients: asyncio.subprocess.Process | None = None
        try:
            url = f"ws://127.0.0.1:{port}/ws/sessions/{sid}?after=0&token={token}"
            clients = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "copilot.bench.soak_clients",
                url,
                str(args.clients),
                "--slow-ms",
                str(args.slow_ms),
                "--stall-s",
                str(args.stall_s),
                stdout=asyncio.subprocess.PIPE,
            )
            assert clients.stdout is not None
            line = await asyncio.wait_for(clients.stdout.readline(), 90)
            if line.strip() != b"READY":
                raise CopilotError("soak: the websocket clients did not connect")
            pipeline = rt.pipeline(sid, source, transcriber, speed=1.0 if args.no_pace else args.speed)
            samples: list[dict[str, Any]] = []
            wall0 = time.monotonic()
            sampler = asyncio.create_task(_sampler(rt, sid, pipeline, args, samples, wall0))
            stats = await pipeline.run()
            wall = time.monotonic() - wall0
            sampler.cancel()
            samples.append({**_sample(rt, sid, pipeline, wall0), "final": True})  # the end state: queue drained
            try:
                line = await asyncio.wait_for(clients.stdout.readline(), 180)
            except asyncio.TimeoutError:
                clients.terminate()
                line = await asyncio.wait_for(clients.stdout.readline(), 30)
            await clients.wait()
            received = json.loads(line) if line.strip() else []
        finally:
            if clients is not None and clients.returncode is None:  # a failed run leaves no client process
                clients.kill()
                await clients.wait()
            server.should_exit = True
            await server_task
        return _report(rt, sid, args, files, source, stats, produced, samples, received, wall)
    finally:
        source.close()
        rt.close()


def _sample(rt: Any, sid: str, pipeline: Any, wall0: float) -> dict[str, Any]:
    s = pipeline.stats
    return {
        "audio_s": round(s.audio_ms / 1000, 1),
        "asr_s": round(s.asr_ms / 1000, 1),
        "wall_s": round(time.monotonic() - wall0, 1),
        "rss_mb": round(rss_mb(), 1),
        "asr_lag_s": round(s.asr_lag_ms / 1000, 2),
        "events": rt.store.last_seq(sid),
        "store_mb": round(store_bytes(rt.store.path) / 2**20, 2),
        "clients_dropped": rt.bus.dropped_total,
        # Python's own allocated blocks: flat while RSS climbs means the growth is native memory.
        "py_blocks": sys.getallocatedblocks(),
    }


async def _sampler(
    rt: Any, sid: str, pipeline: Any, args: argparse.Namespace, out: list[dict[str, Any]], wall0: float
) -> None:
    every_ms = max(1.0, args.sample_s) * 1000
    next_ms = 0.0
    while True:
        if pipeline.stats.audio_ms >= next_ms:
            out.append(_sample(rt, sid, pipeline, wall0))
            next_ms = (pipeline.stats.audio_ms // every_ms + 1) * every_ms
        await asyncio.sleep(0.25)


def _report(
    rt: Any,
    sid: str,
    args: argparse.Namespace,
    files: list[Path],
    source: LoopSource,
    stats: Any,
    produced: Produced,
    samples: list[dict[str, Any]],
    received: list[dict[str, Any]],
    wall: float,
) -> dict[str, Any]:
    audio_s = stats.audio_ms / 1000
    warmup = args.warmup_s if args.warmup_s is not None else min(900.0, audio_s / 4)
    warm = [s for s in samples if s["audio_s"] >= warmup] or samples[-1:]
    growth_audio = slope_per_hour([s["audio_s"] for s in warm], [s["rss_mb"] for s in warm])
    growth_wall = slope_per_hour([s["wall_s"] for s in warm], [s["rss_mb"] for s in warm])
    # Lag while the audio was still coming (the end state has drained the queue: lag 0 says nothing).
    running = [s for s in warm if not s.get("final")] or warm
    k = max(1, len(running) // 10)
    lag_first = sum(s["asr_lag_s"] for s in running[:k]) / k
    lag_last = sum(s["asr_lag_s"] for s in running[-k:]) / k

    # The store, read once at the end: contiguous seqs, every produced id present.
    last = rt.store.last_seq(sid)
    expected = 1
    contiguous = True
    by_type: dict[str, int] = {}
    stored_segments: set[str] = set()
    stored_turns: set[str] = set()
    for ev in rt.store.iter_events(sid):
        contiguous &= ev.seq == expected
        expected = (ev.seq or expected) + 1
        by_type[ev.type] = by_type.get(ev.type, 0) + 1
        if ev.type == "segment.final":
            stored_segments.add(ev.data["id"])
        elif ev.type == "turn.final":
            stored_turns.add(ev.data["id"])
    contiguous &= expected - 1 == last
    missing_segments = len(produced.segments - stored_segments)
    missing_turns = len(produced.turns - stored_turns)
    rules_tags = by_type.get("tag.proposed", 0)
    client_gaps = [
        {
            "client": i,
            "missing": last - c["distinct"],
            "duplicates": c["duplicates"],
            "ended": c["ended"],
        }
        for i, c in enumerate(received)
    ]
    clients_ok = len(received) == args.clients and all(
        c["distinct"] == last and c["max_seq"] == last and c["ended"] and c["missing_below_max"] == 0 for c in received
    )
    lost = {
        "seqs_contiguous": contiguous,
        "segments_missing_from_store": missing_segments,
        "turns_missing_from_store": missing_turns,
        "tags_missing_from_store": max(0, stats.tags - rules_tags),
        "audio_dropped_ms": stats.dropped_ms,
        "clients_complete": clients_ok,
        "per_client": client_gaps,
    }
    nothing_lost = (
        contiguous
        and missing_segments == 0
        and missing_turns == 0
        and stats.tags <= rules_tags
        and stats.dropped_ms == 0
        and clients_ok
    )
    figures = {
        "rss_growth_mb_per_audio_h": growth_audio,
        "asr_lag_growth_s": lag_last - lag_first,
    }
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "files": [str(f) for f in files],
        "laps": source.laps,
        "hours_requested": args.hours,
        "audio_s": audio_s,
        "audio_h": audio_s / 3600,
        "wall_s": wall,
        "speed_requested": None if args.no_pace else args.speed,
        "speed_achieved": audio_s / wall if wall > 0 else None,
        "clients": args.clients,
        "cpu_count": os.cpu_count(),
        "load_avg_end": list(load) if load else None,
        "warmup_s": warmup,
        "rss_mb": {
            "start": samples[0]["rss_mb"] if samples else None,
            "after_warmup": warm[0]["rss_mb"] if warm else None,
            "end": samples[-1]["rss_mb"] if samples else None,
            "max": max(s["rss_mb"] for s in samples) if samples else None,
        },
        "rss_growth_mb_per_audio_h": growth_audio,
        "rss_growth_mb_per_wall_h": growth_wall,
        "asr_lag_s": {
            "first": lag_first,
            "last": lag_last,
            "max": max(s["asr_lag_s"] for s in samples) if samples else None,
        },
        "events": {
            "stored": last,
            "per_audio_min": last / max(audio_s / 60, 1e-9),
            "per_wall_s": last / wall if wall > 0 else None,
            "by_type": dict(sorted(by_type.items())),
            "segments": stats.finals,
            "turns": stats.turns,
            "tags": stats.tags,
            "partials": stats.partials,
        },
        "store_mb": store_bytes(rt.store.path) / 2**20,
        "clients_dropped_by_server": rt.bus.dropped_total,
        "received": received,
        "lost": lost,
        "nothing_lost": nothing_lost,
        "samples": samples,
        "figures": figures,
        "targets": TARGETS,
        "pass": {
            "rss_growth_mb_per_audio_h": growth_audio is not None
            and growth_audio <= TARGETS["rss_growth_mb_per_audio_h"],
            "asr_lag_growth_s": figures["asr_lag_growth_s"] <= TARGETS["asr_lag_growth_s"],
            "nothing_lost": nothing_lost,
        },
    }


def run(args: argparse.Namespace) -> int:
    if args.hours <= 0:
        raise CopilotError(f"--hours must be > 0, not {args.hours}")
    if args.speed <= 0:
        raise CopilotError(f"--speed must be > 0, not {args.speed}")
    if args.clients < 1:
        raise CopilotError("--clients must be at least 1")
    for f in args.file or ():
        if not Path(f).is_file():
            raise CopilotError(f"{f}: no such file")
    if args.data_dir:
        result = asyncio.run(_soak(args, args.data_dir))
    else:
        with tempfile.TemporaryDirectory(prefix="copilot-soak-") as tmp:
            result = asyncio.run(_soak(args, tmp))
    if args.json:
        print(json.dumps(result, indent=2))
        return 0 if result["nothing_lost"] else 1
    _print(result)
    return 0 if result["nothing_lost"] else 1


def _print(r: dict[str, Any]) -> None:
    mark = {True: "ok", False: "MISSED"}
    t, ok = TARGETS, r["pass"]
    speed = "as fast as the ASR goes" if r["speed_requested"] is None else f"{r['speed_requested']:g}x requested"
    load = r["load_avg_end"]
    print(
        f"soak: {r['audio_h']:.2f} h of audio ({len(r['files'])} file(s), {r['laps']} lap(s)) in {r['wall_s'] / 60:.1f} min "
        f"wall: {speed}, {r['speed_achieved']:.2f}x achieved; {r['clients']} websocket clients, {r['cpu_count']} CPUs"
        + (f", load average {load[0]:.2f} at the end" if load else "")
    )
    m = r["rss_mb"]
    g = r["rss_growth_mb_per_audio_h"]
    print(
        f"  RSS: start {m['start']:.0f} MB, after warm-up ({r['warmup_s'] / 60:.1f} min of audio) "
        f"{m['after_warmup']:.0f} MB, end {m['end']:.0f} MB, max {m['max']:.0f} MB"
    )
    print(
        "  RSS growth after warm-up: "
        + ("n/a (too few samples)" if g is None else f"{g:+.1f} MB per audio hour")
        + f" [{mark[ok['rss_growth_mb_per_audio_h']]} <= {t['rss_growth_mb_per_audio_h']:g}]"
        + ("" if r["rss_growth_mb_per_wall_h"] is None else f", {r['rss_growth_mb_per_wall_h']:+.1f} MB per wall hour")
    )
    lag = r["asr_lag_s"]
    print(
        f"  ASR lag: first {lag['first']:.2f} s, last {lag['last']:.2f} s, max {lag['max']:.2f} s "
        f"[{mark[ok['asr_lag_growth_s']]}: growth <= {t['asr_lag_growth_s']:g} s]"
    )
    e = r["events"]
    print(
        f"  events: {e['stored']} stored ({e['per_audio_min']:.1f} per audio minute, {e['per_wall_s']:.2f}/s), "
        f"{e['segments']} fragments, {e['turns']} turns, {e['tags']} tags, {e['partials']} partials; "
        f"store {r['store_mb']:.1f} MB"
    )
    lost = r["lost"]
    print(
        f"  nothing lost: {mark[r['nothing_lost']]} (seqs contiguous {lost['seqs_contiguous']}, "
        f"fragments/turns/tags missing {lost['segments_missing_from_store']}/{lost['turns_missing_from_store']}/"
        f"{lost['tags_missing_from_store']}, audio dropped {lost['audio_dropped_ms']} ms, "
        f"every client got every event {lost['clients_complete']}; the server dropped the slow client "
        f"{r['clients_dropped_by_server']} time(s))"
    )
