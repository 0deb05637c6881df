"""N websocket clients on one session, in their own process, for the fan-out benchmark.

`python -m copilot.bench.ws_clients URL N COUNT` connects N clients to URL, prints `READY`, then
collects until each has received COUNT stored events after its catch-up, and prints one JSON
list of delivery delays in ms (arrival wall time minus the event's `ts`).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time


async def _one(url: str, count: int, ready: asyncio.Event, delays: list[float]) -> None:
    from websockets.asyncio.client import connect

    async with connect(url, max_size=2**22, open_timeout=30) as ws:
        live = False
        got = 0
        async for raw in ws:
            t = time.time()
            msg = json.loads(raw)
            if not live:
                if msg["type"] == "control" and msg["data"].get("kind") == "caught_up":
                    live = True
                    ready.set()
                continue
            if msg["seq"] is not None:
                delays.append((t - msg["ts"]) * 1000)
                got += 1
                if got >= count:
                    return


async def main(url: str, n: int, count: int) -> None:
    delays: list[float] = []
    readies = [asyncio.Event() for _ in range(n)]
    tasks = [asyncio.create_task(_one(url, count, r, delays)) for r in readies]
    await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
    print("READY", flush=True)
    await asyncio.wait_for(asyncio.gather(*tasks), 600)
    print(json.dumps(delays), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
