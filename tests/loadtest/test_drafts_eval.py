import asyncio

from loadtest.bench.drafts import Ticket, draft_all, load_tickets, summary
from orchestrator.services.draft_checks import customer_name
from orchestrator.services.drafts import load_notes
from orchestrator.triton.llm_client import Generation, final_generation


class EchoLLM:
    """Writes `opening` for tickets about cards and a sentence with an invented fee otherwise."""

    model = "llm"

    def __init__(self):
        self.closed = False

    async def stream(self, messages, **params):
        ticket = next(m["content"] for m in reversed(messages) if m["role"] == "user")
        text = " your card" if "card" in ticket else " the fee of £9"
        yield text
        yield Generation(text, "stop", 50, 3, model=self.model)

    async def generate(self, messages, **params) -> Generation:
        return await final_generation(self.stream(messages, **params))

    async def close(self):
        self.closed = True


def test_the_tickets_cover_every_intent_twice_with_most_signed():
    tickets = load_tickets()
    assert len(tickets) >= 150
    intents = [t.intent for t in tickets]
    assert set(intents) == set(load_notes())
    assert all(intents.count(i) >= 2 for i in set(intents))
    assert sum(customer_name(t.body) is not None for t in tickets) > len(tickets) // 2


def test_summary_scores_each_check_and_intent():
    tickets = [
        Ticket("card_arrival", "Card", "Where is my card?\n\nThanks,\nAnn"),
        Ticket("exchange_charge", "Fee", "What do you charge?\n\nThanks,\nBo"),
    ]
    llm = EchoLLM()
    drafted = asyncio.run(draft_all(llm, tickets, "composed", concurrency=2))
    assert llm.closed
    report = summary(drafted, "composed")
    # the second model sentence invents a fee: the draft falls back to the plain opening
    assert report["sources"] == {"llm": 1, "fallback": 1}
    assert report["pass_rate"] == 1.0
    freeform = asyncio.run(draft_all(EchoLLM(), tickets, "freeform", concurrency=2))
    report = summary(freeform, "freeform")
    assert report["pass_rate"] == 0.0
    assert report["per_check"]["name"] == 0.0 and report["per_check"]["no_refusal"] == 1.0
    assert report["per_intent"] == {"card_arrival": 0.0, "exchange_charge": 0.0}
    assert {f["intent"] for f in report["failures"]} == {"card_arrival", "exchange_charge"}
    assert report["draft_seconds"]["p95"] >= report["draft_seconds"]["median"] >= 0
