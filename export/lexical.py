"""The lexical view: which word pieces a text uses, as a third opinion beside the head and the vote.

A logistic regression on TF-IDF of the text's word-piece unigrams and bigrams (the served
tokenizer's own ids, [CLS] and [SEP] included, so "starts with" and "ends with" count), trained
on the training texts. It reads the exact words, not a sentence embedding: a differently made
view, which is what a blend needs. The served file blends its probabilities with the head's and
the vote's: (1 - weight) * the others + weight * lexical.

In the graph it reads the token ids the fused file's tokenizer already made (ONNX's
`TfIdfVectorizer` counts the n-grams), so it adds no step and no second tokenizer.
`lexical_probabilities` computes the same in NumPy, and the parity check holds the graph to it.

C and the n-grams chosen on a held-out tenth of Banking77's training texts with the quick recipe,
each recipe's weight on its own held-out tenth (README, "Triage accuracy"), never on the test
split.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

PAD = 0  # the tokenizer's padding id: never part of an n-gram
IDS_INPUT = "input_ids"  # the graph input the lexical view reads
ONE_ID = r"\S+"  # scikit-learn's "word" here: one token id, the ids joined by spaces


@dataclass(frozen=True)
class LexicalSettings:
    weight: float = 0.4  # the lexical view's share of the blended probabilities
    inverse_regularization: float = 30.0  # logistic regression's C
    max_iterations: int = 2000


# Each recipe's weight, the best on its held-out tenth of the training split (export/tune.py;
# README, "Triage accuracy"): a fine-tuned encoder's head leans less on the lexical view.
DEFAULT_LEXICAL = LexicalSettings(weight=0.2)  # a fine-tuned encoder (6 epochs, session 16)
FROZEN_LEXICAL = LexicalSettings(weight=0.4)  # a head on the packaged encoder (the quick recipe)


def lexical_for(epochs: int) -> LexicalSettings:
    """The recipe's lexical view: a fine-tuned encoder's (`epochs`) or the quick one's."""
    return DEFAULT_LEXICAL if epochs else FROZEN_LEXICAL


@dataclass(frozen=True)
class LexicalModel:
    ngrams: list[tuple[int, ...]]  # column j's n-gram of token ids
    idf: np.ndarray  # (columns,) float32
    coefficients: np.ndarray  # (columns, intents) float32
    intercept: np.ndarray  # (intents,) float32
    weight: float


def token_ids(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    """Each text's ids as `tokenizer` makes them ([CLS] and [SEP] included, no padding)."""
    return [[i for i in e.ids if i != PAD] for e in tokenizer.encode_batch(list(texts))]


def _as_words(ids: list[int]) -> str:
    return " ".join(map(str, ids))


def fit_lexical(
    ids: list[list[int]], labels: Sequence[int], num_intents: int, settings: LexicalSettings
) -> LexicalModel:
    vectorizer = TfidfVectorizer(
        token_pattern=ONE_ID, ngram_range=(1, 2), sublinear_tf=True, lowercase=False
    )
    features = vectorizer.fit_transform([_as_words(row) for row in ids])
    classifier = LogisticRegression(
        C=settings.inverse_regularization, max_iter=settings.max_iterations
    )
    classifier.fit(features, list(labels))
    coefficients = np.zeros((features.shape[1], num_intents), dtype=np.float32)
    intercept = np.full(num_intents, -1e4, dtype=np.float32)  # intents never seen: never chosen
    classes = classifier.classes_
    if len(classes) == 2:  # one row of weights, for the second class: softmax([0, z]) = sigmoid
        coefficients[:, classes[1]] = classifier.coef_[0]
        intercept[classes] = [0.0, classifier.intercept_[0]]
    else:
        coefficients[:, classes] = classifier.coef_.T
        intercept[classes] = classifier.intercept_
    ngrams = [()] * features.shape[1]
    for words, column in vectorizer.vocabulary_.items():
        ngrams[column] = tuple(int(w) for w in words.split())
    return LexicalModel(
        ngrams, vectorizer.idf_.astype(np.float32), coefficients, intercept, settings.weight
    )


def lexical_probabilities(model: LexicalModel, ids: list[list[int]]) -> np.ndarray:
    """What the graph computes, in NumPy: the lexical view's own probabilities."""
    column = {ngram: j for j, ngram in enumerate(model.ngrams)}
    counts = np.zeros((len(ids), len(model.ngrams)), dtype=np.float32)
    for row, text in enumerate(ids):
        text = [i for i in text if i != PAD]
        for n in (1, 2):
            for start in range(len(text) - n + 1):
                j = column.get(tuple(text[start : start + n]))
                if j is not None:
                    counts[row, j] += 1
    features = (np.minimum(counts, 1) + np.log(np.maximum(counts, 1))) * model.idf
    features /= np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)
    logits = features @ model.coefficients + model.intercept
    logits -= logits.max(axis=1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=1, keepdims=True)


