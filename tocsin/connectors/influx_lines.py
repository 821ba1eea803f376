"""Wire records -> InfluxDB line protocol. Pure: bytes in, lines out.

Schema (one measurement per kind; asset and tag as InfluxDB tags; source timestamps, ns):

    readings,asset=<asset>,tag=<tag> value=<float>,quality=<int>i <source ts>
    alerts,asset=..,tag=..,rule=..,kind=..,severity=..,event=.. value=..,limit=..,
           alert_id="..",message="..",opened_ts=<int>i <source ts of the event>
    features,asset=..,tag=..,scale=<1s|10s|60s> <feature>=<float>,...,n=<int>i <window end>
    scores,asset=..,model=<iforest|lstm_ae> score=..,threshold=..,ratio=..,
           top_tag="..",version=".." <tick end>

A point is identified by measurement, tag set and timestamp, so writing the same input twice
(a redelivery, a replay) overwrites, never doubles.
"""

from __future__ import annotations

from tocsin.contracts.alerts import Alert
from tocsin.contracts.readings import ReadingsFrame
from tocsin.contracts.scores import Scores

_TAG_ESC = str.maketrans({",": r"\,", " ": r"\ ", "=": r"\="})


def _tag(v: str) -> str:
    return v.translate(_TAG_ESC)


def _str_field(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'


_SERIES: dict[tuple[str, str], str] = {}  # "readings,asset=..,tag=.. value=": escaped once
_SERIES_MAX = 200_000


def _series(asset: str, tag: str) -> str:
    key = (asset, tag)
    s = _SERIES.get(key)
    if s is None:
        if len(_SERIES) >= _SERIES_MAX:  # bounded: unknown keys cannot grow it for ever
            _SERIES.clear()
        s = _SERIES[key] = f"readings,asset={_tag(asset)},tag={_tag(tag)} "
    return s


def readings_lines(frame: ReadingsFrame) -> list[str]:
    asset = frame.asset
    out = []
    for tag, ts, v, q in zip(frame.tags, frame.ts.tolist(), frame.values.tolist(),
                             frame.quality.tolist()):
        if v != v:  # NaN: no value field
            out.append(f"{_series(asset, tag)}quality={q}i {ts}")
        else:
            out.append(f"{_series(asset, tag)}value={v!r},quality={q}i {ts}")
    return out


def alert_lines(a: Alert) -> list[str]:
    tags = (f"asset={_tag(a.asset)},tag={_tag(a.tag)},rule={_tag(a.rule)},kind={_tag(a.kind)},"
            f"severity={a.severity.value},event={a.event.value}")
    fields = (f"value={float(a.value)!r},limit={float(a.limit)!r},"
              f"alert_id={_str_field(a.alert_id)},message={_str_field(a.message)},"
              f"opened_ts={a.opened_ts}i")
    return [f"alerts,{tags} {fields} {a.source_ts}"]


def feature_lines(value: bytes) -> list[str]:
    from tocsin.contracts import features as fc

    row, names, _ = fc.decode(value)
    asset = _tag(row.asset)
    out = []
    for scale, mat in row.scales.items():
        for tag, vals, n in zip(row.tags, mat.tolist(), row.counts[scale].tolist()):
            fields = ",".join(f"{_tag(k)}={v!r}" for k, v in zip(names, vals) if v == v)
            if fields:
                out.append(f"features,asset={asset},tag={_tag(tag)},scale={_tag(scale)} "
                           f"{fields},n={n}i {row.end}")
    return out


def score_lines(s: Scores) -> list[str]:
    out = []
    top = s.top_tags(1)
    for model, m in s.models.items():
        if m is None:
            continue
        out.append(f"scores,asset={_tag(s.asset)},model={_tag(model)} score={m.score!r},"
                   f"threshold={m.threshold!r},ratio={min(m.ratio, 1e12)!r},"
                   f"top_tag={_str_field(top[0] if top else '')},"
                   f"version={_str_field(s.model_version)} {s.ts}")
    return out
