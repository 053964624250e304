"""Example reranking: the ONNX graph computes what the NumPy reference says, on made-up data."""

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from export.data import load_banking77
from export.model import load_checkpoint, load_tokenizer
from export.onnx_export import OPSET, ParityError, build_classifier, check_parity
from export.rerank import (
    QUERY,
    ExampleIndex,
    RerankSettings,
    build_index,
    reference_probabilities,
    rerank_graph,
)

DIM, INTENTS = 8, 4


def example_index(rng: np.random.Generator, texts: int = 40) -> ExampleIndex:
    embeddings = rng.normal(size=(texts, DIM)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    return ExampleIndex(embeddings, rng.integers(0, INTENTS, size=texts).astype(np.int64))


def run_graph(index: ExampleIndex, settings: RerankSettings, head, embedding) -> np.ndarray:
    nodes, initializers = rerank_graph(index, settings, INTENTS)
    graph = helper.make_graph(
        nodes,
        "rerank",
        [
            helper.make_tensor_value_info(QUERY, TensorProto.FLOAT, ["batch", DIM]),
            helper.make_tensor_value_info(
                "head_probabilities", TensorProto.FLOAT, ["batch", INTENTS]
            ),
        ],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", INTENTS])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx.checker.check_model(model)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    feeds = {QUERY: embedding, "head_probabilities": head}
    return session.run(None, feeds)[0]


@pytest.mark.parametrize(
    "settings",
    [RerankSettings(), RerankSettings(neighbours=3, temperature=0.2, weight=0.8)],
)
def test_graph_matches_the_numpy_reference(settings):
    rng = np.random.default_rng(0)
    index = example_index(rng)
    embedding = rng.normal(size=(5, DIM)).astype(np.float32) * 3  # not unit length
    head = rng.dirichlet(np.ones(INTENTS), size=5).astype(np.float32)
    served = run_graph(index, settings, head, embedding)
    expected = reference_probabilities(head, embedding, index, settings)
    np.testing.assert_allclose(served, expected, atol=1e-5)
    np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-5)


def test_a_query_equal_to_a_training_text_is_pulled_to_its_intent():
    rng = np.random.default_rng(1)
    index = example_index(rng)
    query = index.embeddings[:1] * 2
    head = np.full((1, INTENTS), 1 / INTENTS, dtype=np.float32)  # the head has no opinion
    served = run_graph(index, RerankSettings(temperature=0.01), head, query)
    assert served.argmax() == index.labels[0]


def test_more_neighbours_than_texts_uses_them_all():
    rng = np.random.default_rng(2)
    index = example_index(rng, texts=3)
    head = rng.dirichlet(np.ones(INTENTS), size=2).astype(np.float32)
    embedding = rng.normal(size=(2, DIM)).astype(np.float32)
    settings = RerankSettings(neighbours=10)
    served = run_graph(index, settings, head, embedding)
    np.testing.assert_allclose(
        served, reference_probabilities(head, embedding, index, settings), atol=1e-5
    )


def test_a_reranking_classifier_passes_the_parity_check_and_a_wrong_one_fails(
    export_settings, built_repository, tmp_path
):
    """The test build's model with 300 training texts as examples (embedded by the packaged
    encoder, as the build does), through check_parity."""
    work = export_settings.work_dir
    model, intents, max_length = load_checkpoint(work / "intent_model.pt")
    data = load_banking77(export_settings.banking77_dir)
    examples = data.train.spread(300)
    index = build_index(work / "packaged.int8.onnx", load_tokenizer(128), examples)
    assert len(index) == 300
    path = tmp_path / "classifier.onnx"
    build_classifier(model, intents, path, index, RerankSettings())
    check = {
        "model": model,
        "tokenizer": load_tokenizer(max_length),
        "intents": intents,
        "encoder_path": work / "encoder.fp32.onnx",
        "classifier_path": path,
        "texts": data.test.texts[:40],
        "index": index,
        "example_encoder": work / "packaged.int8.onnx",
    }
    report = check_parity(**check, rerank=RerankSettings())
    assert report.max_score_diff <= 1e-4
    with pytest.raises(ParityError, match="scores differ"):
        check_parity(**check, rerank=RerankSettings(weight=0.9))
