"""Requests waiting for a ticket to finish (`POST /v1/tickets?wait=true`).

The in-process worker says when it settles a ticket, so a waiting request answers at once
instead of polling the database. A worker in another process cannot tell this one, so waiters
still look at the database now and then, ever less often.
"""

import asyncio
import contextlib
from collections.abc import Awaitable, Callable


class SettledTickets:
    def __init__(self):
        self._waiters: dict[int, set[asyncio.Event]] = {}

    def notify(self, ticket_id: int) -> None:
        """Called on the event loop by the in-process worker when a ticket's job is settled."""
        for event in self._waiters.get(ticket_id, ()):
            event.set()

    async def wait(
        self,
        ticket_id: int,
        finished: Callable[[], Awaitable[bool]],
        timeout_s: float,
        *,
        first_poll_s: float = 0.25,
        max_poll_s: float = 2.0,
    ) -> bool:
        """Until `finished()` is true (checked on each notice and poll) or `timeout_s` passes."""
        event = asyncio.Event()
        self._waiters.setdefault(ticket_id, set()).add(event)
        loop = asyncio.get_running_loop()
        deadline, poll_s = loop.time() + timeout_s, first_poll_s
        try:
            while True:
                if await finished():
                    return True
                left = deadline - loop.time()
                if left <= 0:
                    return False
                event.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(event.wait(), min(poll_s, left))
                poll_s = min(poll_s * 2, max_poll_s)
        finally:
            waiters = self._waiters.get(ticket_id, set())
            waiters.discard(event)
            if not waiters:
                self._waiters.pop(ticket_id, None)
