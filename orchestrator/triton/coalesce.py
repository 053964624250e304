"""Concurrent triage calls joined into fewer Triton requests.

Each `POST /v1/triage` usually carries one text. Triton batches requests too, but every
request still costs a gRPC round trip in both processes and a pass through the ensemble and
the model's backend; on two cores that overhead is as large as the model's own work. Here
calls for the same (version, priority) that arrive while `max_in_flight` requests are already
out wait for the next one and go in it together, up to `max_texts` texts; a call that finds a
free slot goes at once, so a lone caller never waits for company.

A request Triton rejects for one caller's text (empty, too long, not UTF-8) is sent again per
caller, so that only the caller whose text it was gets the rejection; an unavailable Triton
fails every caller of that request, as it would have failed each alone.
"""

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field

from contracts.models import TRIAGE_MAX_BATCH
from orchestrator.triton.triage_client import (
    BACKGROUND,
    Prediction,
    TriageClient,
    TritonRejected,
)

Key = tuple[int | None, int]  # (triage version, priority)


def _future() -> asyncio.Future:
    return asyncio.get_running_loop().create_future()


@dataclass
class _Call:
    texts: list[str]
    answer: asyncio.Future = field(default_factory=_future)


class CoalescingTriage:
    """A TriageClient's `classify`, with concurrent calls joined; everything else delegated."""

    def __init__(
        self, client: TriageClient, max_texts: int = TRIAGE_MAX_BATCH, max_in_flight: int = 2
    ):
        self.client, self.max_texts, self.max_in_flight = client, max_texts, max_in_flight
        self._waiting: dict[Key, list[_Call]] = defaultdict(list)
        self._in_flight: dict[Key, int] = defaultdict(int)
        self._tasks: set[asyncio.Task] = set()
        self.requests_sent = 0  # Triton requests made (the tests read it)

    def __getattr__(self, name: str):
        return getattr(self.client, name)  # model, target, ready, close, ...

    async def classify(
        self, texts: list[str], version: int | None = None, *, priority: int = BACKGROUND
    ) -> list[Prediction]:
        if len(texts) >= self.max_texts:  # a full batch already: nothing to join
            self.requests_sent += 1
            return await self.client.classify(texts, version, priority=priority)
        call = _Call(list(texts))
        key = (version, priority)
        self._waiting[key].append(call)
        self._dispatch(key)
        return await call.answer

    def _dispatch(self, key: Key) -> None:
        waiting = self._waiting[key]
        while waiting and self._in_flight[key] < self.max_in_flight:
            group, count = [], 0
            while waiting and count + len(waiting[0].texts) <= self.max_texts:
                call = waiting.pop(0)
                if not call.answer.done():  # its caller has gone (cancelled)
                    group.append(call)
                    count += len(call.texts)
            if not group:
                continue
            self._in_flight[key] += 1
            task = asyncio.create_task(self._send(key, group))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, key: Key, group: list[_Call]) -> None:
        version, priority = key
        try:
            texts = [text for call in group for text in call.texts]
            self.requests_sent += 1
            try:
                answer = await self.client.classify(texts, version, priority=priority)
            except TritonRejected:
                if len(group) == 1:
                    raise
                await asyncio.gather(*(self._send_alone(key, call) for call in group))
                return
            start = 0
            for call in group:
                _settle(call, result=answer[start : start + len(call.texts)])
                start += len(call.texts)
        except Exception as error:  # Triton's failure is every caller's
            for call in group:
                _settle(call, error=error)
        finally:
            self._in_flight[key] -= 1
            self._dispatch(key)

    async def _send_alone(self, key: Key, call: _Call) -> None:
        version, priority = key
        self.requests_sent += 1
        try:
            _settle(call, result=await self.client.classify(call.texts, version, priority=priority))
        except Exception as error:
            _settle(call, error=error)


def coalescing(client: TriageClient, max_in_flight: int) -> "TriageClient | CoalescingTriage":
    """`client` with its concurrent calls joined, unless `max_in_flight` is 0."""
    return CoalescingTriage(client, max_in_flight=max_in_flight) if max_in_flight else client


def _settle(call: _Call, *, result=None, error: BaseException | None = None) -> None:
    if call.answer.done():  # cancelled by its caller meanwhile
        return
    if error is not None:
        call.answer.set_exception(error)
    else:
        call.answer.set_result(result)
