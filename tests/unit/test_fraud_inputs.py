"""The sequence summary the trees read (models/fraud_inputs.py): counts and spans that a person
can check by hand on a card-testing burst, independent of the batch a row comes in, and the
same numbers from the stream's feature code as from a hand-made sequence."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tocsin.contracts.payments import Transaction
from tocsin.detectors.fraud_features import FraudFeatures
from tocsin.errors import ModelError
from tocsin.models import fraud_inputs as fi

T0 = 1_767_225_600 * 10**9 + 3 * 3600 * 10**9  # 2026-01-01 03:00 UTC (night)
S = 10**9


def _col(name: str) -> int:
    return fi.NAMES.index(name)


def test_a_card_testing_burst_reads_as_such():
    ff = FraudFeatures()
    # three small remote payments at new terminals a minute apart, then a large one
    txns = [Transaction(f"t{i}", T0 + i * 60 * S, "c", f"T{i}", 2.0, pos_entry_mode="812")
            for i in range(3)] + [Transaction("big", T0 + 240 * S, "c", "T9", 900.0,
                                              pos_entry_mode="812")]
    tab, seq, pad, errors = ff.transform(txns)
    assert not errors
    s = fi.summary(seq, pad)
    assert s.shape == (4, len(fi.NAMES)) and s.dtype == np.float32
    last = s[-1]
    assert last[_col("seq_prev_count")] == 3
    assert last[_col("seq3_remote")] == last[_col("seq3_small")] == 3
    assert last[_col("seq3_new_terminal")] == 3 and last[_col("seq3_night")] == 3
    assert last[_col("seq3_max_log_amount")] == pytest.approx(math.log1p(2.0), rel=1e-4)
    # the last three transactions span 2 gaps of 60 s and the 120 s before the big one
    assert last[_col("seq3_log_span_s")] == pytest.approx(math.log1p(240.0), rel=1e-3)
    assert last[_col("seq_log_amount_over_max")] == pytest.approx(
        math.log1p(900.0) - math.log1p(2.0), rel=1e-4)
    assert s[0][_col("seq_prev_count")] == 0 and s[0][_col("seq5_remote")] == 0
    # a row's summary does not depend on the rows around it
    np.testing.assert_array_equal(fi.summary(seq[2:3], pad[2:3])[0], s[2])


def test_model_input_appends_the_summary_only_for_models_that_read_it():
    ff = FraudFeatures()
    tab, seq, pad, _ = ff.transform([Transaction("a", T0, "c", "T", 5.0)])
    assert fi.model_input(tab, None, None, ["tab"]) is tab
    x = fi.model_input(tab, seq, pad, ["tab", fi.VERSION])
    assert x.shape == (1, tab.shape[1] + len(fi.NAMES))
    with pytest.raises(ModelError, match="sequence"):
        fi.model_input(tab, None, None, ["tab", fi.VERSION])
