"""The fraud models: boosted trees exported to ONNX equal scikit-learn (thresholds rounded
safely to float32), calibrated, with a light prefix; constant features named and harmless;
the hybrid's ONNX equals torch; the registry keeps what a model replaced."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tests.fraud_helpers import train_tiny
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.detectors.fraud_features import FEATURES, FraudFeatures
from tocsin.errors import ModelError
from tocsin.models import fraud_gbdt as g
from tocsin.models.fraud_serving import FraudModel, decide


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("fraud-model") / "fraud")


def _batch(n=50):
    sim = PaymentSwitch(customers=30, terminals=8, seed=9).generate(3)
    return FraudFeatures().transform(sim.transactions[:n])


def test_gbdt_onnx_equals_sklearn_and_rounds_thresholds_down():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3000, 5)).astype(np.float32)
    x[:, 3] = 2.0  # constant: dropped
    y = (x[:, 0] + x[:, 1] ** 2 + 0.5 * rng.normal(size=3000) > 1.5).astype(int)
    cols = np.setdiff1d(np.arange(5), g.constant_columns(x[:2000]))
    assert cols.tolist() == [0, 1, 2, 4]
    m, best = g.fit(x[:2000, cols], y[:2000], x[2000:, cols], y[2000:], max_iter=40)
    np.testing.assert_allclose(g.margin(m, x[:, cols], m.n_iter_),
                               m.decision_function(x[:, cols]), atol=1e-9)
    a, b = g.platt(g.margin(m, x[2000:, cols], best), y[2000:])
    assert a > 0
    # inputs exactly at and one float32 step either side of every split threshold
    thr = np.concatenate([p.nodes["num_threshold"][~p.nodes["is_leaf"].astype(bool)]
                          for (p,) in m._predictors[:best]])
    f32 = thr.astype(np.float32)
    probe = np.repeat(x[:1], 3 * len(thr), axis=0)
    feat = np.concatenate([cols[p.nodes["feature_idx"][~p.nodes["is_leaf"].astype(bool)]]
                           for (p,) in m._predictors[:best]])
    for j, v in enumerate((np.nextafter(f32, -np.inf), f32, np.nextafter(f32, np.inf))):
        probe[j * len(thr) + np.arange(len(thr)), np.tile(feat, 1)] = v
    path = "/tmp/_tocsin_gbdt_test.onnx"
    g.export_onnx(m, best, (a, b), 5, path, cols)
    assert g.check_export(path, m, best, (a, b), np.vstack([x, probe]), cols, atol=2e-6) < 2e-6
    # the constant column can take any value at serving: the score does not move
    x2 = x.copy()
    x2[:, 3] = 1e6
    import onnxruntime as ort

    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(s.run(None, {"tab": x})[0], s.run(None, {"tab": x2})[0])


def test_artifact_quality_thresholds_and_branches(tiny):
    meta = orjson.loads((tiny / "meta.json").read_bytes())
    assert meta["kind"] == "gbdt" and meta["iterations"]["light"] < meta["iterations"]["full"]
    assert set(meta["quality"]["validation"]) == {"full", "light"}
    assert set(meta["quality"]["test"]) == {"full", "light", "random_forest"}
    p = meta["periods_ns"]
    assert p["history"][1] == p["train"][0] and p["train"][1] == p["valid"][0] <= p["test"][0]
    thr = meta["thresholds"]
    assert 0 < thr["review"] <= thr["decline"] <= 1
    assert thr["validation"]["review"]["alerts_per_day"] <= 100.0
    m = FraudModel(tiny)
    tab, seq, pad, errors = _batch()
    assert not errors
    full, gate = m.score(tab, seq, pad, "full")
    light, none = m.score(tab, seq, pad, "light")
    assert full.shape == light.shape == (50,) and gate is None and none is None
    assert ((0 <= full) & (full <= 1)).all() and not np.allclose(full, light)
    # a row's score does not depend on the batch it comes in
    one, _ = m.score(tab[7:8], seq[7:8], pad[7:8], "full")
    assert one[0] == pytest.approx(full[7], abs=1e-6)
    # the deployed default reads the card's sequence (a summary appended to the features)
    assert meta["inputs"] == ["tab", "seqsum/1"] and len(meta["input_names"]) > len(FEATURES)
    with pytest.raises(ModelError, match="sequence"):
        m.score(tab, None, None, "full")


def test_constant_training_features_are_named_and_dropped(tmp_path):
    from tocsin.models.fraud_train import Periods, train_fraud

    sim = PaymentSwitch(customers=120, terminals=30, seed=5, frauds_per_day=2.0).generate(10)
    t0 = sim.transactions[0].ts
    day = 86_400 * 10**9
    said = []
    # no warm-up and no labels reported before validation: terminal fraud history is constant
    late = [type(lab)(lab.txn_id, lab.card_id, lab.terminal_id, lab.txn_ts, t0 + 30 * day)
            for lab in sim.labels]
    meta = train_fraud(sim.transactions, late, sim.fraud, tmp_path / "m",
                       periods=Periods(t0, t0, t0 + 6 * day, t0 + 10 * day), threads=1,
                       log=said.append, max_iter=30)
    warn = [s for s in said if s.startswith("WARNING")]
    assert warn and "term_days_since_known_fraud" in warn[0]
    assert "term_days_since_known_fraud" in meta["training_stats"]["constant"]
    assert FEATURES.index("term_days_since_known_fraud") not in meta["columns"]


def test_hybrid_onnx_matches_torch(tmp_path):
    import torch

    from tocsin.detectors.fraud_features import SEQ_LEN, TOKEN_DIM
    from tocsin.models.fraud_hybrid import HybridFraudNet

    art = train_tiny(tmp_path / "hybrid", kind="hybrid")
    m = FraudModel(art)
    tab, seq, pad, _ = _batch()
    full, gate = m.score(tab, seq, pad, "full")
    light, _ = m.score(tab, None, None, "light")
    net = HybridFraudNet(len(FEATURES), TOKEN_DIM, SEQ_LEN, np.zeros(len(FEATURES)),
                         np.ones(len(FEATURES)))
    net.load_state_dict(torch.load(art / "torch_state.pt"))
    net.eval()
    with torch.no_grad():
        fused, lt, _, gt = net(*(torch.from_numpy(a) for a in (tab, seq, pad)))
    np.testing.assert_allclose(full, torch.sigmoid(fused).numpy(), atol=1e-5)
    np.testing.assert_allclose(light, torch.sigmoid(lt).numpy(), atol=1e-5)
    np.testing.assert_allclose(gate, gt.numpy(), atol=1e-5)


def test_registry_records_what_a_model_replaced(tmp_path, tiny):
    from tocsin.models import fraud_registry as reg

    md = tmp_path / "fraud"
    versions = []
    for _ in range(2):
        stage = reg.staging(md)
        for f in ("full.onnx", "light.onnx"):
            (stage / f).write_bytes((tiny / f).read_bytes())
        meta = orjson.loads((tiny / "meta.json").read_bytes())
        versions.append(reg.deploy(md, stage, {k: v for k, v in meta.items()
                                               if k not in ("version", "replaces")}))
    rows = reg.list_models(md)
    assert [r["deployed"] for r in rows] == [False, True]
    assert rows[1]["replaces"] == versions[0]["version"] == rows[0]["version"]
    assert rows[1]["validation"]["avg_precision"] == pytest.approx(
        meta["quality"]["validation"]["full"]["avg_precision"])
    assert FraudModel(md).version == versions[1]["version"]


def test_decisions_follow_thresholds():
    assert decide(np.array([0.1, 0.5, 0.95]), 0.4, 0.9) == ["approve", "review", "decline"]


def test_tensorrt_backend_says_what_to_install(tiny):
    try:
        import tensorrt  # noqa: F401
        pytest.skip("tensorrt is installed here")
    except ImportError:
        pass
    with pytest.raises(ModelError, match=r"tocsin\[gpu\]"):
        FraudModel(tiny, backend="tensorrt")


def test_missing_or_foreign_model_is_refused(tmp_path, tiny):
    with pytest.raises(ModelError, match=f"tocsin train fraud --simulate -o {tmp_path}`"):
        FraudModel(tmp_path)
    meta = orjson.loads((tiny / "meta.json").read_bytes())
    meta["features"] = meta["features"][:-1]
    other = tmp_path / "other"
    other.mkdir()
    for f in ("full.onnx", "light.onnx"):
        (other / f).write_bytes((tiny / f).read_bytes())
    (other / "meta.json").write_bytes(orjson.dumps(meta))
    with pytest.raises(ModelError, match="retrain"):
        FraudModel(other)


def test_stacked_trees_and_forest_export_exactly(tmp_path):
    from tests.fraud_helpers import tiny_data
    from tocsin.models.fraud_train import train_fraud

    sim = tiny_data()
    meta = train_fraud(sim.transactions, sim.labels, sim.fraud, tmp_path / "s", stack=True,
                       threads=1, rf_trees=0, log=lambda m: None, max_iter=40)
    st = meta["stack"]
    assert st["export_max_abs_err"] < 1e-4 and st["w_trees"] != 0 and st["w_forest"] != 0
    m = FraudModel(tmp_path / "s")
    tab, seq, pad, _ = _batch()
    full, _ = m.score(tab, seq, pad, "full")
    light, _ = m.score(tab, seq, pad, "light")
    assert ((0 <= full) & (full <= 1)).all() and not np.allclose(full, light)


def test_stack_is_chosen_on_cross_fitted_validation_scores():
    from tocsin.models import fraud_stack as fs

    rng = np.random.default_rng(0)
    y = (rng.random(2000) < 0.05).astype(float)
    margin = y * 1.0 + rng.normal(0, 1, len(y))  # two noisy views of the label
    p_rf = 1 / (1 + np.exp(-(y * 1.5 + rng.normal(0, 1, len(y)) - 2)))
    oof = fs.cross_fitted(margin, p_rf, y)
    from tocsin.detectors.fraud_metrics import roc_ap

    assert roc_ap(y, oof)[1] > roc_ap(y, margin)[1]  # the views add up
    useless = rng.random(len(y))  # a forest that knows nothing adds nothing out of fold
    assert roc_ap(y, fs.cross_fitted(margin, useless, y))[1] < roc_ap(y, margin)[1] + 0.01
    with pytest.raises(ModelError, match="two fraud"):
        fs.cross_fitted(margin[:50], p_rf[:50], np.r_[1.0, np.zeros(49)])
