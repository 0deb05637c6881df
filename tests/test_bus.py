"""The fan-out bus: per-client bounded queues; a slow client is dropped, never waited for."""

from __future__ import annotations

import asyncio
import time

from copilot.events import Event, Segment
from copilot.session.bus import DROPPED, Bus


def _ev(i: int) -> Event:
    return Event(
        session_id="ses_a",
        seq=i,
        type="segment.final",
        data=Segment(speaker="c", start_ms=i, end_ms=i, text=str(i)).model_dump(),
    )


def test_slow_subscriber_is_dropped_and_others_get_everything():
    async def main():
        bus = Bus(queue_size=8)
        slow = bus.subscribe("ses_a")
        fast = bus.subscribe("ses_a")
        other = bus.subscribe("ses_b")
        got: list[int] = []

        async def reader():
            while len(got) < 50:
                item = await fast.get()
                got.append(item.seq)

        task = asyncio.create_task(reader())
        worst = 0.0
        for i in range(1, 51):
            t = time.perf_counter()
            bus.publish(_ev(i))
            worst = max(worst, time.perf_counter() - t)
            await asyncio.sleep(0)  # let the fast reader run, as the loop would between events
        await asyncio.wait_for(task, 5)
        assert got == list(range(1, 51))
        assert slow.dropped and bus.subscribers("ses_a") == 1
        first = await slow.get()
        assert first is DROPPED and slow.queue.empty()
        assert other.queue.empty()
        assert worst < 0.005  # publishing never waits on a subscriber
        fast.close()
        other.close()
        assert bus.subscribers("ses_a") == 0 and bus.dropped_total == 1

    asyncio.run(main())


def test_publish_threadsafe_reaches_the_loop():
    async def main():
        bus = Bus()
        sub = bus.subscribe("ses_a")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, bus.publish_threadsafe, _ev(7))
        item = await asyncio.wait_for(sub.get(), 2)
        assert item.seq == 7

    asyncio.run(main())
