"""The hybrid model: a tiny one trained on simulated data, exported to ONNX, served by ONNX
Runtime with the same numbers torch gives; the TensorRT backend's missing-package message."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from tests.fraud_helpers import train_tiny
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.detectors.fraud_features import FraudFeatures
from tocsin.errors import ModelError
from tocsin.models.fraud_serving import FraudModel, decide


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return train_tiny(tmp_path_factory.mktemp("fraud-model"))


def _batch(n=50):
    sim = PaymentSwitch(customers=30, terminals=8, seed=9).generate(3)
    return FraudFeatures().transform(sim.transactions[:n])


def test_artifact_and_quality_table(tiny):
    meta = orjson.loads((tiny / "meta.json").read_bytes())
    assert set(meta["quality_test_period"]) == {"full", "light", "random_forest"}
    for q in meta["quality_test_period"].values():
        assert 0.0 <= q["roc_auc"] <= 1.0 and 0.0 <= q["recall_at_1pct_fpr"] <= 1.0
    tr, te = meta["periods_ns"]["train"], meta["periods_ns"]["test"]
    assert tr[1] < te[0]  # the test period is later than the training period
    assert 0 < meta["thresholds"]["review"] <= meta["thresholds"]["decline"] <= 1


def test_onnx_matches_torch_and_branches_differ(tiny):
    import torch

    from tocsin.detectors.fraud_features import FEATURES, SEQ_LEN, TOKEN_DIM
    from tocsin.models.fraud_hybrid import HybridFraudNet

    m = FraudModel(tiny)
    tab, seq, pad, errors = _batch()
    assert not errors
    full, gate = m.score(tab, seq, pad, "full")
    light, none = m.score(tab, None, None, "light")
    assert full.shape == light.shape == (50,) and none is None
    assert ((0 <= full) & (full <= 1)).all() and ((0 <= gate) & (gate <= 1)).all()
    assert not np.allclose(full, light)
    net = HybridFraudNet(len(FEATURES), TOKEN_DIM, SEQ_LEN, np.zeros(len(FEATURES)),
                         np.ones(len(FEATURES)))
    net.load_state_dict(torch.load(tiny / "torch_state.pt"))
    net.eval()
    with torch.no_grad():
        fused, lt, _, g = net(*(torch.from_numpy(a) for a in (tab, seq, pad)))
    np.testing.assert_allclose(full, torch.sigmoid(fused).numpy(), atol=1e-5)
    np.testing.assert_allclose(light, torch.sigmoid(lt).numpy(), atol=1e-5)
    np.testing.assert_allclose(gate, g.numpy(), atol=1e-5)
    # a batch gives each row the score it gets alone (no leakage across the batch)
    one, _ = m.score(tab[7:8], seq[7:8], pad[7:8], "full")
    assert one[0] == pytest.approx(full[7], abs=1e-5)


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
    with pytest.raises(ModelError, match="tocsin train fraud"):
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
