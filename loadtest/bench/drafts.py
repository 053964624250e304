"""The draft evaluation: the project's own tickets through the draft writer, every check scored.

`python -m loadtest.bench drafts` drafts a reply to each ticket of data/draft_tickets.yaml
(two e-mails per intent, written for this project) through the real `llm` model in Triton,
checks each reply (orchestrator.services.draft_checks), and reports the pass rate overall,
per check and per intent, with the median and p95 time per draft. Nothing is appended to a
reply after the model: what is scored is what an agent would get.

Strategies, so that what was tried stays measurable side by side:
- `composed` (the product): greeting, the model's sentence about this request, the note,
  a closing line (orchestrator.services.drafts);
- `freeform`: the model writes the whole reply from a prompt carrying the note (what the
  product did before).
"""

import asyncio
import contextlib
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from contracts import PROJECT_ROOT
from contracts.models import LLM_MODEL
from loadtest.bench.servers import free_port
from orchestrator.services import draft_checks
from orchestrator.services.drafts import load_notes, ticket_text, write_draft
from orchestrator.settings import TritonSettings
from orchestrator.triton.launcher import TritonServer
from orchestrator.triton.llm_client import LLMClient, LLMUnavailable

DEFAULT_TICKETS = PROJECT_ROOT / "data" / "draft_tickets.yaml"
FREEFORM_TONE = (
    "You are a customer-support agent at Northwind Bank. Write a short, warm, professional "
    "reply to the customer in plain English, at most four sentences. Use only the policy "
    "given; do not invent fees, times or features. Do not add a signature."
)


@dataclass(frozen=True)
class Ticket:
    intent: str
    subject: str
    body: str


@dataclass(frozen=True)
class Drafted:
    ticket: Ticket
    text: str
    source: str
    seconds: float
    check: draft_checks.DraftCheck


def load_tickets(path: Path = DEFAULT_TICKETS) -> list[Ticket]:
    raw = yaml.safe_load(path.read_text())["tickets"]
    return [Ticket(t["intent"], t["subject"], t["body"]) for t in raw]


async def _composed(llm: LLMClient, ticket: Ticket, seed: int) -> tuple[str, str]:
    draft = await write_draft(llm, ticket.intent, ticket.subject, ticket.body, seed=seed)
    return draft.text, draft.source


async def _freeform(llm: LLMClient, ticket: Ticket, seed: int) -> tuple[str, str]:
    note = load_notes()[ticket.intent]
    messages = [
        {"role": "system", "content": f"{FREEFORM_TONE}\n\nPolicy for this request: {note.note}"},
        {"role": "user", "content": ticket_text(ticket.subject, ticket.body)},
    ]
    try:
        generation = await llm.generate(messages, max_tokens=96, seed=seed, timeout_s=300)
    except LLMUnavailable as error:  # scored as a failed draft, not a crashed evaluation
        return f"(no draft: {error})", "error"
    return generation.text.strip(), generation.model or "llm"


STRATEGIES: dict[str, Callable[[LLMClient, Ticket, int], Awaitable[tuple[str, str]]]] = {
    "composed": _composed,
    "freeform": _freeform,
}


def score(ticket: Ticket, text: str) -> draft_checks.DraftCheck:
    note = load_notes()[ticket.intent]
    return draft_checks.check_draft(
        text,
        note=note.note,
        key_facts=note.key_facts,
        ticket=ticket_text(ticket.subject, ticket.body),
        name=draft_checks.customer_name(ticket.body),
    )


async def draft_all(
    llm: LLMClient, tickets: list[Ticket], strategy: str, concurrency: int
) -> list[Drafted]:
    write = STRATEGIES[strategy]
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int, ticket: Ticket) -> Drafted:
        async with gate:
            started = time.perf_counter()
            text, source = await write(llm, ticket, i)
            seconds = time.perf_counter() - started
        return Drafted(ticket, text, source, seconds, score(ticket, text))

    drafted = await asyncio.gather(*(one(i, t) for i, t in enumerate(tickets)))
    await llm.close()
    return list(drafted)


def _rate(passed: int, total: int) -> float:
    return round(passed / total, 4) if total else 0.0


def summary(drafted: list[Drafted], strategy: str) -> dict:
    """Pass rates overall, per check and per intent; draft time median and p95."""
    total = len(drafted)
    failed_checks = Counter(name for d in drafted for name in d.check.failures)
    by_intent: dict[str, list[bool]] = defaultdict(list)
    for d in drafted:
        by_intent[d.ticket.intent].append(d.check.passed)
    seconds = sorted(d.seconds for d in drafted)
    return {
        "strategy": strategy,
        "tickets": total,
        "pass_rate": _rate(sum(d.check.passed for d in drafted), total),
        "per_check": {c: _rate(total - failed_checks[c], total) for c in draft_checks.CHECKS},
        "per_intent": {i: _rate(sum(r), len(r)) for i, r in sorted(by_intent.items())},
        "sources": dict(Counter(d.source for d in drafted)),
        "draft_seconds": {
            "median": round(statistics.median(seconds), 3),
            "p95": round(seconds[min(total - 1, int(0.95 * total))], 3),
        },
        "failures": [
            {"intent": d.ticket.intent, "subject": d.ticket.subject, "failed": d.check.failures}
            for d in drafted
            if not d.check.passed
        ],
        "examples": [
            {"intent": d.ticket.intent, "source": d.source, "draft": d.text} for d in drafted
        ],
    }


def run(*, url: str, strategies: list[str], concurrency: int, limit: int | None) -> dict:
    tickets = load_tickets()[:limit]
    results = {}
    for strategy in strategies:
        drafted = asyncio.run(draft_all(LLMClient(url), tickets, strategy, concurrency))
        results[strategy] = summary(drafted, strategy)
    return results


@contextlib.contextmanager
def triton_with_llm(settings: TritonSettings):
    """A Triton of its own, on free loopback ports, serving only the `llm` model."""
    ports = {"http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port()}
    # No control secret: this Triton is the evaluation's own, on loopback, and it is stopped after.
    own = settings.model_copy(update={**ports, "models": (LLM_MODEL,), "control_secret": None})  # nosec B105  # a None, not a password
    with TritonServer(own):
        yield own.grpc_url
