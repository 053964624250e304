"""A ticket's language, guessed from its common words: a drift signal, not a translation aid.

Drift monitoring needs only to notice that traffic is no longer in the language the model was
trained on (Banking77: English), so a small stop-word vote is enough and needs no model, no
download and no extra package. Texts too short to hold a stop word are "unknown"; texts mostly
outside the Latin script are "other". Both happen in the reference too, so neither drifts alone.
"""

import re


def _words(spaced: str) -> frozenset[str]:
    return frozenset(spaced.split())


STOP_WORDS: dict[str, frozenset[str]] = {
    "en": _words(
        "the a an i my me is are was have has to of and in on for it this that you can "
        "do does did not what why how when where with be been will would"
    ),
    "de": _words(
        "der die das ich mein meine ist sind war habe hat zu und in auf für es nicht "
        "was warum wie wann wo mit ein eine einen kann noch mir bitte"
    ),
    "es": _words(
        "el la los las yo mi es son fue he ha de y en para no que por qué cómo cuándo "
        "dónde con un una puedo mis se está"
    ),
    "fr": _words(
        "le la les je mon ma mes est sont été ai a de et en pour ne pas que pourquoi "
        "comment quand où avec un une puis-je"
    ),
}
_WORD = re.compile(r"[^\W\d_]+(?:-[^\W\d_]+)?")


def detect_language(text: str) -> str:
    """The language whose stop words `text` holds most ("unknown" when none, "other" when the
    letters are mostly not Latin); ties go to English, the model's own language."""
    letters = [c for c in text if c.isalpha()]
    if not letters:
        return "unknown"
    if sum(c < "\u0250" for c in letters) < len(letters) / 2:  # Latin letters end at U+024F
        return "other"
    words = _WORD.findall(text.lower())
    votes = {lang: sum(w in stop for w in words) for lang, stop in STOP_WORDS.items()}
    best = max(votes, key=lambda lang: (votes[lang], lang == "en"))
    return best if votes[best] else "unknown"
