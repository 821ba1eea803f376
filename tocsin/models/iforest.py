"""Isolation Forest over tick vectors (scikit-learn), exported to ONNX for serving.

Score = -score_samples = 2^(-E[h(x)] / c(psi)), in (0, 1): about 0.5 for typical points and
towards 1 for points isolated in few splits (h: path length, leaf depth plus c(leaf size);
c(n) the mean path length of an unsuccessful BST search; psi = max_samples).

Export: the whole forest as ONE ``ai.onnx.ml.TreeEnsembleRegressor`` whose leaves carry
h / n_trees, summed over trees, followed by 2^(-sum / c(psi)). skl2onnx's converter builds a
sub-graph per tree instead; measured here on 200 trees x 195 inputs it took minutes to convert
and ~8 ms per single-row call, where this graph converts in well under a second (see
``benchmarks/anomaly_inference.py``). The training code checks the export against sklearn.
Split thresholds are rounded DOWN to float32 (:func:`float32_floor`), so every split of the
export agrees with sklearn's on float32 inputs (rounding to nearest flipped some on
noise-free data with a few distinct values).
"""

from __future__ import annotations

import numpy as np

from tocsin.errors import ModelError

EULER_GAMMA = 0.5772156649015329


def fit(x: np.ndarray, *, n_estimators: int = 200, max_samples: int | str = "auto",
        seed: int = 0):
    from sklearn.ensemble import IsolationForest

    return IsolationForest(n_estimators=n_estimators, max_samples=max_samples,
                           random_state=seed, n_jobs=1).fit(x)


def score(model, x: np.ndarray) -> np.ndarray:
    return -model.score_samples(x)


def avg_path_length(n: np.ndarray) -> np.ndarray:
    """c(n): 0 for n <= 1, 1 for n = 2, else 2 H(n - 1) - 2 (n - 1) / n."""
    n = np.asarray(n, dtype=np.float64)
    out = np.zeros_like(n)
    two = n == 2
    big = n > 2
    out[two] = 1.0
    out[big] = 2.0 * (np.log(n[big] - 1.0) + EULER_GAMMA) - 2.0 * (n[big] - 1.0) / n[big]
    return out


def float32_floor(t: float) -> float:
    """The largest float32 <= ``t``. The ONNX tree ensemble stores thresholds as float32 and
    sklearn compares float32 inputs against float64 thresholds: rounding a threshold to the
    NEAREST float32 can land on an input value just above it (x <= t false in sklearn, true
    in ONNX). No float32 lies in (floor, t], so for float32 x, x <= floor exactly when
    x <= t: the export decides every split as sklearn does."""
    f = np.float32(t)
    if np.isfinite(f) and float(f) > t:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _depths(tree) -> np.ndarray:
    left, right = tree.children_left, tree.children_right
    depth = np.zeros(tree.node_count, dtype=np.int64)
    stack = [0]
    while stack:
        i = stack.pop()
        if left[i] != -1:
            depth[left[i]] = depth[right[i]] = depth[i] + 1
            stack += [left[i], right[i]]
    return depth


def export_onnx(model, d: int, path) -> None:
    """Write the forest as a single tree-ensemble ONNX graph: input ``x`` (n, d) -> ``score``."""
    try:
        from onnx import TensorProto, checker, helper
    except ImportError as exc:
        raise ModelError("exporting the Isolation Forest needs onnx: "
                         "pip install 'tocsin[train]'") from exc
    n_trees = len(model.estimators_)
    cols = {k: [] for k in ("tree", "node", "feat", "val", "mode", "true", "false")}
    tgt_tree, tgt_node, tgt_w = [], [], []
    for t, (est, feats) in enumerate(zip(model.estimators_, model.estimators_features_)):
        tr = est.tree_
        depth = _depths(tr)
        leaf = tr.children_left == -1
        h = depth + avg_path_length(tr.n_node_samples)
        for i in range(tr.node_count):
            cols["tree"].append(t)
            cols["node"].append(i)
            if leaf[i]:
                cols["feat"].append(0)
                cols["val"].append(0.0)
                cols["mode"].append("LEAF")
                cols["true"].append(0)
                cols["false"].append(0)
                tgt_tree.append(t)
                tgt_node.append(i)
                tgt_w.append(float(h[i]) / n_trees)
            else:
                cols["feat"].append(int(feats[tr.feature[i]]))
                cols["val"].append(float32_floor(float(tr.threshold[i])))
                cols["mode"].append("BRANCH_LEQ")
                cols["true"].append(int(tr.children_left[i]))
                cols["false"].append(int(tr.children_right[i]))
    ens = helper.make_node(
        "TreeEnsembleRegressor", ["x"], ["mean_h"], domain="ai.onnx.ml", n_targets=1,
        aggregate_function="SUM", post_transform="NONE",
        nodes_treeids=cols["tree"], nodes_nodeids=cols["node"],
        nodes_featureids=cols["feat"], nodes_values=cols["val"], nodes_modes=cols["mode"],
        nodes_truenodeids=cols["true"], nodes_falsenodeids=cols["false"],
        nodes_missing_value_tracks_true=[0] * len(cols["node"]),
        target_treeids=tgt_tree, target_nodeids=tgt_node, target_ids=[0] * len(tgt_tree),
        target_weights=tgt_w)
    c = float(avg_path_length(np.array([model.max_samples_]))[0])
    k = helper.make_tensor("k", TensorProto.FLOAT, [], [-1.0 / c])
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    graph = helper.make_graph(
        [ens, helper.make_node("Mul", ["mean_h", "k"], ["e"]),
         helper.make_node("Pow", ["two", "e"], ["score"])],
        "isolation_forest",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, d])],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, [None, 1])],
        initializer=[k, two])
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                  helper.make_opsetid("ai.onnx.ml", 3)],
                            producer_name="tocsin")
    checker.check_model(onx)
    with open(path, "wb") as f:
        f.write(onx.SerializeToString())
