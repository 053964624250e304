"""Coalescing concurrent triage calls into fewer, larger ensemble requests.

Each request to the `ticket_triage` ensemble pays three model hops and a Python tokenizer
call, so under load the per-request overhead, not the model, bounds throughput. Texts that
arrive while a call is in flight wait (no timer: the next call starts as soon as a slot is
free) and go together in the next call, up to `max_texts`.
"""

import asyncio
from dataclasses import dataclass, field

from orchestrator.triton.triage_client import Prediction, TriageClient, TritonRejected


@dataclass
class _Pending:
    texts: list[str]
    future: asyncio.Future = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class TriageCoalescer:
    def __init__(self, client: TriageClient, max_texts: int = 64, max_in_flight: int = 2):
        self.client, self.max_texts = client, max_texts
        self._slots = asyncio.Semaphore(max_in_flight)
        self._queue: list[_Pending] = []
        self._tasks: set[asyncio.Task] = set()  # referenced until done, as asyncio requires

    async def classify(self, texts: list[str]) -> list[Prediction]:
        pending = _Pending(texts)
        self._queue.append(pending)
        task = asyncio.create_task(self._drain())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return await pending.future

    async def _drain(self) -> None:
        async with self._slots:
            batch, size = [], 0
            while self._queue and size + len(self._queue[0].texts) <= self.max_texts:
                item = self._queue.pop(0)
                batch.append(item)
                size += len(item.texts)
            if not batch and self._queue:  # one request larger than max_texts goes alone
                batch = [self._queue.pop(0)]
            if batch:
                await self._send(batch)

    async def _send(self, batch: list[_Pending]) -> None:
        texts = [t for item in batch for t in item.texts]
        try:
            predictions = await self.client.classify(texts)
        except TritonRejected as error:
            if len(batch) > 1:  # one caller's bad text must not fail the others
                await asyncio.gather(*(self._send([item]) for item in batch))
            else:
                _fail(batch, error)
            return
        except Exception as error:
            _fail(batch, error)
            return
        start = 0
        for item in batch:
            if not item.future.done():  # the caller may have been cancelled meanwhile
                item.future.set_result(predictions[start : start + len(item.texts)])
            start += len(item.texts)

    async def ready(self) -> bool:
        return await self.client.ready()

    async def close(self) -> None:
        await self.client.close()


def _fail(batch: list[_Pending], error: Exception) -> None:
    for item in batch:
        if not item.future.done():
            item.future.set_exception(error)
