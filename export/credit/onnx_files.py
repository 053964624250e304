"""The credit models as ONNX files that explain themselves: `features` float32 [N, F] in;
`probability` [N, 1] (of default), `logit` [N, 1] and `contributions` [N, F] out, where
`logit` is a bias plus the sum of the contributions, so that every answer carries its reasons.

- Gradient-boosted trees (LightGBM): one TreeEnsembleRegressor with F + 1 targets. Each leaf
  holds its path's contributions: every split on the way credits its feature with the change
  of the node's value (child minus parent, Saabas' method), and the root's value is the bias.
  Summed over the trees, they add up to the booster's raw score exactly.
- The scorecard: each feature's bin (`x > edge` counted) looks up its points in one table.
"""

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from contracts.runtime import ort_session

INPUT = "features"
OUTPUTS = ("probability", "logit", "contributions")
ML_DOMAIN, ML_OPSET, OPSET = "ai.onnx.ml", 3, 17


def tree_model(booster, path: Path) -> None:
    """A LightGBM binary booster as ONNX (numerical splits, no missing values)."""
    dump = booster.dump_model()
    if dump["objective"].split()[0] != "binary" or dump["num_tree_per_iteration"] != 1:
        raise ValueError("only a binary LightGBM model can be exported")
    features = dump["max_feature_idx"] + 1
    nodes, targets = _Nodes(), []
    for tree_id, tree in enumerate(dump["tree_info"]):
        _add_tree(tree_id, tree["tree_structure"], features, nodes, targets)
    ensemble = helper.make_node(
        "TreeEnsembleRegressor",
        [INPUT],
        ["raw"],
        domain=ML_DOMAIN,
        n_targets=features + 1,
        aggregate_function="SUM",
        post_transform="NONE",
        **nodes.attributes(),
        target_treeids=[t[0] for t in targets],
        target_nodeids=[t[1] for t in targets],
        target_ids=[t[2] for t in targets],
        target_weights=[t[3] for t in targets],
    )
    _save(_explained_graph([ensemble], features, "LightGBM with contributions"), path)


def scorecard_model(edges: np.ndarray, points: np.ndarray, bias: float, path: Path) -> None:
    """`edges` [F, K] (padded with +inf), `points` [F, K + 1]: feature f in bin b (its value
    above b of its edges) adds points[f, b] to the logit; `bias` is the rest."""
    features, width = points.shape
    initializers = [
        numpy_helper.from_array(edges.astype(np.float32)[None], "edges"),
        numpy_helper.from_array(points.astype(np.float32).reshape(-1), "points"),
        numpy_helper.from_array((np.arange(features) * width).astype(np.int64), "offsets"),
        numpy_helper.from_array(np.array([-1], np.int64), "last_axis"),
        numpy_helper.from_array(np.array([float(bias)], np.float32), "bias"),
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "one"),
    ]
    steps = [
        helper.make_node("Unsqueeze", [INPUT, "last_axis"], ["column"]),  # [N, F, 1]
        helper.make_node("Greater", ["column", "edges"], ["above"]),  # [N, F, K]
        helper.make_node("Cast", ["above"], ["above_count"], to=TensorProto.INT64),
        helper.make_node("ReduceSum", ["above_count", "last_axis"], ["bin"], keepdims=0),
        helper.make_node("Add", ["bin", "offsets"], ["index"]),
        helper.make_node("Gather", ["points", "index"], ["points_met"]),  # [N, F]
        # the bias as one more column, where the tree model's ensemble puts it
        helper.make_node("Shape", [INPUT], ["input_shape"]),
        helper.make_node("Slice", ["input_shape", "zero", "one"], ["rows"]),
        helper.make_node("Concat", ["rows", "one"], ["bias_shape"], axis=0),
        helper.make_node("Expand", ["bias", "bias_shape"], ["bias_column"]),
        helper.make_node("Concat", ["points_met", "bias_column"], ["raw"], axis=1),
    ]
    _save(_explained_graph(steps, features, "scorecard", initializers), path)


