"""Per-tenant LLM quotas, so that one tenant cannot fill every generation slot.

- Concurrency: at most `ORCHESTRATOR_TENANT_LLM_CONCURRENCY` generations of one tenant run at
  once on this replica (the LLM batches a fixed number of sequences; this keeps a share for
  the others).
- Tokens: a per-tenant bucket of `ORCHESTRATOR_TENANT_LLM_TOKENS_PER_MINUTE` tokens, shared by
  the replicas through Redis when there is one. A request reserves its `max_tokens` up front;
  what it did not use is given back when the route reports it (`slot.record(tokens)`).

Either refusal is a 429 with Retry-After. Use it around a generation:

    async with llm_slot(request.app.state, key.tenant_id, max_tokens) as slot:
        ... generate ...
        slot.record(completion_tokens)
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from orchestrator.api.ratelimit import Charge, Limiter, Rate, too_many


class LLMQuotas:
    def __init__(self, limiter: Limiter, concurrency: int, tokens_per_minute: int):
        self.limiter, self.concurrency = limiter, concurrency
        self.tokens = Rate(tokens_per_minute, tokens_per_minute) if tokens_per_minute else None
        self._running: dict[int, int] = {}  # tenant -> generations running (event loop only)

    def running(self, tenant_id: int) -> int:
        return self._running.get(tenant_id, 0)

    def _enter(self, tenant_id: int) -> None:
        if self.concurrency and self.running(tenant_id) >= self.concurrency:
            self.limiter.limited.labels("llm_concurrency").inc()
            raise too_many(
                f"this tenant already runs {self.concurrency} generations at once; retry when "
                "one has finished",
                1,
                code="tenant_llm_concurrency",
            )
        self._running[tenant_id] = self.running(tenant_id) + 1

    def _leave(self, tenant_id: int) -> None:
        left = self.running(tenant_id) - 1
        if left > 0:
            self._running[tenant_id] = left
        else:
            self._running.pop(tenant_id, None)

    def _charge(self, tenant_id: int, tokens: float) -> Charge:
        return Charge("llm_tokens", tenant_id, self.tokens, tokens)


class Slot:
    """What a generation tells its quota: the tokens it really used."""

    def __init__(self, reserved: float):
        self.reserved = reserved
        self.used: int | None = None

    def record(self, tokens: int) -> None:
        self.used = tokens


@asynccontextmanager
async def llm_slot(owner, tenant_id: int, max_tokens: int) -> AsyncIterator[Slot]:
    """A generation slot for `tenant_id`, or 429. `owner`: app.state, or the LLMQuotas."""
    quotas: LLMQuotas = owner if isinstance(owner, LLMQuotas) else owner.llm_quotas
    quotas._enter(tenant_id)
    try:
        # A request larger than the whole budget may still run when the bucket is full.
        reserved = min(float(max_tokens), quotas.tokens.burst) if quotas.tokens else 0.0
        if reserved > 0:
            wait = await quotas.limiter.take([quotas._charge(tenant_id, reserved)])
            if wait > 0:
                quotas.limiter.limited.labels("llm_tokens").inc()
                raise too_many(
                    "this tenant's LLM token budget per minute is spent",
                    wait,
                    code="tenant_llm_tokens",
                )
        slot = Slot(reserved)
        try:
            yield slot
        finally:
            unused = reserved - slot.used if slot.used is not None else 0.0
            if unused > 0:
                await quotas.limiter.take([quotas._charge(tenant_id, -unused)])
    finally:
        quotas._leave(tenant_id)
