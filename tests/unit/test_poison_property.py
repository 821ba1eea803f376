"""Property tests of the poison rule (issue 14): arbitrary bytes and schema-valid-but-hostile
records through each consumer's decode and process path.

For every input kind the property is the same: decoding either gives a record that satisfies
the contract's invariants or raises :class:`SchemaError` (a named reason, so the record can be
dead-lettered); processing a decoded record never raises. Nothing else may escape, because
anything else used to crash an agent into a restart loop.
"""

from __future__ import annotations

import math
import time

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tocsin.config.plant import load_plant
from tocsin.connectors.influx_lines import alert_lines, feature_lines, readings_lines, score_lines
from tocsin.contracts import eventtime
from tocsin.contracts import features as fc
from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert, AlertEvent, Severity, alert_id
from tocsin.contracts.imaging import StudyImage
from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.contracts.readings import ReadingsFrame
from tocsin.contracts.scores import ModelScore, Scores
from tocsin.contracts.strict import _BAD_CHARS
from tocsin.detectors.fraud_features import FraudFeatures
from tocsin.detectors.intake import ReadingsIntake
from tocsin.detectors.threshold_alerts import alerter_from_plant
from tocsin.detectors.windows import WindowEngine
from tocsin.errors import SchemaError

NS = 1_000_000_000
NOW = time.time_ns()
PROP = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# ---------------------------------------------------------------- hostile values
hostile_scalar = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 2**63, 1532476829, 1532476829000,
                     NOW + 365 * 86400 * NS, NOW, 10**30]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from([1e30, -0.0, 5e-324, 1.7976931348623157e308]),
    st.text(max_size=8),
    st.sampled_from(["", "\x00", "pump\u202e1", "a\u200b", " ", "x" * 300, "\ud7ff", "tag"]),
)
hostile = st.recursive(hostile_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=4), inner, max_size=3)),
    max_leaves=8)


def _frames() -> st.SearchStrategy[dict]:
    """Readings objects with the right schema tag and hostile everything else."""
    n = st.integers(0, 6)
    ts = st.one_of(st.integers(-(2**63), 2**63 - 1),
                   st.integers(NOW - 10 * NS, NOW + 10 * NS),
                   st.sampled_from([1532476829, 1532476829000, NOW + 365 * 86400 * NS]),
                   st.booleans(), st.floats(allow_nan=False, allow_infinity=False),
                   st.lists(st.integers(), max_size=2))
    val = st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(),
                    st.none(), st.booleans(), st.text(max_size=3), st.lists(st.floats(), max_size=2))

    @st.composite
    def build(draw):
        k = draw(n)
        ragged = draw(st.booleans())

        def ln() -> int:
            return draw(st.integers(0, 6)) if ragged else k

        def arr(elem):
            m = ln()
            return draw(st.lists(elem, min_size=m, max_size=m))

        return {
            "schema": "tocsin.readings/1",
            "asset": draw(st.one_of(st.sampled_from(["pump-1", "motor-1", "unknown-9"]),
                                    hostile_scalar)),
            "seq": draw(st.one_of(st.integers(0, 2**70), hostile_scalar)),
            "source": draw(st.one_of(st.just("sim"), hostile_scalar)),
            "tag": arr(st.one_of(st.sampled_from(["discharge_pressure", "flow",
                                                   "bearing_temp", "new_tag"]), hostile_scalar)),
            "ts": arr(ts),
            "value": arr(val),
            "quality": arr(st.one_of(st.integers(-1, 3), st.booleans())),
        }
    return build()


def _dump(obj) -> bytes:
    try:
        return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)
    except (orjson.JSONEncodeError, TypeError):  # ints beyond 64 bits: as JSON text anyway
        import json

        return json.dumps(obj).encode()


def _decodes_or_schema_error(decode, data: bytes):
    try:
        return decode(data)
    except SchemaError as exc:
        assert str(exc), "a dead letter needs a reason"
        return None


# ---------------------------------------------------------------- readings consumers
@pytest.fixture(scope="module")
def plant_consumers():
    plant = load_plant()
    return plant, alerter_from_plant(plant), WindowEngine(plant.features, plant.asset_tags())


def _check_frame_invariants(f: ReadingsFrame) -> None:
    n = len(f.tags)
    assert f.ts.shape == f.values.shape == f.quality.shape == (n,)
    assert f.ts.dtype == np.int64 and f.values.dtype == np.float64
    assert type(f.seq) is int and 0 <= f.seq < 2**63
    for s in [f.asset, *f.tags]:
        assert type(s) is str and s and not _BAD_CHARS.search(s) and len(s) <= 256
    good = f.quality != 2
    assert np.isfinite(f.values[good]).all()
    assert set(f.quality.tolist()) <= {0, 1, 2}


@PROP
@given(st.one_of(st.binary(max_size=300), _frames().map(_dump)))
def test_readings_decode_and_every_readings_consumer(plant_consumers, data):
    _, alerter, engine = plant_consumers
    intake = ReadingsIntake()
    frame = _decodes_or_schema_error(ReadingsFrame.decode, data)
    if frame is None:
        return
    _check_frame_invariants(frame)
    got = intake.check(frame, NOW)
    kept = got.frame
    codes = eventtime.classify(kept.ts, NOW)
    assert not codes.any(), "the guard let an implausible time through"
    assert (got.refused > 0) == bool(got.reason)
    alerter.process(kept, NOW)  # thresholds
    engine.add(kept.asset, kept.tags, kept.ts, kept.values, kept.quality)  # features
    engine.close_ready()
    readings_lines(frame)  # history sink (all samples: history keeps what was sent)
    for st_ in engine._assets.values():  # no watermark beyond the allowed skew
        assert st_.max_ts <= NOW + int(intake.guard.max_future_s * NS)


