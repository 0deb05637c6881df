"""The soak's websocket clients, in their own process (their memory is not the server's).

`python -m copilot.bench.soak_clients URL N [--slow-ms MS] [--stall-s S] [--stall-every-s S]`
connects N clients to the session at URL (`...?after=0&token=...`); client 0 is the slow one: it
waits `--slow-ms` after every message and stops reading for `--stall-s` every `--stall-every-s`
(a background tab). A client the server drops (close 4408) or loses reconnects with
`after=<last seq it saw>`, as the panel does. Prints `READY` once every client has caught up,
then, when every client has seen `session.ended` (or on SIGTERM), one JSON line: per client the
distinct seqs received, duplicates, the highest seq, the seqs missing below it, reconnects, drops,
and the delivery delay of live stored events (arrival minus the event's `ts`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

CLOSE_TOO_SLOW = 4408


@dataclass
class ClientTally:
    slow: bool
    seen: bytearray = field(default_factory=bytearray)  # seen[seq] = 1: a bitmap, 1 byte per event
    distinct: int = 0
    duplicates: int = 0
    max_seq: int = 0
    connects: int = 0
    drops: int = 0  # closed by the server as too slow (4408)
    other_closes: int = 0
    live_events: int = 0  # non-stored (partials, lag readings) received
    delays_ms: list[float] = field(default_factory=list)
    ended: bool = False

    def note(self, seq: int, ts: float, now: float, live: bool) -> None:
        if seq >= len(self.seen):
            self.seen.extend(bytes(max(seq + 1 - len(self.seen), 4096)))
        if self.seen[seq]:
            self.duplicates += 1
            return
        self.seen[seq] = 1
        self.distinct += 1
        self.max_seq = max(self.max_seq, seq)
        if live:
            self.delays_ms.append((now - ts) * 1000)

    def report(self) -> dict[str, Any]:
        missing = sum(1 for s in range(1, self.max_seq + 1) if not self.seen[s])
        d = sorted(self.delays_ms)
        return {
            "slow": self.slow,
            "distinct": self.distinct,
            "duplicates": self.duplicates,
            "max_seq": self.max_seq,
            "missing_below_max": missing,
            "connects": self.connects,
            "drops": self.drops,
            "other_closes": self.other_closes,
            "live_only_messages": self.live_events,
            "ended": self.ended,
            "delivery_ms": {
                "n": len(d),
                "median": statistics.median(d) if d else None,
                "p95": d[min(len(d) - 1, int(0.95 * len(d)))] if d else None,
                "max": d[-1] if d else None,
            },
        }


def _with_after(url: str, after: int) -> str:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query["after"] = str(after)
    return urlunsplit(parts._replace(query=urlencode(query)))


async def _client(url: str, tally: ClientTally, ready: asyncio.Event, args: argparse.Namespace) -> None:
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosed

    next_stall = time.monotonic() + args.stall_every_s
    while not tally.ended:
        tally.connects += 1
        try:
            async with connect(_with_after(url, tally.max_seq), max_size=2**22, open_timeout=30) as ws:
                live = False
                async for raw in ws:
                    now = time.time()
                    msg = json.loads(raw)
                    if msg["type"] == "control" and msg["data"].get("kind") == "caught_up":
                        live = True
                        ready.set()
                    seq = msg.get("seq")
                    if seq is None:
                        tally.live_events += 1
                    else:
                        tally.note(int(seq), float(msg["ts"]), now, live)
                    if msg["type"] == "session.ended":
                        tally.ended = True
                        return
                    if tally.slow:
                        await asyncio.sleep(args.slow_ms / 1000)
                        if args.stall_s > 0 and time.monotonic() >= next_stall:
                            await asyncio.sleep(args.stall_s)
                            next_stall = time.monotonic() + args.stall_every_s
        except ConnectionClosed as exc:
            code = exc.rcvd.code if exc.rcvd is not None else None
            if code == CLOSE_TOO_SLOW:
                tally.drops += 1
            else:
                tally.other_closes += 1
            await asyncio.sleep(0.2)
        except OSError:
            tally.other_closes += 1
            await asyncio.sleep(0.5)
        else:
            if not tally.ended:  # the server closed cleanly without ending the session
                tally.other_closes += 1
                await asyncio.sleep(0.2)


async def main(args: argparse.Namespace) -> None:
    tallies = [ClientTally(slow=(i == 0 and args.slow)) for i in range(args.n)]
    readies = [asyncio.Event() for _ in tallies]
    tasks = [asyncio.create_task(_client(args.url, t, r, args)) for t, r in zip(tallies, readies)]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    print("READY", flush=True)

    async def everyone() -> None:
        await asyncio.gather(*tasks)

    async def stopped() -> None:
        await stop.wait()

    done = [asyncio.create_task(everyone()), asyncio.create_task(stopped())]
    await asyncio.wait(done, return_when=asyncio.FIRST_COMPLETED)
    for t in [*tasks, *done]:
        t.cancel()
    print(json.dumps([t.report() for t in tallies]), flush=True)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m copilot.bench.soak_clients")
    p.add_argument("url")
    p.add_argument("n", type=int)
    p.add_argument("--no-slow", dest="slow", action="store_false", help="no deliberately slow client")
    p.add_argument("--slow-ms", type=float, default=20.0)
    p.add_argument("--stall-s", type=float, default=5.0)
    p.add_argument("--stall-every-s", type=float, default=60.0)
    return p.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse_args()))
