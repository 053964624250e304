"""The vote of the nearest training texts, blended with the intent head's probabilities.

Every training text is embedded by the packaged MiniLM encoder as it ships, not fine-tuned,
quantized to INT8 as it serves
(`export_packaged_encoder` in export/onnx_export.py): its general-purpose sentence embeddings
find neighbours that the fine-tuned encoder, trained to separate the head's classes, does not.
The intent graph carries those embeddings and their intents. For a query's `example_embedding`
it takes the `neighbours` most similar training texts by cosine similarity, weighs each by
exp((similarity - best) / temperature), sums the weights per intent, and blends that vote with
the head's softmax: (1 - weight) * head + weight * vote. The ensemble's inputs and outputs do
not change, and a retrain's corrections join the vote as soon as it is published.

Measured on Banking77's test split, settings chosen on held-out training texts, never on test
(README, "Triage accuracy"): the quick recipe's head on the packaged encoder 92.24 %, with the
vote 93.18 %; a 6-epoch fine-tuned head 93.38 %, with the vote 94.29 %. A vote over the
fine-tuned encoder's own embeddings gained nothing on the 6-epoch model.

`reference_probabilities` computes the same in NumPy: the parity check and the tests hold the
graph to it.
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper
from tqdm import tqdm

from contracts.runtime import ort_session
from contracts.tokens import encode_batch
from export.data import Split


@dataclass(frozen=True)
class RerankSettings:
    neighbours: int = 10
    temperature: float = 0.05
    weight: float = 0.4  # the neighbours' share of the blended probabilities


# Each recipe's, the best on a held-out tenth of Banking77's training split (export/tune.py):
# a 6-epoch model's, chosen with its lexical view (session 16)
DEFAULT_RERANK = RerankSettings(weight=0.3)
# a head on the packaged encoder's embeddings (the quick recipe)
FROZEN_RERANK = RerankSettings(weight=0.5)

QUERY = "example_embedding"  # the graph input the vote reads


def vote_for(epochs: int) -> RerankSettings:
    """The recipe's vote: a fine-tuned encoder's (`epochs`) or the quick one's."""
    return DEFAULT_RERANK if epochs else FROZEN_RERANK


@dataclass(frozen=True)
class ExampleIndex:
    embeddings: np.ndarray  # (texts, dim) float32, unit length
    labels: np.ndarray  # (texts,) int64 intent indices

    def __len__(self) -> int:
        return len(self.labels)


def unit_rows(matrix: np.ndarray) -> np.ndarray:
    return matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)


