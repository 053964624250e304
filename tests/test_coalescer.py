"""The triage coalescer: concurrent callers share ensemble calls and get their own answers.

A stand-in for the Triton client records the calls; the real path through Triton is covered
by the orchestrator's /v1/triage tests, which go through the coalescer.
"""

import asyncio

import pytest

from orchestrator.triton.coalescer import TriageCoalescer
from orchestrator.triton.triage_client import Prediction, TritonRejected


class RecordingClient:
    def __init__(self):
        self.calls: list[list[str]] = []

    async def classify(self, texts: list[str]) -> list[Prediction]:
        self.calls.append(list(texts))
        await asyncio.sleep(0.01)
        if any(t == "bad" for t in texts):
            raise TritonRejected("text is empty")
        return [Prediction(intent=t.upper(), confidence=1.0, top=[]) for t in texts]


def test_concurrent_callers_share_calls_and_get_their_own_results():
    client = RecordingClient()

    async def scenario():
        coalescer = TriageCoalescer(client, max_texts=8, max_in_flight=1)
        requests = [[f"t{i}a", f"t{i}b"] for i in range(12)]
        answers = await asyncio.gather(*(coalescer.classify(r) for r in requests))
        for request, answer in zip(requests, answers, strict=True):
            assert [p.intent for p in answer] == [t.upper() for t in request]

    asyncio.run(scenario())
    assert len(client.calls) < 12 and all(len(call) <= 8 for call in client.calls)


def test_a_rejected_text_fails_only_its_own_caller():
    client = RecordingClient()

    async def scenario():
        coalescer = TriageCoalescer(client, max_texts=8, max_in_flight=1)
        results = await asyncio.gather(
            coalescer.classify(["first"]),  # goes alone while the others queue
            coalescer.classify(["good"]),
            coalescer.classify(["bad"]),
            coalescer.classify(["fine"]),
            return_exceptions=True,
        )
        assert [p.intent for p in results[1]] == ["GOOD"] and [p.intent for p in results[3]] == [
            "FINE"
        ]
        assert isinstance(results[2], TritonRejected)

    asyncio.run(scenario())


@pytest.mark.parametrize("max_in_flight", [1, 2])
def test_a_request_larger_than_the_batch_still_goes(max_in_flight):
    client = RecordingClient()
    coalescer_texts = [f"x{i}" for i in range(10)]

    async def scenario():
        coalescer = TriageCoalescer(client, max_texts=4, max_in_flight=max_in_flight)
        return await coalescer.classify(coalescer_texts)

    assert len(asyncio.run(scenario())) == 10
