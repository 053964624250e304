"""Concurrent triage calls joined into fewer Triton requests, each caller answered for its own
texts, a rejection kept to the caller whose text it was (orchestrator/triton/coalesce.py)."""

import asyncio

import pytest

from orchestrator.triton.coalesce import CoalescingTriage, coalescing
from orchestrator.triton.triage_client import (
    BACKGROUND,
    INTERACTIVE,
    Prediction,
    TritonRejected,
    TritonUnavailable,
)


class FakeTriage:
    """Answers each text with itself as the intent; holds requests until `release` is set."""

    model = "ticket_triage"

    def __init__(self, fail: Exception | None = None):
        self.requests: list[tuple[list[str], int | None, int]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail = fail

    async def classify(self, texts, version=None, *, priority=BACKGROUND):
        self.requests.append((list(texts), version, priority))
        await self.release.wait()
        if self.fail is not None:
            raise self.fail
        if any(t == "bad" for t in texts):
            raise TritonRejected("texts[1] is empty")
        return [Prediction(t, 0.9, [(t, 0.9)], str(version)) for t in texts]


async def _callers_behind_a_busy_request(fake: FakeTriage, texts: list[list[str]], **key):
    """The first call goes and is held; the others arrive meanwhile; then Triton answers."""
    joined = CoalescingTriage(fake, max_in_flight=1)
    fake.release.clear()
    first = asyncio.create_task(joined.classify(["first"], **key))
    await asyncio.sleep(0)
    others = [asyncio.create_task(joined.classify(t, **key)) for t in texts]
    await asyncio.sleep(0)
    fake.release.set()
    results = await asyncio.gather(first, *others, return_exceptions=True)
    return joined, results


def test_a_lone_call_goes_at_once_as_its_own_request():
    async def scenario():
        fake = FakeTriage()
        joined = CoalescingTriage(fake)
        answer = await joined.classify(["my card"], 3, priority=INTERACTIVE)
        return fake.requests, answer

    requests, answer = asyncio.run(scenario())
    assert requests == [(["my card"], 3, INTERACTIVE)]
    assert [p.intent for p in answer] == ["my card"]


def test_calls_that_arrive_while_a_request_is_out_go_together_each_answered_its_own():
    async def scenario():
        fake = FakeTriage()
        texts = [["a"], ["b", "c"], ["d"]]
        joined, results = await _callers_behind_a_busy_request(fake, texts, version=2)
        return fake.requests, joined.requests_sent, results

    requests, sent, results = asyncio.run(scenario())
    assert requests == [(["first"], 2, BACKGROUND), (["a", "b", "c", "d"], 2, BACKGROUND)]
    assert sent == 2
    assert [[p.intent for p in r] for r in results] == [["first"], ["a"], ["b", "c"], ["d"]]


def test_a_rejected_text_fails_only_its_own_caller():
    async def scenario():
        fake = FakeTriage()
        _, results = await _callers_behind_a_busy_request(fake, [["a"], ["bad"], ["c"]])
        return fake.requests, results

    requests, results = asyncio.run(scenario())
    assert isinstance(results[2], TritonRejected)
    assert [p.intent for p in results[1]] == ["a"] and [p.intent for p in results[3]] == ["c"]
    # the joined request, then each of its callers alone
    assert [r[0] for r in requests[1:]] == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


def test_an_unavailable_triton_fails_every_caller_of_the_request():
    async def scenario():
        fake = FakeTriage(fail=TritonUnavailable("down"))
        _, results = await _callers_behind_a_busy_request(fake, [["a"], ["b"]])
        return results

    assert all(isinstance(r, TritonUnavailable) for r in asyncio.run(scenario()))


def test_calls_of_another_priority_or_version_are_never_joined():
    async def scenario():
        fake = FakeTriage()
        joined = CoalescingTriage(fake, max_in_flight=1)
        fake.release.clear()
        calls = [
            joined.classify(["a"]),
            joined.classify(["b"], priority=INTERACTIVE),
            joined.classify(["c"], 2),
            joined.classify(["d"], priority=INTERACTIVE),
        ]
        tasks = [asyncio.create_task(c) for c in calls]
        await asyncio.sleep(0)
        fake.release.set()
        await asyncio.gather(*tasks)
        return sorted(tuple(r[0]) for r in fake.requests)

    assert asyncio.run(scenario()) == [("a",), ("b",), ("c",), ("d",)]


def test_no_request_carries_more_than_the_batch_limit_and_a_gone_caller_is_skipped():
    async def scenario():
        fake = FakeTriage()
        joined = CoalescingTriage(fake, max_texts=4, max_in_flight=1)
        fake.release.clear()
        first = asyncio.create_task(joined.classify(["first"]))
        await asyncio.sleep(0)
        tasks = [asyncio.create_task(joined.classify([f"t{i}", f"u{i}"])) for i in range(3)]
        gone = asyncio.create_task(joined.classify(["gone"]))
        await asyncio.sleep(0)
        gone.cancel()
        fake.release.set()
        await asyncio.gather(first, *tasks)
        return [r[0] for r in fake.requests]

    sent = asyncio.run(scenario())
    assert all(len(texts) <= 4 for texts in sent)
    assert "gone" not in [t for texts in sent for t in texts]
    assert sorted(t for texts in sent for t in texts) == sorted(
        ["first"] + [f"{p}{i}" for i in range(3) for p in "tu"]
    )


def test_zero_in_flight_means_the_plain_client():
    fake = FakeTriage.__new__(FakeTriage)
    assert coalescing(fake, 0) is fake
    assert isinstance(coalescing(fake, 2), CoalescingTriage)
    assert coalescing(fake, 2).model == "ticket_triage"  # the rest is the client's


@pytest.mark.parametrize("in_flight", [1, 2])
def test_many_concurrent_callers_all_get_their_answers(in_flight):
    async def scenario():
        fake = FakeTriage()
        joined = CoalescingTriage(fake, max_in_flight=in_flight)
        answers = await asyncio.gather(*(joined.classify([f"text {i}"]) for i in range(100)))
        return fake.requests, answers

    requests, answers = asyncio.run(scenario())
    assert [a[0].intent for a in answers] == [f"text {i}" for i in range(100)]
    assert len(requests) < 100