def embed_texts(encoder: Path, tokenizer, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Every text's embedding by the ONNX encoder (texts grouped by length), in `texts` order."""
    if not texts:
        raise ValueError("no texts to embed")
    session = ort_session(encoder)
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    embeddings: np.ndarray | None = None
    for start in tqdm(
        range(0, len(order), batch_size), desc=f"embedding with {encoder.name}", leave=False
    ):
        rows = order[start : start + batch_size]
        ids, mask = encode_batch(tokenizer, [texts[i] for i in rows])
        batch = session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        if embeddings is None:
            embeddings = np.zeros((len(texts), batch.shape[1]), dtype=np.float32)
        embeddings[rows] = batch
    return embeddings


def build_index(encoder: Path, tokenizer, split: Split) -> ExampleIndex:
    """The training texts of `split` embedded by the ONNX encoder, with their intents."""
    return index_of(embed_texts(encoder, tokenizer, split.texts), split.labels)


def index_of(embeddings: np.ndarray, labels) -> ExampleIndex:
    return ExampleIndex(unit_rows(embeddings), np.asarray(labels, dtype=np.int64))


def reference_probabilities(
    head_probabilities: np.ndarray,
    embeddings: np.ndarray,
    index: ExampleIndex,
    settings: RerankSettings,
) -> np.ndarray:
    """What the graph computes, in NumPy: the blend of the head and the neighbours' vote."""
    vote = neighbour_vote(embeddings, index, settings, head_probabilities.shape[1])
    return (1 - settings.weight) * head_probabilities + settings.weight * vote


def neighbour_vote(
    embeddings: np.ndarray, index: ExampleIndex, settings: RerankSettings, num_intents: int
) -> np.ndarray:
    """The vote alone: each text's weighted share of its nearest training texts per intent."""
    k = min(settings.neighbours, len(index))
    similarity = unit_rows(embeddings) @ index.embeddings.T
    nearest = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
    best = np.take_along_axis(similarity, nearest, axis=1)
    weights = np.exp((best - best[:, :1]) / settings.temperature)
    vote = np.zeros((len(embeddings), num_intents), dtype=np.float32)
    rows = np.repeat(np.arange(len(embeddings)), k)
    np.add.at(vote, (rows, index.labels[nearest].ravel()), weights.ravel())
    return vote / vote.sum(axis=1, keepdims=True)


def rerank_graph(
    index: ExampleIndex, settings: RerankSettings, num_intents: int, after: str = "probabilities"
) -> tuple[list, list]:
    """Nodes and initializers from `example_embedding` and `head_probabilities` to `after`,
    the blend."""
    k = min(settings.neighbours, len(index))
    nodes = [
        helper.make_node("LpNormalization", [QUERY], ["query"], axis=-1, p=2),
        helper.make_node("MatMul", ["query", "examples_t"], ["similarity"]),
        helper.make_node(
            "TopK", ["similarity", "neighbours"], ["nearest", "nearest_index"], axis=-1
        ),
        helper.make_node("ReduceMax", ["nearest"], ["nearest_best"], axes=[-1], keepdims=1),
        helper.make_node("Sub", ["nearest", "nearest_best"], ["nearest_gap"]),
        helper.make_node("Div", ["nearest_gap", "temperature"], ["nearest_scaled"]),
        helper.make_node("Exp", ["nearest_scaled"], ["nearest_weight"]),
        helper.make_node("Gather", ["example_labels", "nearest_index"], ["nearest_label"], axis=0),
        helper.make_node(
            "OneHot", ["nearest_label", "intent_count", "off_on"], ["nearest_onehot"], axis=-1
        ),
        helper.make_node("Unsqueeze", ["nearest_weight", "last_axis"], ["nearest_weight_3d"]),
        helper.make_node("Mul", ["nearest_onehot", "nearest_weight_3d"], ["weighted_onehot"]),
        helper.make_node(
            "ReduceSum", ["weighted_onehot", "neighbour_axis"], ["vote_sum"], keepdims=0
        ),
        helper.make_node("ReduceSum", ["vote_sum", "last_axis"], ["vote_total"], keepdims=1),
        helper.make_node("Div", ["vote_sum", "vote_total"], ["vote"]),
        helper.make_node("Mul", ["head_probabilities", "head_share"], ["head_part"]),
        helper.make_node("Mul", ["vote", "vote_share"], ["vote_part"]),
        helper.make_node("Add", ["head_part", "vote_part"], [after]),
    ]

    def scalar(name: str, value: float) -> TensorProto:
        return numpy_helper.from_array(np.array(value, dtype=np.float32), name)

    initializers = [
        numpy_helper.from_array(np.ascontiguousarray(index.embeddings.T), "examples_t"),
        numpy_helper.from_array(index.labels, "example_labels"),
        numpy_helper.from_array(np.array([k], dtype=np.int64), "neighbours"),
        numpy_helper.from_array(np.array(num_intents, dtype=np.int64), "intent_count"),
        numpy_helper.from_array(np.array([0.0, 1.0], dtype=np.float32), "off_on"),
        numpy_helper.from_array(np.array([-1], dtype=np.int64), "last_axis"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "neighbour_axis"),
        scalar("temperature", settings.temperature),
        scalar("head_share", 1.0 - settings.weight),
        scalar("vote_share", settings.weight),
    ]
    return nodes, initializers
