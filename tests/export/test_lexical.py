"""The lexical view: the ONNX graph computes what scikit-learn and the NumPy reference say."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from export.lexical import (
    IDS_INPUT,
    PAD,
    LexicalSettings,
    blend,
    fit_lexical,
    lexical_graph,
    lexical_probabilities,
)
from export.onnx_export import OPSET

INTENTS = 4
CLS, SEP = 101, 102


def made_up_texts(rng: np.random.Generator, texts: int = 60) -> tuple[list[list[int]], list[int]]:
    """Each intent favours a few word ids of its own, among shared ones."""
    ids, labels = [], []
    for n in range(texts):
        label = n % INTENTS
        words = rng.choice([1000 + label * 10 + i for i in range(3)] + [2000, 2001, 2002], size=6)
        ids.append([CLS, *map(int, words), SEP])
        labels.append(label)
    return ids, labels


def padded(rows: list[list[int]]) -> np.ndarray:
    width = max(map(len, rows))
    return np.array([row + [PAD] * (width - len(row)) for row in rows], dtype=np.int64)


def run_graph(model, ids: np.ndarray, others: np.ndarray) -> np.ndarray:
    nodes, initializers = lexical_graph(model, "others", "probabilities")
    graph = helper.make_graph(
        nodes,
        "lexical",
        [
            helper.make_tensor_value_info(IDS_INPUT, TensorProto.INT64, ["batch", "tokens"]),
            helper.make_tensor_value_info("others", TensorProto.FLOAT, ["batch", INTENTS]),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", INTENTS])],
        initializers,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(onnx_model)
    session = ort.InferenceSession(
        onnx_model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    return session.run(None, {IDS_INPUT: ids, "others": others})[0]


@pytest.mark.parametrize("intents_seen", [INTENTS, 2])
def test_the_reference_is_scikit_learns_pipeline(intents_seen):
    """Also with two intents, where scikit-learn keeps one row of weights, not two."""
    rng = np.random.default_rng(0)
    ids, labels = made_up_texts(rng)
    kept = [(row, label) for row, label in zip(ids, labels, strict=True) if label < intents_seen]
    ids, labels = [r for r, _ in kept], [lab for _, lab in kept]
    model = fit_lexical(ids, labels, INTENTS, LexicalSettings())
    words = [" ".join(map(str, row)) for row in ids]
    vectorizer = TfidfVectorizer(token_pattern=r"\S+", ngram_range=(1, 2), sublinear_tf=True)
    classifier = LogisticRegression(C=30.0, max_iter=2000).fit(
        vectorizer.fit_transform(words), labels
    )
    expected = classifier.predict_proba(vectorizer.transform(words))
    got = lexical_probabilities(model, ids)
    np.testing.assert_allclose(got[:, :intents_seen], expected, atol=1e-5)
    assert got[:, intents_seen:].max(initial=0.0) < 1e-6


def test_graph_matches_the_reference_on_padded_batches_and_unseen_words():
    rng = np.random.default_rng(1)
    ids, labels = made_up_texts(rng)
    model = fit_lexical(ids, labels, INTENTS, LexicalSettings(weight=0.3))
    queries = [ids[0], [*ids[5][:4], SEP], [CLS, 9999, 9998, 1001, 1001, 1001, SEP], [CLS, SEP]]
    others = rng.dirichlet(np.ones(INTENTS), size=len(queries)).astype(np.float32)
    served = run_graph(model, padded(queries), others)
    expected = blend(others, lexical_probabilities(model, queries), 0.3)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert np.allclose(served.sum(axis=1), 1.0, atol=1e-5)


def test_the_view_learns_which_words_mark_an_intent():
    rng = np.random.default_rng(2)
    ids, labels = made_up_texts(rng, texts=200)
    model = fit_lexical(ids, labels, INTENTS, LexicalSettings())
    queries = [[CLS, 1000 + label * 10, 1001 + label * 10, 2000, SEP] for label in range(INTENTS)]
    assert lexical_probabilities(model, queries).argmax(axis=1).tolist() == list(range(INTENTS))


def test_an_intent_without_training_texts_is_never_chosen():
    rng = np.random.default_rng(3)
    ids, labels = made_up_texts(rng)
    kept = [(row, label) for row, label in zip(ids, labels, strict=True) if label != 2]
    model = fit_lexical([r for r, _ in kept], [lab for _, lab in kept], INTENTS, LexicalSettings())
    probabilities = lexical_probabilities(model, ids)
    assert probabilities[:, 2].max() < 1e-6
    assert (probabilities.argmax(axis=1) != 2).all()
