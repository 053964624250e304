"""Requests waiting on a ticket answer when the in-process worker settles it, not at a poll."""

import asyncio
import time

from orchestrator.services.settled import SettledTickets


def test_a_notice_wakes_the_waiter_long_before_its_next_poll():
    async def scenario() -> tuple[bool, float, int]:
        settled, done, reads = SettledTickets(), False, 0

        async def finished() -> bool:
            nonlocal reads
            reads += 1
            return done

        async def worker() -> None:
            nonlocal done
            await asyncio.sleep(0.05)
            done = True
            settled.notify(7)

        started = time.perf_counter()
        task = asyncio.create_task(worker())
        result = await settled.wait(7, finished, timeout_s=30, first_poll_s=20)
        await task
        return result, time.perf_counter() - started, reads

    result, elapsed, reads = asyncio.run(scenario())
    assert result and elapsed < 5 and reads == 2  # one look, then one on the notice


def test_without_a_notice_the_waiter_polls_ever_less_often_until_its_timeout():
    async def scenario() -> tuple[bool, int]:
        settled, reads = SettledTickets(), 0

        async def finished() -> bool:
            nonlocal reads
            reads += 1
            return False

        settled.notify(8)  # another ticket's notice changes nothing
        result = await settled.wait(7, finished, timeout_s=1.0, first_poll_s=0.1, max_poll_s=0.4)
        return result, reads

    result, reads = asyncio.run(scenario())
    assert not result and 3 <= reads <= 6  # 0.1, 0.2, 0.4, 0.4 … not every 100 ms
