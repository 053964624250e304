"""Export of the encoder and the intent head to ONNX, and the parity check against PyTorch."""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from contracts.runtime import ort_session
from export.lexical import (
    IDS_INPUT,
    LexicalModel,
    blend,
    lexical_graph,
    lexical_probabilities,
)
from export.model import EMBEDDING_DIM, IntentModel, batch_encode
from export.quantize import quantize_encoder
from export.rerank import (
    DEFAULT_RERANK,
    QUERY,
    ExampleIndex,
    RerankSettings,
    embed_texts,
    reference_probabilities,
    rerank_graph,
)

OPSET = 17
ENCODER_INPUTS = ("input_ids", "attention_mask")
ENCODER_OUTPUT = "embedding"
CLASSIFIER_OUTPUTS = ("intent", "confidence", "top_intents", "top_scores")
TOP_K = 5


def export_encoder(model: IntentModel, path: Path) -> None:
    """The transformer with mean pooling; batch and sequence axes are dynamic."""
    path.parent.mkdir(parents=True, exist_ok=True)
    example = (torch.ones((2, 8), dtype=torch.int64), torch.ones((2, 8), dtype=torch.int64))
    torch.onnx.export(
        model.encoder.eval(),
        example,
        str(path),
        input_names=list(ENCODER_INPUTS),
        output_names=[ENCODER_OUTPUT],
        dynamic_axes={
            "input_ids": {0: "batch", 1: "sequence"},
            "attention_mask": {0: "batch", 1: "sequence"},
            ENCODER_OUTPUT: {0: "batch"},
        },
        opset_version=OPSET,
        dynamo=False,
    )


def export_packaged_encoder(fp32_path: Path, int8_path: Path) -> None:
    """The packaged MiniLM encoder as it ships (mean pooling, not fine-tuned), fp32 and INT8."""
    export_encoder(IntentModel(1), fp32_path)
    quantize_encoder(fp32_path, int8_path)


