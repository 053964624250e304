"""Per-tenant LLM quotas: a concurrency cap and a token budget per minute, each a 429."""

import asyncio

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from orchestrator.api.quotas import LLMQuotas, llm_slot
from orchestrator.api.ratelimit import Limiter, MemoryBuckets
from orchestrator.errors import ApiError, install_handlers


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def quotas(concurrency=2, tokens_per_minute=600, clock=None) -> LLMQuotas:
    limiter = Limiter(CollectorRegistry(), memory=MemoryBuckets(clock=clock or Clock()))
    return LLMQuotas(limiter, concurrency, tokens_per_minute)


def test_one_tenant_cannot_hold_more_than_its_concurrent_generations():
    q = quotas(concurrency=2)

    async def scenario():
        async with llm_slot(q, 1, 10), llm_slot(q, 1, 10):
            with pytest.raises(ApiError) as refused:
                async with llm_slot(q, 1, 10):
                    pass
            async with llm_slot(q, 2, 10):  # another tenant is not held up
                assert q.running(1) == 2 and q.running(2) == 1
        async with llm_slot(q, 1, 10):  # the slots came back
            pass
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.status == 429 and refused.code == "tenant_llm_concurrency"
    assert refused.headers["Retry-After"] == "1"
    assert q.running(1) == 0


def test_a_slot_is_released_when_the_generation_fails():
    q = quotas(concurrency=1)

    async def scenario():
        with pytest.raises(RuntimeError):
            async with llm_slot(q, 1, 10):
                raise RuntimeError("Triton went away")
        async with llm_slot(q, 1, 10):
            pass

    asyncio.run(scenario())
    assert q.running(1) == 0


def test_the_token_budget_refuses_with_retry_after_and_unused_tokens_come_back():
    clock = Clock()
    q = quotas(concurrency=0, tokens_per_minute=600, clock=clock)  # 10 tokens a second

    async def scenario():
        async with llm_slot(q, 1, 500):
            pass  # used nothing reported: the whole reservation counts
        with pytest.raises(ApiError) as refused:
            async with llm_slot(q, 1, 200):
                pass
        async with llm_slot(q, 1, 100) as slot:
            slot.record(10)  # 90 reserved tokens come back
        async with llm_slot(q, 1, 90):
            pass
        async with llm_slot(q, 2, 600):  # another tenant has its own budget
            pass
        return refused.value

    refused = asyncio.run(scenario())
    assert refused.status == 429 and refused.code == "tenant_llm_tokens"
    assert refused.headers["Retry-After"] == "10"  # 100 tokens short at 10 a second
    assert q.running(1) == 0  # a refused request does not keep its slot


def test_a_request_larger_than_the_whole_budget_can_still_run_on_a_full_bucket():
    q = quotas(tokens_per_minute=100)

    async def scenario():
        async with llm_slot(q, 1, 4096):
            pass

    asyncio.run(scenario())


def test_through_a_route_the_refusal_is_a_429_in_the_one_error_shape():
    app = FastAPI()
    install_handlers(app)
    app.state.llm_quotas = quotas(concurrency=1)

    @app.post("/generate")
    async def generate(request: Request) -> dict:
        async with llm_slot(request.app.state, 1, 10):
            return {"ok": True}

    with TestClient(app) as client:
        app.state.llm_quotas._running[1] = 1  # a generation of tenant 1 is running
        refused = client.post("/generate")
        app.state.llm_quotas._running.clear()
        allowed = client.post("/generate")
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert refused.json()["error"]["code"] == "tenant_llm_concurrency"
    assert set(refused.json()["error"]) == {"message", "type", "param", "code"}
    assert allowed.status_code == 200
