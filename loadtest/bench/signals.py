"""`python -m loadtest.bench signals`: the ticket signals read at intake, measured on the
project's own labelled sets (data/signal_tickets.yaml, data/automated_mail.yaml).

- language: the share of the 72 tickets identified as the language they were written in, per
  language;
- sentiment: per language, the share on the right level of five and the share at most one
  level off, and the confusion of labelled against found levels;
- auto-replies and bulk mail: each raw message parsed as the e-mail intake parses it, flagged
  or not, against its label;
- time: the median milliseconds to read one ticket's signals, in process.
"""

import statistics
import time
from collections import defaultdict
from pathlib import Path

import yaml

from loadtest.machine import command_line, machine_facts
from orchestrator.services.email_intake import parse_email
from orchestrator.services.ticket_signals import signals_of
from orchestrator.services.ticket_signals.sentiment import LEVELS

DATA = Path(__file__).parents[2] / "data"
KEYS = ("tickets", "language_right", "sentiment_right", "sentiment_within_one")


def run() -> dict:
    tickets = yaml.safe_load((DATA / "signal_tickets.yaml").read_text())["tickets"]
    mail = yaml.safe_load((DATA / "automated_mail.yaml").read_text())["messages"]
    signals_of("", "warm-up")  # loads the language model and VADER's lexicon
    per_language: dict[str, dict] = defaultdict(lambda: defaultdict(int))
    confusion = {level: dict.fromkeys(LEVELS, 0) for level in LEVELS}
    seconds = []
    for ticket in tickets:
        started = time.perf_counter()
        found = signals_of("", ticket["text"])
        seconds.append(time.perf_counter() - started)
        counts = per_language[ticket["language"]]
        counts["tickets"] += 1
        counts["language_right"] += found.language == ticket["language"]
        distance = abs(LEVELS.index(found.sentiment) - LEVELS.index(ticket["sentiment"]))
        counts["sentiment_right"] += distance == 0
        counts["sentiment_within_one"] += distance <= 1
        confusion[ticket["sentiment"]][found.sentiment] += 1
    flags = [_flagged(message) for message in mail]
    return {
        "benchmark": "signals",
        "command": command_line(),
        "machine": machine_facts(),
        "tickets": len(tickets),
        "by_language": {lang: _shares(counts) for lang, counts in sorted(per_language.items())},
        "overall": _shares({key: sum(c[key] for c in per_language.values()) for key in KEYS}),
        "sentiment_confusion_labelled_to_found": confusion,
        "automated_mail": {
            "messages": len(mail),
            "right": sum(f["right"] for f in flags),
            "each": flags,
        },
        "median_ms_per_ticket": round(1000 * statistics.median(seconds), 3),
    }


def _shares(counts: dict) -> dict:
    n = counts["tickets"]
    return {
        "tickets": n,
        "language_accuracy": round(counts["language_right"] / n, 4),
        "sentiment_exact": round(counts["sentiment_right"] / n, 4),
        "sentiment_within_one_level": round(counts["sentiment_within_one"] / n, 4),
    }


def _flagged(message: dict) -> dict:
    parsed = parse_email(message["raw"].replace("\n", "\r\n").encode())
    automation = signals_of(parsed.subject, parsed.body, parsed.headers, parsed.sender).automation
    expected = (message["auto_reply"], message["spam"])
    return {
        "name": message["name"],
        "expected": {"auto_reply": expected[0], "spam": expected[1]},
        "right": (automation.auto_reply, automation.spam) == expected,
        "reasons": automation.reasons,
    }
