"""Pure parts of the shared telemetry and the health model (no server, no broker)."""

from __future__ import annotations

from collections import namedtuple

from prometheus_client import REGISTRY

from tocsin.connectors import telemetry
from tocsin.connectors.health import Health

TP = namedtuple("TP", "topic partition")


def _sample(name: str, **labels) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_lag_sums_partitions_per_topic_and_skips_unknown_highwater():
    a0, a1, b0, c0 = TP("a", 0), TP("a", 1), TP("b", 0), TP("c", 0)
    hw = {a0: 100, a1: 50, b0: 7, c0: None}
    read = {a0: 89, a1: 49, b0: None}  # a0: 10 behind, a1: caught up, b0: nothing read yet
    assert telemetry.lag_by_topic([a0, a1, b0, c0], hw.get, read) == {"a": 10, "b": 7}


def test_lag_never_negative():
    tp = TP("a", 0)
    assert telemetry.lag_by_topic([tp], {tp: 5}.get, {tp: 9}) == {"a": 0}


def test_set_lag_strips_the_run_prefix_so_labels_stay_bounded():
    telemetry.set_lag({"t1234.plant.readings": 42}, "t1234.")
    assert _sample("tocsin_consumer_lag_messages", topic="plant.readings") == 42


def test_latency_from_source_ts_and_future_timestamps_count_as_skew():
    before = _sample("tocsin_stage_latency_seconds_count", stage="sink") or 0
    skew = _sample("tocsin_future_source_ts_total", stage="sink") or 0
    assert telemetry.observe_latency("sink", 1_000_000_000, now_ns=3_500_000_000) == 2.5
    assert telemetry.observe_latency("sink", 9_000_000_000, now_ns=3_500_000_000) == 0.0
    assert _sample("tocsin_stage_latency_seconds_count", stage="sink") == before + 2
    assert _sample("tocsin_future_source_ts_total", stage="sink") == skew + 1
    assert _sample("tocsin_last_input_timestamp_seconds", stage="sink") == 3.5


def test_batch_latencies_count_like_one_call_per_record():
    before = _sample("tocsin_stage_latency_seconds_count", stage="fusion") or 0
    total = _sample("tocsin_stage_latency_seconds_sum", stage="fusion") or 0
    skew = _sample("tocsin_future_source_ts_total", stage="fusion") or 0
    telemetry.observe_latencies("fusion", [1_000_000_000, 3_000_000_000, 9_000_000_000],
                                now_ns=3_500_000_000)
    assert _sample("tocsin_stage_latency_seconds_count", stage="fusion") == before + 3
    assert _sample("tocsin_stage_latency_seconds_sum", stage="fusion") == total + 3.0
    assert _sample("tocsin_future_source_ts_total", stage="fusion") == skew + 1
    assert _sample("tocsin_last_input_timestamp_seconds", stage="fusion") == 3.5


def test_model_info_keeps_one_series_per_asset_type():
    telemetry.set_model_version("pump", "v1")
    telemetry.set_model_version("pump", "v2")
    assert _sample("tocsin_model_info", asset_type="pump", version="v1") is None
    assert _sample("tocsin_model_info", asset_type="pump", version="v2") == 1


def test_state_size_is_read_at_scrape_time():
    box = {"n": 3}
    telemetry.track_state("unit-test", lambda: box["n"])
    assert _sample("tocsin_state_entries", component="unit-test") == 3
    box["n"] = 11
    assert _sample("tocsin_state_entries", component="unit-test") == 11


def test_health_live_until_heartbeat_goes_stale(monkeypatch):
    h = Health("t", stale_s=5)
    assert h.live()[0]  # no heartbeat source yet: answering is being alive
    clock = {"t": 100.0}
    monkeypatch.setattr("tocsin.connectors.health.time.monotonic", lambda: clock["t"])
    h.beat()
    clock["t"] = 104.0
    assert h.live()[0]
    clock["t"] = 106.0
    ok, body = h.live()
    assert not ok and body["heartbeat_age_s"] == 6.0
    assert not h.ready()[0]  # a stale loop is not ready either


def test_readiness_names_the_failing_check():
    h = Health("t")
    h.add_check("kafka", lambda: True)
    h.add_check("model", lambda: "no model for pump")
    h.add_check("boom", lambda: 1 / 0)
    ok, body = h.ready()
    assert not ok
    assert body["checks"] == {"kafka": "ok", "model": "no model for pump",
                              "boom": "ZeroDivisionError: division by zero"}
