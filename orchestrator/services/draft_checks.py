"""What makes a draft reply one an agent would send, as checks a program can run.

The draft evaluation (`python -m loadtest.bench drafts`) reports each check's pass rate; the
draft writer (orchestrator.services.drafts) runs the same checks on the sentence the model
writes, and never sends one that fails them.
"""

import re
from dataclasses import dataclass

# The e-mail sign-offs after which a customer writes their name.
_SIGN_OFF = re.compile(
    r"^(thanks|thank you|many thanks|regards|kind regards|best|best wishes|best regards|"
    r"cheers|please help|thanks in advance)[,.!]?$",
    re.IGNORECASE,
)
_NAME = re.compile(r"^[A-Z][\w'’-]+(?: [A-Z][\w'’-]+){0,2}$")

# Numbers (with £ and %), number words before a unit of time, and app menu paths.
_NUMBER = re.compile(r"£?\d[\d,]*(?:\.\d+)?%?")
_NUMBER_WORD = re.compile(
    r"\b(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|twenty|thirty)"
    r"(?:[ -]\w+)? (?:minutes?|hours?|days?|weeks?|months?|years?)\b",
    re.IGNORECASE,
)
# A menu path is judged by the words on each side of its ">"s: "Cards > Track delivery" is
# "Cards > Track", so an invented item or one from another menu is caught.
_MENU_PATH = re.compile(r"\w+(?: > \w+)+")

_REFUSALS = re.compile(
    r"\b(?:i'?m unable to|i am unable to|i (?:can ?not|can't) (?:help|assist|provide)|"
    r"as an ai|language model|i'?m not equipped|i am not equipped|i'?m not able to|"
    r"i am not able to|i don'?t have access|i do not have access|as a customer support agent|"
    r"i'?m just an?|i am just an?|we do not currently offer)\b",
    re.IGNORECASE,
)
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")
_WORD = re.compile(r"[a-z0-9£%']+")


def customer_name(body: str) -> str | None:
    """The first name a customer signs an e-mail with ("Thanks,\\nPriya Sharma" -> "Priya")."""
    lines = [line.strip() for line in body.strip().splitlines() if line.strip()]
    if len(lines) < 2 or not _SIGN_OFF.match(lines[-2]) or not _NAME.match(lines[-1]):
        return None
    return lines[-1].split()[0]


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower().replace("’", "'"))


def _normal(text: str) -> str:
    return " ".join(text.lower().replace("’", "'").split())


def missing_facts(text: str, key_facts: tuple[str, ...]) -> list[str]:
    """The key facts not stated in `text` (case and spacing aside)."""
    lowered = _normal(text)
    return [fact for fact in key_facts if _normal(fact) not in lowered]


def invented_details(text: str, *allowed: str) -> list[str]:
    """Numbers, amounts, times and menu paths in `text` that none of `allowed` holds."""
    source = _normal(" ".join(allowed))
    found = _NUMBER.findall(text) + _NUMBER_WORD.findall(text) + _MENU_PATH.findall(text)
    return [item for item in found if _normal(item) not in source]


def refusals(text: str) -> list[str]:
    return [m.group(0) for m in _REFUSALS.finditer(text)]


def repetitions(text: str) -> list[str]:
    """A sentence said twice, or a 4-word run said three times."""
    sentences = [_normal(s) for s in _SENTENCE_END.split(text) if len(words(s)) >= 3]
    found = sorted({s for s in sentences if sentences.count(s) > 1})
    tokens = words(text)
    grams = [" ".join(tokens[i : i + 4]) for i in range(len(tokens) - 3)]
    found += sorted({g for g in grams if grams.count(g) >= 3})
    return found


def copied_runs(text: str, source: str, length: int = 8) -> list[str]:
    """Runs of `length` or more words of `source` that `text` repeats."""
    theirs = words(source)
    runs = {" ".join(theirs[i : i + length]) for i in range(len(theirs) - length + 1)}
    ours = words(text)
    return sorted({" ".join(ours[i : i + length]) for i in range(len(ours) - length + 1)} & runs)


def ends_complete(text: str) -> bool:
    return text.rstrip().endswith((".", "!", "?", '."', ".)"))


def addresses(text: str, name: str | None) -> bool:
    """Whether the reply's first line names the customer (always true without a name)."""
    if not name:
        return True
    first_line = text.strip().splitlines()[0] if text.strip() else ""
    return name.lower() in first_line.lower()


@dataclass(frozen=True)
class DraftCheck:
    """One draft's result for every check; `failures` names what failed and why."""

    failures: dict[str, list[str]]

    @property
    def passed(self) -> bool:
        return not self.failures


CHECKS = ("facts", "no_invention", "no_refusal", "no_repetition", "no_copy", "complete", "name")


def check_draft(
    reply: str, *, note: str, key_facts: tuple[str, ...], ticket: str, name: str | None
) -> DraftCheck:
    """Every check of the draft evaluation on one reply."""
    results = {
        "facts": missing_facts(reply, key_facts),
        "no_invention": invented_details(reply, note, ticket),
        "no_refusal": refusals(reply),
        "no_repetition": repetitions(reply),
        "no_copy": copied_runs(reply, ticket),
        "complete": [] if ends_complete(reply) else [reply.rstrip()[-40:]],
        "name": [] if addresses(reply, name) else [f"does not greet {name}"],
    }
    return DraftCheck({k: v for k, v in results.items() if v})
