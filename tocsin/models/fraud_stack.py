"""A stacked fraud model: boosted trees and a random forest, combined by a logistic
regression fitted on the validation period, exported as one ONNX graph.

Why: boosted trees and a bagged forest make different errors (a sequence of small corrections
against averaged deep trees); a stack of the two, weighted on held-out data (the validation
period, which neither model was fitted on), is the usual way to get more than either. Only
the ``full`` branch is stacked; ``light`` stays the boosted prefix alone (cheap under load).

Export: the forest's trees become a second ``TreeEnsembleRegressor`` whose leaves hold each
tree's class-1 share divided by the number of trees (so the ensemble's SUM is scikit-learn's
``predict_proba``). scikit-learn's trees compare the float32 input with float64 thresholds
(``x <= t``), so each threshold is rounded down to float32 as for the boosted trees. Then
``sigmoid(w_gbdt * margin + w_rf * logit(clip(p_rf)) + c)``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tocsin.errors import ModelError
from tocsin.models import fraud_gbdt as g

EPS = 1e-3  # the forest's probability is clipped to [EPS, 1 - EPS] before the logit


def fit_forest(x: np.ndarray, y: np.ndarray, *, trees: int = 100, seed: int = 7,
               threads: int = 2):
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=trees, min_samples_leaf=3, n_jobs=threads,
                                  class_weight="balanced_subsample",
                                  random_state=seed).fit(x, y)


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, EPS, 1 - EPS)
    return np.log(p / (1 - p))


def stack_inputs(margin: np.ndarray, p_rf: np.ndarray) -> np.ndarray:
    return np.stack([margin, _logit(p_rf)], 1)


def fit_stacker(margin: np.ndarray, p_rf: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """``w_gbdt, w_rf, c`` of the logistic regression on held-out (validation) scores."""
    from sklearn.linear_model import LogisticRegression

    if y.min() == y.max():
        raise ModelError("stacking needs both classes in the validation period")
    lr = LogisticRegression(C=1e6, max_iter=1000).fit(stack_inputs(margin, p_rf), y)
    return float(lr.coef_[0, 0]), float(lr.coef_[0, 1]), float(lr.intercept_[0])


def cross_fitted(margin: np.ndarray, p_rf: np.ndarray, y: np.ndarray, *, folds: int = 5,
                 seed: int = 7) -> np.ndarray:
    """Out-of-fold stacked scores on the validation period: each fold scored by a stacker
    fitted on the other folds, so the stack's validation quality is not measured on the rows
    its weights were fitted on (the stack is then chosen over the trees alone only if it is
    better there)."""
    from sklearn.model_selection import StratifiedKFold

    k = int(min(folds, y.sum(), len(y) - y.sum()))
    if k < 2:
        raise ModelError("stacking needs at least two fraud and two legitimate transactions "
                         "in the validation period")
    out = np.zeros(len(y))
    for fit_i, score_i in StratifiedKFold(k, shuffle=True, random_state=seed).split(margin, y):
        w = fit_stacker(margin[fit_i], p_rf[fit_i], y[fit_i])
        out[score_i] = predict(w, margin[score_i], p_rf[score_i])
    return out


def predict(w: tuple[float, float, float], margin: np.ndarray, p_rf: np.ndarray) -> np.ndarray:
    z = stack_inputs(margin, p_rf) @ np.array(w[:2]) + w[2]
    return 1.0 / (1.0 + np.exp(-z))


def _forest_node(rf, cols_map: np.ndarray, out: str = "p_rf"):
    _, _, helper = g._onnx()
    c: dict[str, list] = {k: [] for k in ("tree", "node", "feat", "val", "mode", "true",
                                          "false")}
    t_tree, t_node, t_w = [], [], []
    n_trees = len(rf.estimators_)
    for t, est in enumerate(rf.estimators_):
        tr = est.tree_
        for i in range(tr.node_count):
            c["tree"].append(t)
            c["node"].append(i)
            left, right = int(tr.children_left[i]), int(tr.children_right[i])
            if left == -1:
                v = tr.value[i, 0]
                c["feat"].append(0)
                c["val"].append(0.0)
                c["mode"].append("LEAF")
                c["true"].append(0)
                c["false"].append(0)
                t_tree.append(t)
                t_node.append(i)
                t_w.append(float(v[1] / v.sum()) / n_trees if v.sum() > 0 else 0.0)
            else:
                c["feat"].append(int(cols_map[int(tr.feature[i])]))
                c["val"].append(g._down_f32(float(tr.threshold[i])))
                c["mode"].append("BRANCH_LEQ")
                c["true"].append(left)
                c["false"].append(right)
    return helper.make_node(
        "TreeEnsembleRegressor", ["tab"], [out], domain="ai.onnx.ml", n_targets=1,
        aggregate_function="SUM", post_transform="NONE", base_values=[0.0],
        nodes_treeids=c["tree"], nodes_nodeids=c["node"], nodes_featureids=c["feat"],
        nodes_values=c["val"], nodes_modes=c["mode"], nodes_truenodeids=c["true"],
        nodes_falsenodeids=c["false"], target_treeids=t_tree, target_nodeids=t_node,
        target_ids=[0] * len(t_tree), target_weights=t_w)


def export_stack(gbdt, n_iter: int, rf, w: tuple[float, float, float], n_features: int,
                 path: str | Path, columns: np.ndarray) -> None:
    """``tab`` -> ``prob``: the stacked boosted trees (first ``n_iter``) and forest."""
    TensorProto, _, helper = g._onnx()
    cols = np.asarray(columns)
    f = TensorProto.FLOAT
    inits = [helper.make_tensor("w_g", f, [], [w[0]]), helper.make_tensor("w_r", f, [], [w[1]]),
             helper.make_tensor("c", f, [], [w[2]]), helper.make_tensor("lo", f, [], [EPS]),
             helper.make_tensor("hi", f, [], [1 - EPS]), helper.make_tensor("one", f, [], [1.0]),
             helper.make_tensor("flat", TensorProto.INT64, [1], [-1])]
    mk = helper.make_node
    nodes = [g.ensemble_node(gbdt, n_iter, cols), _forest_node(rf, cols),
             mk("Clip", ["p_rf", "lo", "hi"], ["pc"]), mk("Sub", ["one", "pc"], ["qc"]),
             mk("Div", ["pc", "qc"], ["odds"]), mk("Log", ["odds"], ["rl"]),
             mk("Mul", ["margin", "w_g"], ["gm"]), mk("Mul", ["rl", "w_r"], ["rm"]),
             mk("Add", ["gm", "rm"], ["s"]), mk("Add", ["s", "c"], ["z"]),
             mk("Sigmoid", ["z"], ["p2"]), mk("Reshape", ["p2", "flat"], ["prob"])]
    g.write_graph(nodes, inits, n_features, path, "fraud_stack")


def check_stack(path: str | Path, gbdt, n_iter: int, rf, w, x: np.ndarray,
                columns: np.ndarray, atol: float = 1e-4) -> float:
    """Largest |ONNX - scikit-learn| probability on ``x``; raises beyond ``atol``."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = sess.run(None, {"tab": np.ascontiguousarray(x, np.float32)})[0]
    xc = x[:, columns]
    want = predict(w, g.margin(gbdt, xc, n_iter), rf.predict_proba(xc)[:, 1])
    err = float(np.max(np.abs(got - want))) if len(x) else 0.0
    if err > atol:
        raise ModelError(f"ONNX export of the stacked fraud model differs by {err:.2e}")
    return err
