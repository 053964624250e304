"""Grounded draft replies: a prompt built from tone, the intent's answer note and the ticket.

The note (data/answer_notes.yaml) carries the bank's policy. A small model paraphrases, and
a paraphrase may drop a fee or a deadline, so a draft is checked for the note's key facts;
when any is missing the note itself is appended as the "what to do" part. A fallback draft,
built from the note alone and marked as such, answers when the LLM is unavailable or slow.
"""

from collections.abc import AsyncIterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from orchestrator.settings import PROJECT_ROOT
from orchestrator.triton.llm_client import Generation, LLMClient, LLMTimeout, LLMUnavailable

DEFAULT_NOTES = PROJECT_ROOT / "data" / "answer_notes.yaml"
TONE = (
    "You are a customer-support agent at Northwind Bank. Write a short, warm, professional "
    "reply to the customer in plain English, at most four sentences. Use only the policy "
    "given; do not invent fees, times or features. Do not add a signature."
)


@dataclass(frozen=True)
class AnswerNote:
    intent: str
    note: str
    key_facts: tuple[str, ...]


@dataclass(frozen=True)
class Draft:
    text: str
    source: str  # "llm" or "fallback"
    generation: Generation | None = None  # token counts, when the LLM wrote it


@cache
def load_notes(path: Path = DEFAULT_NOTES) -> dict[str, AnswerNote]:
    raw = yaml.safe_load(path.read_text())["notes"]
    return {k: AnswerNote(k, v["note"], tuple(v["key_facts"])) for k, v in raw.items()}


def draft_messages(note: AnswerNote, subject: str, body: str) -> list[dict]:
    """Chat messages asking the LLM for a reply grounded in `note`."""
    ticket = f"Subject: {subject}\n\n{body}".strip() if subject else body.strip()
    return [
        {"role": "system", "content": f"{TONE}\n\nPolicy for this request: {note.note}"},
        {"role": "user", "content": ticket},
    ]


def missing_facts(text: str, note: AnswerNote) -> list[str]:
    lowered = text.lower()
    return [fact for fact in note.key_facts if fact.lower() not in lowered]


def grounded(llm_text: str, note: AnswerNote) -> Draft:
    """The LLM's reply, with the note appended when it left out any key fact."""
    text = llm_text.strip()
    if missing_facts(text, note):
        text = f"{text}\n\nWhat to do: {note.note}" if text else fallback(note).text
    return Draft(text, "llm")


def fallback(note: AnswerNote) -> Draft:
    return Draft(f"Thank you for contacting Northwind Bank.\n\n{note.note}", "fallback")


async def stream_draft(
    llm: LLMClient,
    intent: str,
    subject: str,
    body: str,
    *,
    max_tokens: int = 96,
    timeout_s: float = 20.0,
    seed: int | None = None,
    fallback_when_down: bool = True,
    priority: str | None = None,
) -> AsyncIterator[str | Draft]:
    """The LLM's text as it comes, then the grounded Draft.

    A slow LLM gets the marked fallback draft. An unreachable one does too, unless
    `fallback_when_down` is False: then LLMUnavailable is raised so the caller can retry.
    """
    note = load_notes()[intent]
    try:
        async for item in llm.stream(
            draft_messages(note, subject, body),
            max_tokens=max_tokens,
            timeout_s=timeout_s,
            seed=seed,
            priority=priority,
        ):
            if isinstance(item, Generation):
                draft = grounded(item.text, note)
                yield Draft(draft.text, draft.source, item)
                return
            yield item
    except LLMTimeout:
        yield fallback(note)
    except LLMUnavailable:
        if not fallback_when_down:
            raise
        yield fallback(note)


async def write_draft(llm: LLMClient, intent: str, subject: str, body: str, **options) -> Draft:
    """A grounded LLM draft, or the marked fallback when the LLM is unavailable or too slow."""
    async for item in stream_draft(llm, intent, subject, body, **options):
        if isinstance(item, Draft):
            return item
    raise AssertionError("stream_draft always ends with a Draft")
