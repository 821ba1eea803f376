"""Gradient-boosted trees for fraud (scikit-learn's histogram GBDT), exported to ONNX.

Why trees: on the stream's tabular features a random forest beat the torch MLP tower (issue
16); boosted trees are the usual winner on such data, need no feature scaling (so a feature
that was constant in training cannot blow up at serving), and serve in microseconds.

Export: the boosted trees become ONE ``ai.onnx.ml.TreeEnsembleRegressor`` (as the Isolation
Forest does in :mod:`tocsin.models.iforest`), followed by the Platt calibration
``sigmoid(a * margin + b)``. Exactness: scikit-learn compares the float32 input, widened to
float64, with float64 thresholds (``x <= t`` goes left); ONNX stores float32 thresholds, so
each is rounded *down* to the largest float32 not above it, which keeps every float32 input on
the same side. Leaf values are summed in float32 by ONNX Runtime (about 1e-6 off the float64
margin); the training code checks the export against scikit-learn.

Two graphs from one model: ``full`` uses every boosting iteration up to the best on the
validation period; ``light`` only the first quarter of them (a boosted model's prefix is a
model in its own right), each calibrated on its own. The load-aware switch serves ``light``
when the full ensemble would not meet the latency budget.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tocsin.errors import ModelError


def constant_columns(x: np.ndarray) -> np.ndarray:
    """Indices of columns without variation (a model can learn nothing from them)."""
    return np.flatnonzero(np.ptp(x, axis=0) == 0.0) if len(x) else np.arange(x.shape[1])


def fit(x: np.ndarray, y: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, *,
        max_iter: int = 400, learning_rate: float = 0.05, max_leaf_nodes: int = 31,
        min_samples_leaf: int = 40, l2: float = 1.0, max_features: float = 0.5,
        seed: int = 7):
    """Fit on the training period; stop on the validation period's log loss.

    ``max_features``: the share of columns each split may choose from (drawn anew per
    node). Half was chosen on the validation period of the simulator's development seeds
    (average precision 0.59 -> 0.62 on seed 8's validation week, see docs/payments.md): with
    61 correlated columns, trees that cannot always take the strongest one generalise better.
    Returns the model and the number of iterations that scored best on validation.
    """
    from sklearn.ensemble import HistGradientBoostingClassifier

    m = HistGradientBoostingClassifier(
        max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
        min_samples_leaf=min_samples_leaf, l2_regularization=l2, max_features=max_features,
        early_stopping=True, n_iter_no_change=40, scoring="loss", random_state=seed)
    m.fit(x, y, X_val=x_val, y_val=y_val)
    # validation_score_[0] is before the first tree; loss scores are negated (higher = better)
    best = int(np.argmax(m.validation_score_))
    return m, max(best, 1)


def margin(model, x: np.ndarray, n_iter: int) -> np.ndarray:
    """The raw (log-odds) score of the first ``n_iter`` iterations, as scikit-learn has it."""
    raw = np.full(len(x), float(model._baseline_prediction.ravel()[0]))
    xd = np.asarray(x, np.float64)
    for k, (pred,) in enumerate(model._predictors):
        if k >= n_iter:
            break
        raw += _predict_tree(pred.nodes, xd)
    return raw


def _predict_tree(nodes, x: np.ndarray) -> np.ndarray:
    idx = np.zeros(len(x), np.int64)
    leaf = nodes["is_leaf"].astype(bool)
    for _ in range(int(nodes["depth"].max()) + 1):
        inner = ~leaf[idx]
        if not inner.any():
            break
        rows = np.flatnonzero(inner)
        n = idx[rows]
        go_left = x[rows, nodes["feature_idx"][n]] <= nodes["num_threshold"][n]
        idx[rows] = np.where(go_left, nodes["left"][n], nodes["right"][n])
    return nodes["value"][idx]


def platt(raw: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """``a, b`` of ``sigmoid(a * raw + b)`` fitted on held-out (validation) scores."""
    from sklearn.linear_model import LogisticRegression

    if y.min() == y.max():
        return 1.0, 0.0
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def _down_f32(v: float) -> float:
    f = np.float32(v)
    if float(f) > v:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def _onnx():
    try:
        from onnx import TensorProto, checker, helper
    except ImportError as exc:
        raise ModelError("exporting the fraud model needs onnx: pip install 'tocsin[train]'") \
            from exc
    return TensorProto, checker, helper


def ensemble_node(model, n_iter: int, cols_map: np.ndarray, out: str = "margin"):
    """The first ``n_iter`` boosted trees as one ``TreeEnsembleRegressor`` node: ``tab`` ->
    ``out`` (the raw margin, baseline included)."""
    _, _, helper = _onnx()
    c: dict[str, list] = {k: [] for k in ("tree", "node", "feat", "val", "mode", "true",
                                          "false", "miss")}
    t_tree, t_node, t_w = [], [], []
    for t, (pred,) in enumerate(model._predictors[:n_iter]):
        nodes = pred.nodes
        if nodes["is_categorical"].any():
            raise ModelError("categorical splits are not exported")
        for i in range(len(nodes)):
            nd = nodes[i]
            c["tree"].append(t)
            c["node"].append(i)
            if nd["is_leaf"]:
                c["feat"].append(0)
                c["val"].append(0.0)
                c["mode"].append("LEAF")
                c["true"].append(0)
                c["false"].append(0)
                c["miss"].append(0)
                t_tree.append(t)
                t_node.append(i)
                t_w.append(float(nd["value"]))
            else:
                c["feat"].append(int(cols_map[int(nd["feature_idx"])]))
                c["val"].append(_down_f32(float(nd["num_threshold"])))
                c["mode"].append("BRANCH_LEQ")
                c["true"].append(int(nd["left"]))
                c["false"].append(int(nd["right"]))
                c["miss"].append(int(nd["missing_go_to_left"]))
    return helper.make_node(
        "TreeEnsembleRegressor", ["tab"], [out], domain="ai.onnx.ml", n_targets=1,
        aggregate_function="SUM", post_transform="NONE",
        base_values=[float(model._baseline_prediction.ravel()[0])],
        nodes_treeids=c["tree"], nodes_nodeids=c["node"], nodes_featureids=c["feat"],
        nodes_values=c["val"], nodes_modes=c["mode"], nodes_truenodeids=c["true"],
        nodes_falsenodeids=c["false"], nodes_missing_value_tracks_true=c["miss"],
        target_treeids=t_tree, target_nodeids=t_node, target_ids=[0] * len(t_tree),
        target_weights=t_w)


def write_graph(nodes: list, inits: list, n_features: int, path: str | Path,
                name: str = "fraud_gbdt") -> None:
    """``tab`` (n, n_features) -> ``prob`` (n,): the nodes must end in ``prob``."""
    TensorProto, checker, helper = _onnx()
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("tab", TensorProto.FLOAT,
                                                    [None, n_features])],
        [helper.make_tensor_value_info("prob", TensorProto.FLOAT, [None])], initializer=inits)
    onx = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                  helper.make_opsetid("ai.onnx.ml", 3)],
                            producer_name="tocsin")
    onx.ir_version = 9  # readable by every onnxruntime >= 1.17
    checker.check_model(onx)
    Path(path).write_bytes(onx.SerializeToString())


def export_onnx(model, n_iter: int, calib: tuple[float, float], n_features: int,
                path: str | Path, columns: np.ndarray | None = None) -> None:
    """Write the first ``n_iter`` trees: input ``tab`` (n, n_features) -> ``prob`` (n,).

    ``columns`` maps the model's inputs to columns of ``tab`` (constant features dropped)."""
    TensorProto, _, helper = _onnx()
    cols_map = np.arange(n_features) if columns is None else np.asarray(columns)
    inits = [helper.make_tensor("a", TensorProto.FLOAT, [], [calib[0]]),
             helper.make_tensor("b", TensorProto.FLOAT, [], [calib[1]]),
             helper.make_tensor("flat", TensorProto.INT64, [1], [-1])]
    nodes = [ensemble_node(model, n_iter, cols_map),
             helper.make_node("Mul", ["margin", "a"], ["am"]),
             helper.make_node("Add", ["am", "b"], ["logit"]),
             helper.make_node("Sigmoid", ["logit"], ["p2"]),
             helper.make_node("Reshape", ["p2", "flat"], ["prob"])]
    write_graph(nodes, inits, n_features, path)


def check_export(path: str | Path, model, n_iter: int, calib: tuple[float, float],
                 x: np.ndarray, columns: np.ndarray, atol: float = 1e-5) -> float:
    """Largest |ONNX - scikit-learn| probability on ``x``; raises beyond ``atol``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"tab": np.ascontiguousarray(x, np.float32)})[0]
    raw = margin(model, x[:, columns], n_iter)
    want = 1.0 / (1.0 + np.exp(-(calib[0] * raw + calib[1])))
    err = float(np.max(np.abs(got - want))) if len(x) else 0.0
    if err > atol:
        raise ModelError(f"ONNX export of the fraud trees differs from scikit-learn by {err:.2e}")
    return err
