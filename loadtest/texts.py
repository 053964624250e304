"""Ticket texts for load tests: real Banking77 queries where the data set lies, else a few."""

from export.data import load_banking77
from export.settings import ExportSettings

# Used when Banking77 is absent, so that a load test still runs on a machine without it.
FALLBACK_TEXTS = (
    "My card still hasn't arrived after two weeks. What should I do?",
    "I think someone used my card without permission. Please help.",
    "Why was I charged a fee when I topped up with my card?",
    "How long does a transfer to a European account take?",
    "The ATM kept my card. How do I get a new one?",
    "Can I change my PIN in the app?",
    "My top-up failed but the money left my bank account.",
    "What exchange rate do you use on weekends?",
    "Someone stole my card, please block it right now!",
    "How do I verify my identity?",
    "I was charged twice for the same purchase.",
    "Can I get a virtual card for online shopping?",
)


def ticket_texts(limit: int | None = None) -> list[str]:
    """Banking77's test texts (the folder `EXPORT_BANKING77_DIR` names), or the fallback."""
    try:
        texts = load_banking77(ExportSettings().banking77_dir).test.texts
    except FileNotFoundError:
        texts = list(FALLBACK_TEXTS)
    return texts[:limit] if limit else texts