def outputs(path: Path, features: np.ndarray) -> dict[str, np.ndarray]:
    """What the file answers for float32 features [N, F]."""
    results = ort_session(path).run(list(OUTPUTS), {INPUT: features.astype(np.float32)})
    return dict(zip(OUTPUTS, results, strict=True))


def _explained_graph(steps, features: int, name: str, initializers=()) -> onnx.ModelProto:
    """`raw` [N, F + 1] (contributions, then the bias) → the three outputs."""
    initializers = [
        *initializers,
        numpy_helper.from_array(np.array([0, 0], np.int64), "start"),
        numpy_helper.from_array(np.array([np.iinfo(np.int64).max, features], np.int64), "end"),
        numpy_helper.from_array(np.array([1], np.int64), "feature_axis"),
    ]
    tail = [
        helper.make_node("Slice", ["raw", "start", "end"], ["contributions"]),
        helper.make_node("ReduceSum", ["raw", "feature_axis"], ["logit"], keepdims=1),
        helper.make_node("Sigmoid", ["logit"], ["probability"]),
    ]
    graph = helper.make_graph(
        [*steps, *tail],
        name,
        [helper.make_tensor_value_info(INPUT, TensorProto.FLOAT, ["batch", features])],
        [
            helper.make_tensor_value_info("probability", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("logit", TensorProto.FLOAT, ["batch", 1]),
            helper.make_tensor_value_info("contributions", TensorProto.FLOAT, ["batch", features]),
        ],
        initializer=initializers,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(ML_DOMAIN, ML_OPSET)],
    )


def _save(model: onnx.ModelProto, path: Path) -> None:
    onnx.checker.check_model(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(model, str(path))


class _Nodes:
    """TreeEnsembleRegressor's node attributes, one list each."""

    def __init__(self):
        self.rows: list[tuple] = []

    def add(self, tree, node, feature, value, mode, true_id, false_id, missing_true) -> None:
        self.rows.append((tree, node, feature, value, mode, true_id, false_id, missing_true))

    def attributes(self) -> dict:
        names = ("nodes_treeids", "nodes_nodeids", "nodes_featureids", "nodes_values",
                 "nodes_modes", "nodes_truenodeids", "nodes_falsenodeids",
                 "nodes_missing_value_tracks_true")  # fmt: skip
        return {name: [row[i] for row in self.rows] for i, name in enumerate(names)}


def _add_tree(tree_id: int, root: dict, features: int, nodes: _Nodes, targets: list) -> None:
    """Number the tree's nodes depth first, and give each leaf its path's contributions."""
    counter = iter(range(1 << 30))
    bias = _value(root)

    def visit(node: dict, credit: np.ndarray) -> int:
        node_id = next(counter)
        if "leaf_value" in node:
            nodes.add(tree_id, node_id, 0, 0.0, "LEAF", 0, 0, 0)
            targets.extend((tree_id, node_id, f, float(credit[f])) for f in np.flatnonzero(credit))
            targets.append((tree_id, node_id, features, bias))
            return node_id
        if node["decision_type"] != "<=":
            raise ValueError(f"unsupported split {node['decision_type']!r} (categorical?)")
        feature, here = node["split_feature"], _value(node)
        row = len(nodes.rows)
        nodes.add(tree_id, node_id, feature, float(node["threshold"]), "BRANCH_LEQ", 0, 0,
                  int(node["default_left"]))  # fmt: skip
        left, right = node["left_child"], node["right_child"]
        left_id = visit(left, _credited(credit, feature, _value(left) - here))
        right_id = visit(right, _credited(credit, feature, _value(right) - here))
        tree, _, _, value, mode, _, _, missing = nodes.rows[row]
        nodes.rows[row] = (tree, node_id, feature, value, mode, left_id, right_id, missing)
        return node_id

    visit(root, np.zeros(features))


def _value(node: dict) -> float:
    return float(node["leaf_value"] if "leaf_value" in node else node["internal_value"])


def _credited(credit: np.ndarray, feature: int, change: float) -> np.ndarray:
    credited = credit.copy()
    credited[feature] += change
    return credited
