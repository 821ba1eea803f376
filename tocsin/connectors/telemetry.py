"""Metrics every stage shares: end-to-end latency from the source timestamp, input freshness,
consumer lag, model versions and state size.

Labels are bounded by construction: ``stage`` is one of :data:`STAGES`, ``topic`` is one of the
process's input topics, ``asset_type`` comes from the plant config, ``component`` is a fixed name
per process. Nothing keyed by asset, tag, card or alert id becomes a label (principle 12).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping

from prometheus_client import Counter, Gauge, Histogram

# source timestamp -> connector published -> worker decoded -> alert emitted -> fused alert ->
# history written; every one measured from the sample's source timestamp (payments has its own
# ingest-to-score tocsin_fraud_latency_seconds; imaging measures inference time only)
STAGES = ("connector", "worker", "alert", "fusion", "sink")
_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

STAGE_LATENCY = Histogram(
    "tocsin_stage_latency_seconds",
    "Source timestamp of the newest sample to the moment this stage handled it", ["stage"],
    buckets=_BUCKETS)
CLOCK_SKEW = Counter("tocsin_future_source_ts_total",
                     "Records whose source timestamp was ahead of this process's clock", ["stage"])
LAST_INPUT = Gauge("tocsin_last_input_timestamp_seconds",
                   "Wall clock (Unix s) when this stage last handled input", ["stage"])
CONSUMER_LAG = Gauge("tocsin_consumer_lag_messages",
                     "Messages behind the log end, summed over this process's partitions",
                     ["topic"])
MODEL_INFO = Gauge("tocsin_model_info", "Model version in service (value 1)",
                   ["asset_type", "version"])
STATE_ENTRIES = Gauge("tocsin_state_entries", "Entries held in a stateful operator",
                      ["component"])

_model_versions: dict[str, str] = {}


def _children(stage: str):
    """The labelled children of a stage, looked up once: ``labels()`` takes a lock and
    builds a key on every call, which cost more than the observation on the hot path."""
    got = _CHILDREN.get(stage)
    if got is None:
        got = _CHILDREN[stage] = (STAGE_LATENCY.labels(stage), LAST_INPUT.labels(stage),
                                  CLOCK_SKEW.labels(stage))
    return got


_CHILDREN: dict[str, tuple] = {}


def observe_latency(stage: str, source_ts_ns: int, now_ns: int | None = None) -> float:
    """Record source->stage latency in seconds; a source clock ahead of ours counts as skew
    (and as 0 s), never as a negative observation."""
    now_ns = time.time_ns() if now_ns is None else now_ns
    hist, last, skew = _children(stage)
    lat = (now_ns - int(source_ts_ns)) / 1e9
    if lat < 0:
        skew.inc()
        lat = 0.0
    hist.observe(lat)
    last.set(now_ns / 1e9)
    return lat


def observe_latencies(stage: str, source_ts_ns: Iterable[int], now_ns: int) -> None:
    """:func:`observe_latency` for a batch handled at ``now_ns`` (one child lookup and one
    last-input write per batch instead of per record)."""
    hist, last, skew = _children(stage)
    n = 0
    for ts in source_ts_ns:
        n += 1
        lat = (now_ns - ts) / 1e9
        if lat < 0:
            skew.inc()
            lat = 0.0
        hist.observe(lat)
    if n:
        last.set(now_ns / 1e9)


def observe_frame(stage: str, ts) -> None:
    """Latency of a frame's newest sample (``ts``: its int64 ns array); empty frames: none."""
    if len(ts):
        observe_latency(stage, int(ts.max()))


def set_model_version(asset_type: str, version: str) -> None:
    """One series per asset type: the previous version's series is removed."""
    old = _model_versions.get(asset_type)
    if old == version:
        return
    if old is not None:
        try:
            MODEL_INFO.remove(asset_type, old)
        except KeyError:
            pass
    MODEL_INFO.labels(asset_type, version).set(1)
    _model_versions[asset_type] = version


def track_state(component: str, size: Callable[[], float]) -> None:
    """Report ``size()`` as tocsin_state_entries{component} at every scrape."""
    STATE_ENTRIES.labels(component).set_function(size)


def lag_by_topic(assigned: Iterable, highwater: Callable[[object], int | None],
                 read_offset: Mapping) -> dict[str, int]:
    """Messages behind per topic over the assigned partitions (objects with ``.topic``).

    ``highwater(tp)`` is the log end offset (next offset to be written); ``read_offset[tp]``
    the last offset read. A partition nothing was read from yet counts its whole highwater
    only once known; partitions with no highwater yet are left out.
    """
    out: dict[str, int] = {}
    for tp in assigned:
        hw = highwater(tp)
        if hw is None:
            continue
        last = read_offset.get(tp)
        behind = hw - (last + 1) if last is not None else hw
        out[tp.topic] = out.get(tp.topic, 0) + max(0, int(behind))
    return out


def set_lag(lags: Mapping[str, int], strip_prefix: str = "") -> None:
    for topic, n in lags.items():
        name = topic[len(strip_prefix):] if strip_prefix and topic.startswith(strip_prefix) else topic
        CONSUMER_LAG.labels(name).set(n)
