"""Quality metrics on known inputs."""

import numpy as np
import pytest

from tocsin.models.imaging import quality as q


def test_auc_known_values():
    y = np.array([0, 0, 1, 1])
    assert q.auc(np.array([0.1, 0.2, 0.8, 0.9]), y) == 1.0
    assert q.auc(np.array([0.9, 0.8, 0.2, 0.1]), y) == 0.0
    assert q.auc(np.array([0.5, 0.5, 0.5, 0.5]), y) == 0.5
    assert q.auc(np.array([0.1, 0.4, 0.35, 0.8]), y) == 0.75
    assert np.isnan(q.auc(np.array([0.1]), np.array([1])))


def test_sensitivity_at_specificity():
    neg = np.arange(10) / 10  # 0.0 .. 0.9
    pos = np.array([0.85, 0.95, 0.5, 0.99])
    s = np.concatenate([neg, pos])
    y = np.r_[np.zeros(10), np.ones(4)]
    assert q.threshold_at_specificity(s, y, 0.9) == pytest.approx(0.8)
    assert q.sensitivity_at_specificity(s, y, 0.9) == 0.75  # 0.85, 0.95, 0.99 are above 0.8
