"""The LSTM autoencoder and its one training loop: it learns structure the old shape could
not, reports its curve, holds out a later part without overlap, and exports to ONNX exactly
for every seed."""

from __future__ import annotations

import numpy as np
import pytest

from tocsin.detectors.model_input import sequences
from tocsin.models import ae_training, lstm_ae
from tocsin.models.backends import open_session


def _white_but_correlated(n=400, d=12, k=4, seed=0, seq_len=20):
    """Steps independent in time (as the demo plant's 1 s features) whose columns share k
    latent factors: a per-step bottleneck can learn them, one code per window cannot."""
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, k)) @ rng.normal(size=(k, d)) + 0.2 * rng.normal(size=(n, d))
    z = (z - z.mean(0)) / z.std(0)
    return sequences(z.astype(np.float32), seq_len)


def test_split_leaves_a_gap_of_seq_len_minus_one():
    tr, va = ae_training.split(100, 8, 0.2)
    assert (tr.stop, va.start, va.stop) == (73, 80, 100)
    assert va.start - tr.stop == 7  # the sequences that share steps with the held-out ones
    assert ae_training.split(10, 8, 0.2) == (slice(0, 10), slice(0, 10))


def test_step_shape_learns_what_the_old_shape_cannot():
    seqs = _white_but_correlated()
    new = lstm_ae.train(seqs, hidden=16, arch="step", code=lstm_ae.code_size(
        seqs[:, -1], 0.9, 16), max_epochs=30, min_steps=0, seed=0, threads=1)
    old = lstm_ae.train(seqs, hidden=16, arch="sequence", max_epochs=30, min_steps=0,
                        seed=0, threads=1)
    assert new.curve.learned > 0.5, new.curve.summary()
    assert old.curve.learned < new.curve.learned - 0.3, old.curve.summary()
    doc = new.curve.to_dict()
    assert len(doc["train"]) == len(doc["val"]) == len(doc["lr"]) >= doc["best_epoch"] >= 1
    assert doc["best_val"] == min(doc["val"]) and doc["n_val"] > 0 and doc["steps"] > 0


def test_code_size_follows_the_data():
    seqs = _white_but_correlated(k=3)
    assert 2 <= lstm_ae.code_size(seqs[:, -1], 0.9, 32) <= 8
    noise = np.random.default_rng(1).normal(size=(500, 20))
    assert lstm_ae.code_size(noise, 0.9, 32) >= 15
    assert lstm_ae.code_size(noise, 0.9, 8) == 8


def test_early_stopping_waits_for_min_steps():
    seqs = _white_but_correlated(n=120, seq_len=8)
    r = lstm_ae.train(seqs, hidden=8, max_epochs=60, patience=1, min_steps=100, seed=0,
                      threads=1)
    assert r.curve.steps >= 100 or "max_epochs" in r.curve.stopped


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_onnx_export_is_exact_for_every_seed(tmp_path, seed):
    seqs = _white_but_correlated(n=120, seed=seed, seq_len=8)
    r = lstm_ae.train(seqs, hidden=16, arch="step", code=4, max_epochs=5, min_steps=0,
                      seed=seed, threads=1)
    lstm_ae.export_onnx(r.model, seqs.shape[1], seqs.shape[2], tmp_path / "ae.onnx")
    probe = np.concatenate([seqs[:37], 8 * seqs[37:40]])  # another batch size, wild inputs
    got = open_session(tmp_path / "ae.onnx").run(probe)["sqerr"]
    ref = lstm_ae.errors(r.model, probe)
    assert np.abs(got - ref).max() <= 1e-4 * max(1.0, float(ref.max()))