def build_classifier(
    model: IntentModel,
    intents: list[str],
    path: Path,
    index: ExampleIndex | None = None,
    rerank: RerankSettings | None = None,
    lexical: LexicalModel | None = None,
) -> None:
    """The head as a hand-built graph: linear, softmax, top-k, and the intent names themselves.

    Carrying the labels inside the ONNX file keeps the ensemble's output self-describing:
    Triton answers with intent names, and no label file can drift from the weights. With an
    `index` of training texts, the softmax is blended with their vote (export/rerank.py), read
    from a second input, `example_embedding`: the packaged encoder's embedding of the text.
    With a `lexical` model, that is blended in turn with the lexical view (export/lexical.py),
    read from a third input, `input_ids`: the text's token ids.
    """
    weight = model.head.weight.detach().numpy().T.astype(np.float32)
    bias = model.head.bias.detach().numpy().astype(np.float32)
    k = min(TOP_K, len(intents))
    nodes = [
        helper.make_node("Gemm", ["embedding", "weight", "bias"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["head_probabilities"], axis=-1),
    ]
    initializers = [
        numpy_helper.from_array(weight, "weight"),
        numpy_helper.from_array(bias, "bias"),
        numpy_helper.from_array(np.array([k], dtype=np.int64), "k"),
        numpy_helper.from_array(np.array([0], dtype=np.int64), "zero"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "one"),
        helper.make_tensor(
            "labels", TensorProto.STRING, [len(intents)], [s.encode() for s in intents]
        ),
    ]
    probabilities = "head_probabilities"  # each blend below takes the one before it
    if index is not None:
        more_nodes, more_initializers = rerank_graph(
            index, rerank or DEFAULT_RERANK, len(intents), after="voted_probabilities"
        )
        nodes += more_nodes
        initializers += more_initializers
        probabilities = "voted_probabilities"
    if lexical is not None:
        more_nodes, more_initializers = lexical_graph(lexical, probabilities, "probabilities")
        nodes += more_nodes
        initializers += more_initializers
        probabilities = "probabilities"
    nodes += [
        helper.make_node("TopK", [probabilities, "k"], ["top_scores", "top_index"], axis=-1),
        helper.make_node("Gather", ["labels", "top_index"], ["top_intents"], axis=0),
        helper.make_node("Slice", ["top_scores", "zero", "one", "one"], ["confidence"]),
        helper.make_node("Slice", ["top_intents", "zero", "one", "one"], ["intent"]),
    ]
    outputs = [
        helper.make_tensor_value_info("intent", TensorProto.STRING, ["batch", 1]),
        helper.make_tensor_value_info("confidence", TensorProto.FLOAT, ["batch", 1]),
        helper.make_tensor_value_info("top_intents", TensorProto.STRING, ["batch", k]),
        helper.make_tensor_value_info("top_scores", TensorProto.FLOAT, ["batch", k]),
    ]
    inputs = [
        helper.make_tensor_value_info(name, TensorProto.FLOAT, ["batch", EMBEDDING_DIM])
        for name in (["embedding", QUERY] if index is not None else ["embedding"])
    ]
    if lexical is not None:
        inputs.append(
            helper.make_tensor_value_info(IDS_INPUT, TensorProto.INT64, ["batch", "tokens"])
        )
    graph = helper.make_graph(nodes, "ticket_classifier", inputs, outputs, initializers)
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx_model.ir_version = 8  # readable by older ONNX Runtime builds in Triton containers
    onnx.checker.check_model(onnx_model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, str(path))


@dataclass(frozen=True)
class ParityReport:
    max_embedding_diff: float
    max_score_diff: float
    cases: int


class ParityError(AssertionError):
    pass


@torch.inference_mode()
def check_parity(
    model: IntentModel,
    tokenizer,
    intents: list[str],
    encoder_path: Path,
    classifier_path: Path,
    texts: list[str],
    tolerance: float = 1e-4,
    index: ExampleIndex | None = None,
    rerank: RerankSettings | None = None,
    example_encoder: Path | None = None,
    lexical: LexicalModel | None = None,
) -> ParityReport:
    """Run PyTorch and ONNX Runtime on the same inputs; collect every mismatch, then fail with all.

    Batches of several sizes and lengths exercise the dynamic axes. With an `index`, PyTorch's
    probabilities are blended in NumPy with the neighbours' vote, as the graph should do; both
    sides read the vote's query from `example_encoder` (the packaged encoder's ONNX file).
    With a `lexical` model, that is blended in NumPy with the lexical view of the token ids.
    """
    if index is not None and example_encoder is None:
        raise ValueError("a classifier with a vote needs the example encoder to check it")
    encoder = ort_session(encoder_path)
    classifier = ort_session(classifier_path)
    problems: list[str] = []
    if [i.name for i in encoder.get_inputs()] != list(ENCODER_INPUTS):
        problems.append(f"encoder inputs are {[i.name for i in encoder.get_inputs()]}")
    if [o.name for o in classifier.get_outputs()] != list(CLASSIFIER_OUTPUTS):
        problems.append(f"classifier outputs are {[o.name for o in classifier.get_outputs()]}")
    max_embedding_diff = max_score_diff = 0.0
    batches = [texts[:1], texts[1:8], texts[8:40]]
    for batch in (b for b in batches if b):
        ids, mask = batch_encode(tokenizer, batch)
        torch_embedding = model.encoder(ids, mask)
        torch_probs = torch.softmax(model.head(torch_embedding), dim=-1)
        onnx_embedding = encoder.run(
            None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()}
        )[0]
        feeds = {"embedding": onnx_embedding}
        if index is not None:
            feeds[QUERY] = embed_texts(example_encoder, tokenizer, batch)
            blended = reference_probabilities(
                torch_probs.numpy(), feeds[QUERY], index, rerank or DEFAULT_RERANK
            )
            torch_probs = torch.from_numpy(blended)
        if lexical is not None:
            feeds[IDS_INPUT] = ids.numpy()
            lexical_part = lexical_probabilities(lexical, ids.tolist())
            torch_probs = torch.from_numpy(
                blend(torch_probs.numpy(), lexical_part, lexical.weight).astype(np.float32)
            )
        intent, _, _top_intents, top_scores = classifier.run(None, feeds)
        embedding_diff = float(np.abs(onnx_embedding - torch_embedding.numpy()).max())
        expected_scores, expected_index = torch.topk(torch_probs, top_scores.shape[1], dim=-1)
        score_diff = float(np.abs(top_scores - expected_scores.numpy()).max())
        max_embedding_diff = max(max_embedding_diff, embedding_diff)
        max_score_diff = max(max_score_diff, score_diff)
        shape = tuple(ids.shape)
        if onnx_embedding.shape != (len(batch), EMBEDDING_DIM):
            problems.append(f"batch {shape}: embedding shape {onnx_embedding.shape}")
        if embedding_diff > tolerance:
            problems.append(f"batch {shape}: embedding differs by {embedding_diff:.2e}")
        if score_diff > tolerance:
            problems.append(f"batch {shape}: scores differ by {score_diff:.2e}")
        expected_intents = [intents[i] for i in expected_index[:, 0].tolist()]
        if [str(x) for x in intent[:, 0]] != expected_intents:
            problems.append(f"batch {shape}: top intent differs from PyTorch")
    if problems:
        raise ParityError("ONNX export does not match PyTorch:\n  " + "\n  ".join(problems))
    return ParityReport(max_embedding_diff, max_score_diff, sum(len(b) for b in batches))
