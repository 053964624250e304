"""Draft replies: one letter to the customer, with the policy in it word for word.

The intent's answer note (data/answer_notes.yaml) carries the bank's policy: fees, times and
where things are in the app. A 135M-parameter model paraphrasing it drops or changes those
(measured: see README, "Draft replies"), so the model does what it does well and the note
does the rest. The letter is composed of:

- a greeting with the customer's name when their e-mail is signed with one;
- one sentence the model writes about this customer's own request (few-shot prompted, its
  start "Thank you for getting in touch about" given as a prefix, so that it names the
  request rather than greeting, refusing or answering), kept
  only when it passes the draft checks (orchestrator.services.draft_checks): no number, time
  or menu path of its own, no refusal, no copying the customer's words, a whole sentence;
  otherwise one retry with sampling, then a plain thank-you sentence;
- the note, as the body of the letter;
- a closing line.

When the LLM is unavailable or too slow, the same letter with the plain opening is the
fallback draft, marked `source="fallback"`.

The instructions, the retry's temperature, the sentence's token budget and its stop words
are the defaults of the `drafts` configuration, which an environment may change
(services/configs.py); the examples, the prefix and the checks are not configurable: they
are what keeps the sentence free of invented facts.
"""

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import yaml

from orchestrator.services import draft_checks
from orchestrator.settings import PROJECT_ROOT
from orchestrator.triton.llm_client import Generation, LLMClient, LLMTimeout, LLMUnavailable

DEFAULT_NOTES = PROJECT_ROOT / "data" / "answer_notes.yaml"

OPENING_INSTRUCTIONS = (
    "You are a support agent at Northwind Bank. Write the first sentence of your reply to "
    "the customer's e-mail: thank them and say in your own words what they need help with. "
    "One sentence only. Do not answer the question yet, and do not mention numbers, fees, "
    "times or the app's menus."
)
# Few-shot examples, one per kind of request: the model copies their length and tone.
OPENING_EXAMPLES = (
    (
        "Hi, I ordered a new card ten days ago and it still has not arrived. Where is it?",
        "Thank you for getting in touch about your new card, which has not reached you yet.",
    ),
    (
        "Hello, I was charged twice for the same dinner last night. Can I get one back?",
        "Thank you for getting in touch about the double charge for your dinner.",
    ),
    (
        "Hi team, what documents do you need from me to confirm who I am?",
        "Thank you for getting in touch about confirming your identity with us.",
    ),
    (
        "Hello, is there a fee if I send money to my cousin in Canada?",
        "Thank you for getting in touch about the cost of sending money abroad.",
    ),
)
OPENING_PREFIX = "Thank you for getting in touch about"
PLAIN_OPENING = "Thank you for getting in touch with us."
CLOSING = "If there is anything else we can help with, just reply to this message."
OPENING_MAX_TOKENS = 40
RETRY_TEMPERATURE = 0.7  # the first attempt is greedy; the retry samples
# A comma too: what follows one in a sentence this short is a claim about the case.
OPENING_STOP = (".", ",", "!", "?", "\n")
# The model's sentence may not repeat this many words of the customer's in a row (the draft
# checks allow 7; a margin keeps the opening clearly the agent's own words).
OPENING_COPY_RUN = 6


@dataclass(frozen=True)
class AnswerNote:
    intent: str
    note: str
    key_facts: tuple[str, ...]


@dataclass(frozen=True)
class Draft:
    text: str
    # the model that wrote its opening ("llm", "llm_fallback"), or "fallback": no model did
    source: str
    generation: Generation | None = None  # token counts of the model's sentence


@dataclass(frozen=True)
class LetterPart:
    """Text of the letter that the model did not write (the greeting and the sentence's
    prefix before it, the note and the closing after): streamed like its pieces, but not
    counted as generated tokens."""

    text: str


@dataclass(frozen=True)
class Restart:
    """The text streamed so far is replaced by `text`: the model's sentence failed its check
    and is written again, or the letter came out other than its preview (a fallback, a
    sentence the check trimmed)."""

    text: str


@dataclass(frozen=True)
class _Checked:
    opening: str | None  # None: neither attempt passed the check
    generation: Generation | None


@cache
def load_notes(path: Path = DEFAULT_NOTES) -> dict[str, AnswerNote]:
    raw = yaml.safe_load(path.read_text())["notes"]
    return {k: AnswerNote(k, v["note"], tuple(v["key_facts"])) for k, v in raw.items()}


def ticket_text(subject: str, body: str) -> str:
    return f"Subject: {subject}\n\n{body}".strip() if subject else body.strip()


def opening_messages(
    subject: str, body: str, instructions: str = OPENING_INSTRUCTIONS
) -> list[dict]:
    """Chat messages asking the model for the letter's first sentence (few-shot)."""
    messages = [{"role": "system", "content": instructions}]
    for ticket, opening in OPENING_EXAMPLES:
        messages += [
            {"role": "user", "content": ticket},
            {"role": "assistant", "content": opening},
        ]
    return [
        *messages,
        {"role": "user", "content": ticket_text(subject, body)},
        {"role": "assistant", "content": OPENING_PREFIX, "prefix": True},
    ]