def blend(others: np.ndarray, lexical: np.ndarray, weight: float) -> np.ndarray:
    return (1 - weight) * others + weight * lexical


def lexical_graph(model: LexicalModel, before: str, after: str) -> tuple[list, list]:
    """Nodes and initializers from `input_ids` and the probabilities named `before` to
    `after`, the blend."""
    unigrams = [g for g in model.ngrams if len(g) == 1]
    bigrams = [g for g in model.ngrams if len(g) == 2]
    column = {g: j for j, g in enumerate(model.ngrams)}
    pool = [i for g in unigrams + bigrams for i in g]
    nodes = [
        helper.make_node(
            "TfIdfVectorizer",
            [IDS_INPUT],
            ["lexical_counts"],
            mode="TF",
            min_gram_length=1,
            max_gram_length=2,
            max_skip_count=0,
            ngram_counts=[0, len(unigrams)],
            ngram_indexes=[column[g] for g in unigrams + bigrams],
            pool_int64s=pool,
        ),
        # sublinear term frequency: 1 + log(count) where a count is at least 1, else 0
        helper.make_node("Min", ["lexical_counts", "lexical_one"], ["lexical_present"]),
        helper.make_node("Max", ["lexical_counts", "lexical_one"], ["lexical_at_least_one"]),
        helper.make_node("Log", ["lexical_at_least_one"], ["lexical_log"]),
        helper.make_node("Add", ["lexical_present", "lexical_log"], ["lexical_tf"]),
        helper.make_node("Mul", ["lexical_tf", "lexical_idf"], ["lexical_tfidf"]),
        helper.make_node("LpNormalization", ["lexical_tfidf"], ["lexical_features"], axis=-1, p=2),
        helper.make_node("MatMul", ["lexical_features", "lexical_coefficients"], ["lexical_raw"]),
        helper.make_node("Add", ["lexical_raw", "lexical_intercept"], ["lexical_logits"]),
        helper.make_node("Softmax", ["lexical_logits"], ["lexical_probabilities"], axis=-1),
        helper.make_node("Mul", [before, "others_share"], ["others_part"]),
        helper.make_node("Mul", ["lexical_probabilities", "lexical_share"], ["lexical_part"]),
        helper.make_node("Add", ["others_part", "lexical_part"], [after]),
    ]

    def scalar(name: str, value: float) -> TensorProto:
        return numpy_helper.from_array(np.array(value, dtype=np.float32), name)

    initializers = [
        scalar("lexical_one", 1.0),
        numpy_helper.from_array(model.idf, "lexical_idf"),
        numpy_helper.from_array(model.coefficients, "lexical_coefficients"),
        numpy_helper.from_array(model.intercept, "lexical_intercept"),
        scalar("others_share", 1.0 - model.weight),
        scalar("lexical_share", model.weight),
    ]
    return nodes, initializers
