"""The terminal stage's model half: scores and alerts from a batch, and the hot reload of a
newly deployed model version (a broken deploy keeps the running model)."""

from __future__ import annotations

import shutil
import time

import numpy as np
import orjson

from tests.fraud_helpers import tiny_data, train_tiny
from tocsin.config.payments import FraudSettings
from tocsin.contracts.payments import FraudScore
from tocsin.detectors.fraud_features import FraudFeatures
from tocsin.models.fraud_registry import deploy
from tocsin.streams.fraud_scoring import Scorer


def test_scores_in_order_and_a_new_version_is_picked_up(tmp_path):
    model_dir = train_tiny(tmp_path / "fraud")
    fs = FraudSettings(model_dir=model_dir, force_branch="full", review_threshold=0.0,
                       alert_on="review")
    sc = Scorer(fs, "s", "a", reload_every_s=0.0)
    txns = tiny_data().transactions[:50]
    tab, seq, pad, _ = FraudFeatures().transform(txns)
    out = sc.score(txns, tab, seq, pad)
    scores = [FraudScore.decode(v) for t, _, v in out if t == "s"]
    assert [s.txn_id for s in scores] == [t.txn_id for t in txns]
    assert len([1 for t, _, _ in out if t == "a"]) == len(txns)  # review threshold 0
    want = sc.model.score(tab, seq, pad, "full")[0]
    assert np.allclose([s.score for s in scores], want)
    v1 = sc.model.version
    stage = tmp_path / "stage"
    shutil.copytree(model_dir, stage)
    meta = orjson.loads((stage / "meta.json").read_bytes())
    time.sleep(1.1)  # the registry's version ids have a one-second clock in them
    deploy(model_dir, stage, meta)
    sc.maybe_reload()
    assert sc.model.version != v1
    (model_dir / "meta.json").write_bytes(b"{broken")
    v2 = sc.model.version
    sc.maybe_reload()  # logged, the running model stays
    assert sc.model.version == v2
    assert FraudScore.decode(sc.score(txns[:1], tab[:1], seq[:1], pad[:1])[0][2]).model_version \
        == v2