def clean_opening(text: str, ticket: str) -> str | None:
    """The model's continuation of OPENING_PREFIX as the letter's sentence, or None when it
    fails a check."""
    continuation = " ".join(text.split()).strip(" \"'")
    if not continuation:
        return None
    sentence = f"{OPENING_PREFIX} {continuation}"
    sentence = sentence if sentence[-1] in ".!?" else sentence + "."
    if not 4 <= len(draft_checks.words(sentence)) <= 30:
        return None
    if (
        draft_checks.invented_details(sentence)  # the note carries every number
        or draft_checks.refusals(sentence)
        or draft_checks.copied_runs(sentence, ticket, OPENING_COPY_RUN)
        or "?" in sentence
    ):
        return None
    return sentence


def compose(note: AnswerNote, opening: str, name: str | None) -> str:
    return f"{greeting(name)}{opening} {note.note}\n\n{CLOSING}"


def greeting(name: str | None) -> str:
    return (f"Hi {name}," if name else "Hello,") + "\n\n"


def fallback(note: AnswerNote, name: str | None = None) -> Draft:
    return Draft(compose(note, PLAIN_OPENING, name), "fallback")


async def _opening(
    llm: LLMClient,
    subject: str,
    body: str,
    *,
    timeout_s: float,
    seed: int | None,
    max_tokens: int,
    priority: str | None,
    retry_temperature: float,
    stop: Sequence[str],
    instructions: str,
    restart: Restart,
) -> AsyncIterator[str | Restart | _Checked]:
    """The model's sentence as it is written, then whether it passed the check (greedy, then
    one sampled retry, which first yields `restart`), with its token counts; both attempts
    together take at most `timeout_s`."""
    ticket, generation = ticket_text(subject, body), None
    deadline = time.monotonic() + timeout_s
    for attempt in range(2):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise LLMTimeout(f"no acceptable opening within {timeout_s} s")
        if attempt:
            yield restart
        async for item in llm.stream(
            opening_messages(subject, body, instructions),
            temperature=0.0 if attempt == 0 else retry_temperature,
            seed=attempt if seed is None else seed,
            stop=list(stop),
            timeout_s=remaining,
            max_tokens=max_tokens,
            priority=priority,
        ):
            if isinstance(item, Generation):
                generation = item
            else:
                yield item
        opening = clean_opening(generation.text, ticket)
        if opening is not None:
            yield _Checked(opening, generation)
            return
    yield _Checked(None, generation)


async def stream_draft(
    llm: LLMClient,
    intent: str,
    subject: str,
    body: str,
    *,
    timeout_s: float = 20.0,
    seed: int | None = None,
    fallback_when_down: bool = True,
    max_tokens: int = OPENING_MAX_TOKENS,
    priority: str | None = None,
    retry_temperature: float = RETRY_TEMPERATURE,
    stop: Sequence[str] = OPENING_STOP,
    instructions: str = OPENING_INSTRUCTIONS,
) -> AsyncIterator[str | LetterPart | Restart | Draft]:
    """The letter as it is written: the greeting (a LetterPart), the model's sentence piece
    by piece (str), the rest once the sentence passed its check (a LetterPart); a Restart
    where the preview must be replaced; then the whole Draft, which is what counts.

    A slow LLM gets the marked fallback draft. An unreachable one does too, unless
    `fallback_when_down` is False: then LLMUnavailable is raised so the caller can retry.
    """
    note = load_notes()[intent]
    name = draft_checks.customer_name(body)
    opening_start = greeting(name) + OPENING_PREFIX  # the model continues the prefix
    yield LetterPart(opening_start)
    written: list[str] = []  # the model's pieces since the last restart
    checked = _Checked(None, None)
    try:
        async for item in _opening(
            llm,
            subject,
            body,
            timeout_s=timeout_s,
            seed=seed,
            max_tokens=max_tokens,
            priority=priority,
            retry_temperature=retry_temperature,
            stop=stop,
            instructions=instructions,
            restart=Restart(opening_start),
        ):
            if isinstance(item, _Checked):
                checked = item
                continue
            if isinstance(item, Restart):
                written.clear()
            else:
                written.append(item)
            yield item
    except LLMTimeout:
        pass
    except LLMUnavailable:
        if not fallback_when_down:
            raise
    if checked.opening is None:
        draft = Draft(fallback(note, name).text, "fallback", checked.generation)
    else:
        draft = Draft(
            compose(note, checked.opening, name),
            checked.generation.model or "llm",
            checked.generation,
        )
    preview = opening_start + "".join(written)
    if draft.text.startswith(preview):
        yield LetterPart(draft.text[len(preview) :])
    else:
        yield Restart(draft.text)
    yield draft


async def write_draft(llm: LLMClient, intent: str, subject: str, body: str, **options) -> Draft:
    """A draft letter, or the marked fallback when the LLM is unavailable or too slow."""
    async for item in stream_draft(llm, intent, subject, body, **options):
        if isinstance(item, Draft):
            return item
    raise AssertionError("stream_draft always ends with a Draft")
