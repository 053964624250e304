"""A ticket's sentiment on five levels, from VADER (vaderSentiment, MIT): a lexicon of about
7,500 English words and emoticons with valences from -4 to +4, and rules for negation,
intensifiers ("very", "extremely"), capitals and exclamation marks, summed into a compound
score from -1 to +1.

VADER's lexicon is English. A text in another language is scored by the same rules with this
module's own short lexicon instead (OTHER_LANGUAGES: the words customers use most in
complaints and thanks in German, French, Spanish, Italian and Portuguese, valences on VADER's
scale) plus VADER's emoticons, and with its language's negations ("nicht", "pas", "não", ...)
read as "not", so that VADER's negation rule turns "nicht gut" around. In any other language
only emoticons, capitals and "!!!" count: mostly "neutral". README, "Ticket signals", has the
accuracy on the project's own labelled tickets, per language.
"""

import re
from functools import cache

LEVELS = ("very_negative", "negative", "neutral", "positive", "very_positive")
# VADER's time grows faster than the text (2.5 ms for 1,000 characters, 27 ms for 4,000, 650
# ms for 20,000 on 2 cores): a ticket's opening sets its tone, so only that is read.
MAX_CHARACTERS = 2000
# Compound scores at which each level above the first begins
CUTS = (-0.6, -0.15, 0.15, 0.6)

# A word shared by several languages ("horrible", "problema") is listed once.
OTHER_LANGUAGES: dict[str, float] = {
    # German
    "danke": 1.9, "dankbar": 2.0, "super": 2.9, "toll": 2.5, "gut": 1.9, "prima": 2.3,
    "zufrieden": 1.9, "schnell": 0.8, "hilfreich": 1.8, "freundlich": 1.9, "perfekt": 2.7,
    "schlecht": -2.5, "schlechter": -2.3, "furchtbar": -3.0, "schrecklich": -3.0,
    "katastrophe": -3.1, "unverschämt": -2.9, "ärgerlich": -2.3, "verärgert": -2.5,
    "enttäuscht": -2.3, "frustriert": -2.4, "wütend": -2.9, "lächerlich": -2.2,
    "betrug": -2.9, "inakzeptabel": -2.6, "problem": -1.7, "fehler": -1.6, "leider": -1.0,
    # French
    "merci": 1.8, "génial": 2.8, "parfait": 2.7, "excellent": 3.0, "bien": 1.7, "content": 1.8,
    "satisfait": 1.9, "rapide": 0.8, "aimable": 1.9, "mauvais": -2.5, "nul": -2.4,
    "horrible": -3.0, "inadmissible": -2.9, "scandaleux": -2.9, "inacceptable": -2.6,
    "déçu": -2.3, "déçue": -2.3, "furieux": -3.0, "furieuse": -3.0, "énervé": -2.4,
    "honte": -2.5, "arnaque": -2.9, "ridicule": -2.2, "problème": -1.7, "erreur": -1.6,
    "malheureusement": -1.0,
    # Spanish
    "gracias": 1.9, "genial": 2.8, "perfecto": 2.7, "excelente": 3.0, "bueno": 1.9,
    "buena": 1.9,
    "contento": 1.9, "contenta": 1.9, "satisfecho": 1.9, "amable": 1.9, "malo": -2.5,
    "mala": -2.5, "pésimo": -3.0, "pésima": -3.0, "terrible": -3.0,
    "inaceptable": -2.6, "decepcionado": -2.3, "decepcionada": -2.3, "enfadado": -2.5,
    "enfadada": -2.5, "furioso": -3.0, "furiosa": -3.0, "vergüenza": -2.5, "estafa": -2.9,
    "ridículo": -2.2, "problema": -1.7, "desgraciadamente": -1.0, "lamentablemente": -1.0,
    # Italian
    "grazie": 1.9, "ottimo": 2.9, "perfetto": 2.7, "eccellente": 3.0, "buono": 1.9,
    "buona": 1.9, "bravi": 2.0, "soddisfatto": 1.9, "soddisfatta": 1.9, "gentile": 1.9,
    "cattivo": -2.5,
    "pessimo": -3.0, "pessima": -3.0, "orribile": -3.0, "terribile": -3.0,
    "inaccettabile": -2.6, "deluso": -2.3, "delusa": -2.3, "arrabbiato": -2.5,
    "arrabbiata": -2.5, "vergogna": -2.5, "truffa": -2.9, "ridicolo": -2.2,
    "purtroppo": -1.0,
    # Portuguese
    "obrigado": 1.9, "obrigada": 1.9, "ótimo": 2.9, "perfeito": 2.7,
    "bom": 1.9, "boa": 1.9, "satisfeito": 1.9, "satisfeita": 1.9, "péssimo": -3.0, "péssima": -3.0,
    "horrível": -3.0, "inaceitável": -2.6, "chateado": -2.3,
    "chateada": -2.3, "irritado": -2.4, "vergonha": -2.5, "golpe": -2.0,
    "infelizmente": -1.0,
}  # fmt: skip
# Each language's negations, read as "not" (VADER's negation rule is English). French "ne" is
# left out: "pas" or "jamais" follows it, and "personne ne répond" must not negate what follows.
NEGATIONS = {
    "de": r"nicht|kein|keine|keinen|nie|niemals",
    "fr": r"pas|jamais",
    "es": r"no|nunca|jamás",
    "it": r"non|mai",
    "pt": r"não|nunca|jamais",
}
NEGATION_PATTERNS = {
    language: re.compile(rf"\b({words})\b", re.IGNORECASE) for language, words in NEGATIONS.items()
}


@cache
def _analyzers():
    """(English: VADER as it ships; other languages: OTHER_LANGUAGES and VADER's emoticons).
    VADER's English words are left out of the second: many are other languages' common words
    ("die" is German's "the", "no" Portuguese's "in the")."""
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    english, other = SentimentIntensityAnalyzer(), SentimentIntensityAnalyzer()
    other.lexicon = {
        token: valence
        for token, valence in english.lexicon.items()
        if not any(c.isalpha() for c in token)
    } | OTHER_LANGUAGES
    return english, other


def compound(text: str, language: str | None = None) -> float:
    """VADER's compound score of `text`, from -1 (most negative) to +1: English (and texts of
    no known language) with VADER's lexicon, the others with OTHER_LANGUAGES and their
    negations read as "not"."""
    english, other = _analyzers()
    text = text[:MAX_CHARACTERS]
    if language in (None, "en"):
        return english.polarity_scores(text)["compound"]
    if language in NEGATION_PATTERNS:
        text = NEGATION_PATTERNS[language].sub("not", text)
    return other.polarity_scores(text)["compound"]


def level_of(score: float) -> str:
    return LEVELS[sum(score >= cut for cut in CUTS)]


def sentiment(text: str, language: str | None = None) -> str:
    """One of LEVELS."""
    return level_of(compound(text, language))
