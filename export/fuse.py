"""One ONNX file from text to intent: the tokenizer, the encoder and the classifier fused.

The ensemble's three steps cost three trips between Triton's processes per request; this file
makes it one. The tokenizer is onnxruntime-extensions' `BertTokenizer` custom operator (its
library is registered by every session that runs the file: contracts/runtime.py, the local
backend, and `model_operations` in config.pbtxt for NGC's native backend). It reads the
encoder's own `vocab.txt` and yields the same ids as the `tokenizers` package on every
Banking77 text (tests/export/test_fuse.py holds it to that).

The operator takes one text at a time, so a `Loop` runs it over the batch: each text is cut to
`max_length` tokens as `tokenizers` cuts it (the first max_length - 1, then [SEP]), padded to
`max_length`, and after the loop the batch is trimmed to its longest text.

A classifier that blends in the vote of the nearest training texts (export/rerank.py) reads a
second embedding, the packaged encoder's: a second encoder inside the file, on the same token
ids, or the same one when the served encoder is the packaged encoder itself. One with the
lexical view (export/lexical.py) reads the tokenizer's ids as well.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, compose, helper, numpy_helper

from contracts.models import SERVED_MAX_TOKENS
from export.lexical import IDS_INPUT
from export.onnx_export import ENCODER_OUTPUT, OPSET
from export.rerank import QUERY

CUSTOM_DOMAIN = "ai.onnx.contrib"  # onnxruntime-extensions' operators
TEXT_INPUT = "text"


def _int64(name: str, values) -> TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def _loop_body(vocab: str, max_length: int) -> onnx.GraphProto:
    """One text (the outer `texts`[iteration]) → its ids and mask, padded to `max_length`."""
    nodes = [
        helper.make_node("Unsqueeze", ["iteration", "axis0"], ["position"]),
        helper.make_node("Gather", ["texts", "position"], ["one_text"], axis=0),
        helper.make_node(
            "BertTokenizer",
            ["one_text"],
            ["ids", "type_ids", "ones"],
            domain=CUSTOM_DOMAIN,
            vocab_file=vocab,
            do_lower_case=1,
            strip_accents=1,
        ),
        helper.make_node("Shape", ["ids"], ["count"]),
        helper.make_node("Min", ["count", "max_tokens"], ["kept"]),
        helper.make_node("Sub", ["kept", "one"], ["head_end"]),
        helper.make_node("Slice", ["ids", "zero", "head_end"], ["head"]),
        helper.make_node("Slice", ["ids", "minus_one", "int64_max"], ["sep"]),
        helper.make_node("Concat", ["head", "sep"], ["kept_ids"], axis=0),
        helper.make_node("Sub", ["max_tokens", "kept"], ["padding"]),
        helper.make_node("Concat", ["zero", "padding"], ["pads"], axis=0),
        helper.make_node("Pad", ["kept_ids", "pads"], ["row_ids"]),
        helper.make_node(
            "ConstantOfShape",
            ["kept"],
            ["kept_ones"],
            value=numpy_helper.from_array(np.array([1], dtype=np.int64)),
        ),
        helper.make_node("Pad", ["kept_ones", "pads"], ["row_mask"]),
        helper.make_node("Identity", ["condition"], ["condition_out"]),
    ]
    initializers = [
        _int64("axis0", [0]),
        _int64("zero", [0]),
        _int64("one", [1]),
        _int64("minus_one", [-1]),
        _int64("int64_max", [np.iinfo(np.int64).max]),
        _int64("max_tokens", [max_length]),
    ]
    return helper.make_graph(
        nodes,
        "tokenize_one",
        [
            helper.make_tensor_value_info("iteration", TensorProto.INT64, []),
            helper.make_tensor_value_info("condition", TensorProto.BOOL, []),
        ],
        [
            helper.make_tensor_value_info("condition_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("row_ids", TensorProto.INT64, [max_length]),
            helper.make_tensor_value_info("row_mask", TensorProto.INT64, [max_length]),
        ],
        initializers,
    )


def tokenizer_model(vocab: str, max_length: int, ir_version: int) -> onnx.ModelProto:
    """`text` (batch, 1) strings → `input_ids` and `attention_mask` (batch, longest)."""
    nodes = [
        helper.make_node("Reshape", [TEXT_INPUT, "flat"], ["texts"]),
        helper.make_node("Shape", ["texts"], ["batch"]),
        helper.make_node("Squeeze", ["batch", "axis0"], ["trips"]),
        helper.make_node(
            "Loop",
            ["trips", "keep_going"],
            ["padded_ids", "padded_mask"],
            body=_loop_body(vocab, max_length),
        ),
        helper.make_node("ReduceSum", ["padded_mask", "axis1"], ["lengths"], keepdims=0),
        helper.make_node("ReduceMax", ["lengths"], ["longest"], keepdims=1),
        helper.make_node("Slice", ["padded_ids", "axis0_start", "longest", "axis1"], ["input_ids"]),
        helper.make_node(
            "Slice", ["padded_mask", "axis0_start", "longest", "axis1"], ["attention_mask"]
        ),
    ]
    initializers = [
        _int64("flat", [-1]),
        _int64("axis0", [0]),
        _int64("axis1", [1]),
        _int64("axis0_start", [0]),
        numpy_helper.from_array(np.array(True), "keep_going"),
    ]
    graph = helper.make_graph(
        nodes,
        "ticket_tokenizer",
        [helper.make_tensor_value_info(TEXT_INPUT, TensorProto.STRING, ["batch", 1])],
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "sequence"]),
            helper.make_tensor_value_info(
                "attention_mask", TensorProto.INT64, ["batch", "sequence"]
            ),
        ],
        initializers,
    )
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(CUSTOM_DOMAIN, 1)],
    )
    model.ir_version = ir_version
    return model


def fuse(
    encoder: Path,
    classifier: Path,
    vocab: Path,
    path: Path,
    max_length: int = SERVED_MAX_TOKENS,
    example_encoder: Path | None = None,
) -> None:
    """Write `path`: text → intent, confidence, top_intents, top_scores.

    When `classifier` reads `example_embedding` too, `example_encoder` makes it (None: the
    served encoder's embedding feeds both inputs).
    """
    encoder_model = onnx.load(str(encoder))
    classifier_model = onnx.load(str(classifier))
    ir_version = encoder_model.ir_version
    classifier_model.ir_version = ir_version
    tokenizer = tokenizer_model(vocab.read_text(), max_length, ir_version)
    # Prefix each part's inner names, so that none can collide with another part's.
    tokenizer = _prefixed(tokenizer, "tokenizer/")
    encoder_model = _with_custom_domain(_prefixed(encoder_model, "encoder/"))
    classifier_model = _with_custom_domain(_prefixed(classifier_model, "classifier/"))
    encoded = compose.merge_models(
        tokenizer,
        encoder_model,
        io_map=[("input_ids", "input_ids"), ("attention_mask", "attention_mask")],
    )
    io_map = [(ENCODER_OUTPUT, ENCODER_OUTPUT)]
    classifier_inputs = {i.name for i in classifier_model.graph.input}
    if IDS_INPUT in classifier_inputs:  # the lexical view reads the tokenizer's ids too
        (ids,) = [o for o in tokenizer.graph.output if o.name == IDS_INPUT]
        encoded.graph.output.append(ids)
        io_map.append((IDS_INPUT, IDS_INPUT))
    if QUERY in classifier_inputs:
        if example_encoder is None:
            io_map.append((ENCODER_OUTPUT, QUERY))
        else:
            _add_example_encoder(encoded, onnx.load(str(example_encoder)))
            io_map.append((QUERY, QUERY))
    fused = compose.merge_models(encoded, classifier_model, io_map=io_map)
    fused.graph.name = "ticket_intent"
    onnx.checker.check_model(fused)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(fused, str(path))


def _prefixed(model: onnx.ModelProto, prefix: str) -> onnx.ModelProto:
    return compose.add_prefix(model, prefix, rename_inputs=False, rename_outputs=False)


def _add_example_encoder(encoded: onnx.ModelProto, example: onnx.ModelProto) -> None:
    """Put the example encoder's nodes into `encoded`, reading the same token ids, its output
    renamed `example_embedding` and added to the graph's outputs."""
    example = _prefixed(example, "example_encoder/")
    for node in example.graph.node:
        node.output[:] = [QUERY if o == ENCODER_OUTPUT else o for o in node.output]
    encoded.graph.node.extend(example.graph.node)
    encoded.graph.initializer.extend(example.graph.initializer)
    encoded.graph.value_info.extend(example.graph.value_info)
    (output,) = [o for o in example.graph.output if o.name == ENCODER_OUTPUT]
    renamed = onnx.ValueInfoProto()
    renamed.CopyFrom(output)
    renamed.name = QUERY
    encoded.graph.output.append(renamed)
    imported = {o.domain for o in encoded.opset_import}
    encoded.opset_import.extend(o for o in example.opset_import if o.domain not in imported)


def _with_custom_domain(model: onnx.ModelProto) -> onnx.ModelProto:
    """merge_models wants the same opset imports on both sides."""
    if not any(o.domain == CUSTOM_DOMAIN for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid(CUSTOM_DOMAIN, 1))
    return model
