import asyncio

import pytest

from orchestrator.services.draft_checks import check_draft, missing_facts
from orchestrator.services.drafts import (
    CLOSING,
    OPENING_PREFIX,
    PLAIN_OPENING,
    Draft,
    LetterPart,
    Restart,
    clean_opening,
    compose,
    load_notes,
    opening_messages,
    stream_draft,
    ticket_text,
    write_draft,
)
from orchestrator.triton.llm_client import Generation, LLMTimeout, LLMUnavailable

BODY = "Hello,\n\nMy new card has not come in the post yet. What should I do?\n\nThanks,\nTom"


class ScriptedLLM:
    """Answers each call with the next of `replies` (or raises it, when it is an error)."""

    def __init__(self, *replies):
        self.replies = list(replies)
        self.calls: list[dict] = []

    async def stream(self, messages, **params):
        """The reply in two pieces, as Triton streams it, then its Generation."""
        self.calls.append({"messages": messages, **params})
        reply = self.replies.pop(0)
        if isinstance(reply, Exception):
            raise reply
        half = len(reply) // 2
        for piece in (reply[:half], reply[half:]):
            yield piece
        yield Generation(reply, "stop", 100, 12)


def _draft(llm, intent="card_arrival", body=BODY, **options):
    return asyncio.run(write_draft(llm, intent, "Card", body, **options))


def test_the_opening_prompt_is_few_shot_and_ends_with_the_ticket_then_the_prefix():
    messages = opening_messages("Where is my card?", "Ordered it two weeks ago.")
    assert messages[0]["role"] == "system"
    examples = messages[1:-2]
    assert examples and [m["role"] for m in examples] == ["user", "assistant"] * (
        len(examples) // 2
    )
    assert all(m["content"].startswith(OPENING_PREFIX) for m in examples[1::2])
    assert messages[-2] == {
        "role": "user",
        "content": ticket_text("Where is my card?", "Ordered it two weeks ago."),
    }
    assert messages[-1] == {"role": "assistant", "content": OPENING_PREFIX, "prefix": True}


@pytest.mark.parametrize(
    "sentence",
    [
        "your card, arriving in 3 days",  # a number the note does not hold
        "Cards > Track",  # a menu path
        "this; as an AI, I'm unable to help with that",  # a refusal
        "how my new card has not come in the post yet",  # the customer's own words
        "the " + "card " * 30,  # too long for one opening sentence
        "what, could you tell us more?",  # a question back
        "",
    ],
)
def test_an_opening_failing_a_check_is_not_used(sentence):
    assert clean_opening(sentence, ticket_text("Card", BODY)) is None


def test_a_good_opening_is_tidied_into_one_sentence():
    text = ' your card,\n which is late" '
    assert clean_opening(text, BODY) == f"{OPENING_PREFIX} your card, which is late."


def test_the_letter_greets_the_customer_and_carries_the_note_whole():
    llm = ScriptedLLM(" your new card, which has not arrived")
    draft = _draft(llm, seed=5)
    note = load_notes()["card_arrival"]
    assert draft.source == "llm"
    opening = f"{OPENING_PREFIX} your new card, which has not arrived."
    assert draft.text == f"Hi Tom,\n\n{opening} {note.note}\n\n{CLOSING}"
    assert draft.generation.completion_tokens == 12
    assert llm.calls[0]["temperature"] == 0.0 and llm.calls[0]["seed"] == 5
    check = check_draft(
        draft.text, note=note.note, key_facts=note.key_facts, ticket=BODY, name="Tom"
    )
    assert check.passed, check.failures


def test_a_rejected_opening_is_retried_with_sampling_then_replaced():
    retried = ScriptedLLM("the 3 days", "your new card")
    assert f"{OPENING_PREFIX} your new card. " in _draft(retried).text
    assert retried.calls[1]["temperature"] > 0
    plain = ScriptedLLM("Cards > Track", "nothing, as an AI I cannot help")
    draft = _draft(plain, body="Where is my card?")
    assert draft.source == "fallback"
    assert draft.text.startswith(f"Hello,\n\n{PLAIN_OPENING} ")


def test_an_unavailable_llm_gives_the_marked_fallback_or_raises_for_a_retry():
    note = load_notes()["exchange_charge"]
    for error in (LLMUnavailable("down"), LLMTimeout("slow")):
        draft = _draft(ScriptedLLM(error), intent="exchange_charge")
        assert draft.source == "fallback" and note.note in draft.text
        assert draft.generation is None
    with pytest.raises(LLMUnavailable):
        _draft(ScriptedLLM(LLMUnavailable("down")), fallback_when_down=False)
    # a slow LLM is not retried later: the fallback answers even then
    assert _draft(ScriptedLLM(LLMTimeout("slow")), fallback_when_down=False).source == "fallback"


def test_every_note_states_its_own_key_facts():
    """The letter carries the note whole: that states the facts only if the note has them."""
    for intent, note in load_notes().items():
        assert note.key_facts, intent
        assert missing_facts(note.note, note.key_facts) == [], intent


def test_the_plain_letter_passes_every_check_for_every_intent():
    for intent, note in load_notes().items():
        text = compose(note, PLAIN_OPENING, "Sam")
        check = check_draft(text, note=note.note, key_facts=note.key_facts, ticket="Hi", name="Sam")
        assert check.passed, (intent, check.failures)


def _streamed(llm, body=BODY) -> list:
    async def collect() -> list:
        return [item async for item in stream_draft(llm, "card_arrival", "Card", body)]

    return asyncio.run(collect())


def test_the_draft_streams_as_written_and_its_pieces_add_up_to_the_letter():
    items = _streamed(ScriptedLLM(" your new card, which has not arrived"))
    *pieces, draft = items
    assert isinstance(draft, Draft)
    # the greeting and prefix, the model's two pieces (the only ones timed as tokens), the rest
    assert [type(p) for p in pieces] == [LetterPart, str, str, LetterPart]
    assert pieces[0] == LetterPart(f"Hi Tom,\n\n{OPENING_PREFIX}")
    assert _preview(pieces) == draft.text


def _preview(items: list) -> str:
    """What a page shows: pieces appended, a Restart replacing all before it."""
    shown = ""
    for item in items:
        if isinstance(item, Restart):
            shown = item.text
        else:
            shown += item.text if isinstance(item, LetterPart) else item
    return shown


def test_a_retried_or_replaced_opening_restarts_the_preview():
    *items, draft = _streamed(ScriptedLLM("the 3 days", "your new card"))
    first = items.index(Restart(f"Hi Tom,\n\n{OPENING_PREFIX}"))  # before the sampled retry
    assert "the 3 days" in _preview(items[:first]) and "3 days" not in _preview(items)
    assert items[1:first] == ["the 3", " days"]  # the refused sentence, as the model wrote it
    assert _preview(items) == draft.text
    *items, draft = _streamed(ScriptedLLM("Cards > Track", "nothing, as an AI I cannot help"))
    assert draft.source == "fallback" and items[-1] == Restart(draft.text)
