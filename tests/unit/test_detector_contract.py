"""One contract over every detector: fit on normal rows, score higher = more anomalous.

Parametrised over every registered implementation (the pure ones in
``tocsin.detectors.protocol.REGISTRY`` and the trained models in
``tocsin.models.detectors.REGISTRY``), so a new detector is checked by registering it.
"""

from __future__ import annotations

import numpy as np
import pytest

import tocsin.detectors.covariance  # noqa: F401  (registers)
import tocsin.detectors.fused  # noqa: F401  (registers)
import tocsin.detectors.knn  # noqa: F401  (registers)
import tocsin.detectors.modechange  # noqa: F401  (registers)
import tocsin.detectors.noise  # noqa: F401  (registers)
import tocsin.detectors.online  # noqa: F401  (registers)
import tocsin.detectors.pca  # noqa: F401  (registers)
import tocsin.detectors.residual  # noqa: F401  (registers)
from tocsin.detectors.protocol import REGISTRY, Detector, ModelError, out_of_fold_scores
from tocsin.models.detectors import REGISTRY as MODEL_REGISTRY

ALL = {**REGISTRY, **MODEL_REGISTRY}
# detectors that model the correlation between sensors, so a sensor stuck inside its normal
# range is visible to them. Measured: the Isolation Forest cannot see it (each split looks
# at one sensor) and neither does the LSTM-AE (a stuck-at-mean sensor LOWERS its error).
CORRELATION = {"pca", "mahalanobis", "knn"}
# detectors of row-to-row variability only: a level step is one large difference to them (by
# design, they are ensemble members beside a residual); their fault is extra noise instead
VARIABILITY = {"diff_var"}


def _normal(n: int, d: int = 6, seed: int = 0) -> np.ndarray:
    """Correlated normal operation: 2 latent drivers + noise, like plant sensors."""
    mix = np.random.default_rng(1234).normal(size=(2, d))  # the plant: same for every run
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2))
    return latent @ mix + 0.3 * rng.normal(size=(n, d)) + np.arange(d) * 10.0


@pytest.fixture(scope="module")
def fitted():
    x = _normal(300)
    return x, {name: make().fit(x) for name, make in ALL.items()}


def test_every_detector_is_listed():
    assert {"pca", "mahalanobis", "knn", "iforest", "lstm_ae"} <= set(ALL)


@pytest.mark.parametrize("name", sorted(ALL))
def test_follows_the_protocol(name, fitted):
    _, models = fitted
    det = models[name]
    assert isinstance(det, Detector)
    assert det.name == name


@pytest.mark.parametrize("name", sorted(ALL))
def test_scores_one_finite_float_per_row(name, fitted):
    _, models = fitted
    x = _normal(40, seed=5)
    x[3, 2] = np.nan  # a missing sensor value must not poison the row's score
    s = models[name].score(x)
    assert s.shape == (40,) and s.dtype.kind == "f"
    assert np.isfinite(s).all()


@pytest.mark.parametrize("name", sorted(ALL))
def test_higher_on_faults_than_on_unseen_normal_rows(name, fitted):
    _, models = fitted
    normal = _normal(200, seed=7)
    fault = normal.copy()
    if name in VARIABILITY:  # noise x6 on three sensors
        fault[:, 1:4] += np.random.default_rng(8).normal(0.0, 6 * 0.3, (len(fault), 3))
    else:
        fault[:, 1:4] += 6.0 * normal[:, 1:4].std(axis=0)  # a 6-sigma step on three sensors
    broken = normal.copy()
    broken[:, 4] = broken[:, 4].mean()  # a stuck sensor breaks the correlation structure
    sn, sf = models[name].score(normal), models[name].score(fault)
    assert np.median(sf) > np.quantile(sn, 0.95)
    if name in CORRELATION:
        assert np.median(models[name].score(broken)) > np.median(sn)


@pytest.mark.parametrize("name", sorted(ALL))
def test_deterministic_and_input_left_alone(name):
    x = _normal(120, seed=2)
    keep = x.copy()
    a = ALL[name]().fit(x).score(x[:30])
    b = ALL[name]().fit(x).score(x[:30])
    assert np.array_equal(x, keep)
    assert np.allclose(a, b, rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("name", sorted(ALL))
def test_errors_name_the_detector(name, fitted):
    _, models = fitted
    with pytest.raises(ModelError, match=name):
        ALL[name]().score(_normal(5))
    with pytest.raises(ModelError, match="columns"):
        models[name].score(_normal(5, d=4))
    with pytest.raises(ModelError, match="2-D"):
        models[name].score(np.zeros(6))


@pytest.mark.parametrize("name", sorted(REGISTRY))
def test_pure_detectors_round_trip_through_plain_documents(name, fitted):
    _, models = fitted
    det = models[name]
    again = type(det).from_dict(det.to_dict())
    x = _normal(20, seed=9)
    assert np.allclose(again.score(x), det.score(x))


def test_out_of_fold_scores_are_honest():
    """In-sample scores understate what unseen normal rows score; out-of-fold ones do not."""
    from tocsin.detectors.covariance import MahalanobisDetector

    x = _normal(120, d=30, seed=3)  # few rows per column: overfitting is visible
    ins = MahalanobisDetector(robust=False).fit(x).score(x)
    oof = out_of_fold_scores(lambda: MahalanobisDetector(robust=False), x, 5)
    new = MahalanobisDetector(robust=False).fit(x).score(_normal(400, d=30, seed=4))
    assert np.median(ins) < np.median(new)
    assert abs(np.median(oof) - np.median(new)) < abs(np.median(ins) - np.median(new))