# ---------------------------------------------------------------- other record kinds
def _valid_records() -> dict[str, dict]:
    a = Alert(alert_id("pump-1", "threshold", "high", "bearing_temp", NOW), AlertEvent.RAISED,
              "pump-1", "threshold", "high", "bearing_temp", Severity.WARNING, 91.0, 90.0,
              NOW, NOW, NOW, "hot")
    s = Scores("press-1", "hydraulic-press", NOW, {"iforest": ModelScore(3.0, 1.0),
               "lstm_ae": ModelScore(2.0, 1.0, {"pressure": 0.5})}, "v", "h",
               source_ts=NOW - 1)
    t = Transaction("t-1", NOW, "card-1", "term-1", 12.5, mcc=5411)
    lab = FraudLabel("t-1", "card-1", "term-1", NOW - NS, NOW)
    img = StudyImage.from_array(np.arange(16, dtype=np.int16).reshape(4, 4), study_uid="1.2",
                                series_uid="1.2.3", sop_uid="1.2.3.4", modality="CT",
                                vendor="v", spacing=(0.7, 0.7), slope=1.0, intercept=-1024.0,
                                source="watch", sender="s", received_ts=NOW)
    plant = load_plant()
    eng = WindowEngine(plant.features, plant.asset_tags())
    tags = plant.asset_tags()["pump-1"]
    for k in range(3):
        ts = np.full(len(tags), NOW - (10 - k) * NS, dtype=np.int64)
        eng.add("pump-1", tags, ts, np.arange(len(tags), dtype=np.float64))
    row = eng.close_ready(flush=True)[0]
    sizes = {sc.name: sc.size_ns for sc in plant.features.scales}
    feat = fc.encode(row, eng.names, sizes, "h", 0)
    return {k: orjson.loads(v) for k, v in {
        "alert": a.encode(), "scores": s.encode(), "ack": Ack(a.alert_id, "ann", NOW).encode(),
        "txn": t.encode(), "label": lab.encode(), "image": img.encode(), "features": feat,
    }.items()}


VALID = _valid_records()


def _mutated(kind: str) -> st.SearchStrategy[bytes]:
    base = VALID[kind]
    keys = sorted(base)

    @st.composite
    def build(draw):
        obj = orjson.loads(orjson.dumps(base))
        for _ in range(draw(st.integers(1, 3))):
            key = draw(st.sampled_from([k for k in keys if k != "schema"] + ["extra"]))
            if draw(st.integers(0, 5)) == 0:
                obj.pop(key, None)
            else:
                obj[key] = draw(hostile)
        return _dump(obj)
    return st.one_of(st.binary(max_size=200), build())


@pytest.fixture(scope="module")
def fusion_engine():
    from tocsin.config.fusion import load_fusion_config
    from tocsin.detectors.fusion import FusionEngine
    from tocsin.detectors.fusion_bn import FusionModel, expert_network
    from tocsin.detectors.fusion_train import assets_from_plant, specs_for

    cfg = load_fusion_config()
    # the press only: its network's posterior tables take a second (the pump's a minute)
    assets = {k: v for k, v in assets_from_plant(load_plant()).items() if k == "press-1"}
    model = FusionModel({at: expert_network(cfg, s) for at, s in specs_for(cfg, assets).items()})
    return FusionEngine(cfg, model, assets)


@PROP
@given(_mutated("alert"))
def test_alerts_for_fusion_history_and_tails(fusion_engine, data):
    from tocsin.streams.tail import format_alert

    a = _decodes_or_schema_error(Alert.decode, data)
    if a is not None:
        fusion_engine.on_threshold(a)
        alert_lines(a)
        format_alert(a)


@settings(PROP, max_examples=8)  # each decoded tick is one exact inference (pgmpy VE)
@given(_mutated("scores"))
def test_scores_for_fusion_and_history(fusion_engine, data):
    s = _decodes_or_schema_error(Scores.decode, data)
    if s is not None:
        fusion_engine.on_scores(s, NOW)
        score_lines(s)


@PROP
@given(_mutated("ack"))
def test_acks_for_fusion(fusion_engine, data):
    a = _decodes_or_schema_error(Ack.decode, data)
    if a is not None:
        fusion_engine.on_ack(a, NOW)


@PROP
@given(_mutated("features"))
def test_features_for_anomaly_and_history(tmp_path_factory, data):
    from tocsin.models.scoring import AnomalyScorer, ModelRegistry

    got = _decodes_or_schema_error(fc.decode, data)
    if got is not None:
        scorer = AnomalyScorer(ModelRegistry(tmp_path_factory.getbasetemp() / "none",
                                             "onnxruntime"), load_plant().asset_types())
        scorer.process([got[0]], NOW)
        feature_lines(data)


@PROP
@given(_mutated("txn"))
def test_transactions_for_the_fraud_features(data):
    t = _decodes_or_schema_error(Transaction.decode, data)
    if t is not None:
        for key in ("txn_id", "card_id", "terminal_id"):
            v = getattr(t, key)
            assert v and not _BAD_CHARS.search(v)
        assert eventtime.check_one(t.ts, NOW) is None
        assert math.isfinite(t.amount)
        FraudFeatures({}, {}).transform([t])


@PROP
@given(_mutated("label"))
def test_labels_for_the_fraud_features(data):
    lab = _decodes_or_schema_error(FraudLabel.decode, data)
    if lab is not None:
        FraudFeatures().add_label(lab)


@PROP
@given(_mutated("image"))
def test_study_images_for_the_imaging_agent(data):
    img = _decodes_or_schema_error(StudyImage.decode, data)
    if img is not None:
        try:
            img.array()
        except SchemaError:
            pass  # the imaging agent dead-letters this one at the prepare step
