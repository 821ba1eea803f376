"""Fusion engine: threshold alerts + anomaly scores -> fault posterior -> lifecycle events.

Pure (no Kafka, no Faust, no clock): the fusion agent is a thin shell that decodes and hands
messages to :class:`FusionEngine`. Inputs are joined per asset on event time: a score tick at
time ``ts`` is evaluated with the threshold alerts whose source time is at or before ``ts``
(alerts that arrive early wait for their tick; with ``lateness_s`` > 0, ticks wait that long
for late alerts). Fused alerts (kind ``fusion``) are never inputs, so the loop through
``plant.alerts`` cannot feed itself.

The fused alert reuses the ``tocsin.alert/1`` envelope (rule = most probable fault type,
value = its posterior) and puts the fusion fields in ``details`` (schema ``tocsin.fusion/1``,
tocsin/contracts/schemas/fusion.v1.json).
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from tocsin.contracts.acks import Ack
from tocsin.contracts.alerts import Alert, AlertEvent, Severity
from tocsin.contracts.scores import Scores
from tocsin.detectors.bounds import KeyCap
from tocsin.detectors.fusion_bn import FusionModel, NetworkSpec
from tocsin.detectors.fusion_config import FusionConfig
from tocsin.detectors.lifecycle import (
    NS,
    AlertLifecycle,
    Assessment,
    Transition,
)

DETAILS_SCHEMA = "tocsin.fusion/1"


@dataclass
class _AssetState:
    lifecycle: AlertLifecycle
    spec: NetworkSpec | None
    pending_thr: list = field(default_factory=list)  # (source_ts, seq, Alert) sorted
    active_thr: dict = field(default_factory=dict)  # threshold alert id -> Alert
    pending_ticks: list = field(default_factory=list)  # Scores sorted by ts
    last: dict = field(default_factory=dict)  # last evaluation's evidence (for ack/clear)


class FusionEngine:
    def __init__(self, cfg: FusionConfig, model: FusionModel,
                 assets: dict[str, tuple[str, list[str]]], max_unknown_assets: int = 1000):
        """``assets``: asset id -> (asset type, tag names), e.g. from the plant config.
        ``max_unknown_assets``: assets outside ``assets`` that get state (beyond: skipped and
        counted in ``refused``), so ids from the wire cannot grow the state without bound."""
        self.cfg = cfg
        self.model = model
        self.assets = dict(assets)
        self._state: dict[str, _AssetState] = {}
        self._seq = 0
        self.unknown: dict[str, int] = {}  # asset or type without a network -> ticks skipped
        self.skipped = 0  # score ticks of assets without a network
        self._extra = KeyCap(max_unknown_assets)  # admitted assets outside the config
        self.refused = 0  # inputs of assets beyond the cap

    # ------------------------------------------------------------------ inputs
    def on_threshold(self, alert: Alert) -> bool:
        """Record a threshold alert event; False when it is not an input (fused alerts)."""
        if alert.kind != "threshold" or not self._admit(alert.asset):
            return False
        st = self._asset(alert.asset, None)
        # ties broken by id and event, not arrival: the two input topics interleave freely
        # (never by the Alert itself: a redelivered event is an equal key, not a TypeError)
        bisect.insort(st.pending_thr, (alert.source_ts, alert.alert_id,
                                       alert.event is AlertEvent.CLEARED, alert),
                      key=lambda x: x[:3])
        return True

    def on_scores(self, s: Scores, now_ns: int) -> list[Alert]:
        if not self._admit(s.asset):
            return []
        st = self._asset(s.asset, s)
        if st.spec is None:
            self.skipped += 1
            self.unknown[s.asset] = self.unknown.get(s.asset, 0) + 1
            return []
        bisect.insort(st.pending_ticks, s, key=lambda x: x.ts)
        watermark = st.pending_ticks[-1].ts - int(self.cfg.lateness_s * NS)
        out: list[Alert] = []
        while st.pending_ticks and st.pending_ticks[0].ts <= watermark:
            out += self._evaluate(st, st.pending_ticks.pop(0), now_ns)
        return out

    def on_ack(self, ack: Ack, now_ns: int) -> list[Alert]:
        asset = ack.alert_id.rpartition(":")[0]
        st = self._state.get(asset)
        if st is None:
            return []
        return [self._alert(st, t, now_ns) for t in st.lifecycle.ack(ack.alert_id, ack.user,
                                                                     ack.ts)]

    def resume(self, alert: Alert) -> bool:
        """Take over a fused alert that a previous worker left open (from the compacted
        open-alerts topic), so its episode goes on under the same id; False when it is not
        an open fused alert or the asset already has an open episode here."""
        if alert.kind != "fusion" or alert.event is AlertEvent.CLEARED:
            return False
        d = alert.details or {}
        st = self._asset(alert.asset, None)
        return st.lifecycle.resume(
            alert.alert_id, alert.opened_ts, int(d.get("tick_ts", alert.source_ts)),
            alert.severity.value, str(d.get("fault_type", alert.rule)),
            {str(k): float(v) for k, v in (d.get("posterior") or {}).items()},
            d.get("acked_by"), int(d.get("escalations", 0)), bool(d.get("flapping", False)))

    def set_model(self, model: FusionModel) -> None:
        """Swap in a newly trained network (hot reload). Open alerts, pending inputs and
        lifecycle state are kept; each asset takes its type's new network from its next tick."""
        self.model = model
        for asset, st in self._state.items():
            atype = self.assets.get(asset, (st.spec.asset_type if st.spec else None, []))[0]
            net = model.networks.get(atype) if atype else None
            st.spec = net.spec if net else None

    def open_alert(self, asset: str) -> str | None:
        st = self._state.get(asset)
        o = st.lifecycle.open if st else None
        return o.alert_id if o else None

    # ------------------------------------------------------------------ internals
    def _admit(self, asset: str) -> bool:
        if asset in self.assets or asset in self._state or self._extra.admit(asset):
            return True
        self.refused += 1
        return False

    def _asset(self, asset: str, s: Scores | None) -> _AssetState:
        st = self._state.get(asset)
        if st is None or (st.spec is None and s is not None):
            atype = self.assets.get(asset, (None, []))[0]
            if atype is None and s is not None:  # not in the plant config: trust the scores
                atype = s.asset_type
            net = self.model.networks.get(atype) if atype else None
            spec = net.spec if net else None
            if st is None:
                st = self._state[asset] = _AssetState(AlertLifecycle(asset, self.cfg.lifecycle),
                                                      spec)
            st.spec = spec
        return st

    def _evaluate(self, st: _AssetState, s: Scores, now_ns: int) -> list[Alert]:
        while st.pending_thr and st.pending_thr[0][0] <= s.ts:
            a = st.pending_thr.pop(0)[-1]
            if a.event is AlertEvent.CLEARED:
                st.active_thr.pop(a.alert_id, None)
            else:
                st.active_thr[a.alert_id] = a
        assert st.spec is not None  # set by _state_for before any evaluation
        nodes = evidence_nodes(self.cfg, st.spec, st.active_thr.values(), s)
        net = self.model.networks[st.spec.asset_type]
        posterior = net.posterior(nodes)
        floor = "critical" if any(a.severity is Severity.CRITICAL
                                  for a in st.active_thr.values()) else "warning"
        st.last = {"nodes": nodes, "thresholds": [_thr(a) for a in sorted(
                       st.active_thr.values(), key=lambda a: (a.source_ts, a.alert_id))],
                   "scores": {k: None if m is None else
                              {"score": m.score, "threshold": m.threshold,
                               "ratio": round(m.ratio, 4), "level": nodes.get(k)}
                              for k, m in s.models.items()},
                   "top_tags": s.top_tags(), "model_version": s.model_version,
                   "source_ts": s.source_ts or s.ts}
        trs = st.lifecycle.step(Assessment(s.ts, posterior, floor))
        return [self._alert(st, t, now_ns) for t in trs]

    def _alert(self, st: _AssetState, t: Transition, now_ns: int) -> Alert:
        last = st.last
        top_tags = last.get("top_tags") or []
        thr_tags = [x["tag"] for x in last.get("thresholds", [])]
        tag = (thr_tags or top_tags or [""])[0]
        p_top = t.posterior.get(t.fault_type, 0.0)
        p_fault = 1.0 - t.posterior.get("normal", 0.0)
        before, after = self.cfg.history_window_s
        drivers = sorted({*thr_tags, *top_tags[:2]})
        verb = {"raised": "likely", "updated": "updated", "acknowledged": "acknowledged",
                "cleared": "cleared"}[t.event]
        msg = (f"{t.asset}: {t.fault_type} fault {verb} (P={p_top:.2f}"
               + (f"; evidence: {', '.join(drivers)}" if drivers else "") + f") - {t.reason}")
        details = {
            "schema": DETAILS_SCHEMA, "fault_type": t.fault_type,
            "posterior": {k: round(v, 4) for k, v in t.posterior.items()},
            "p_fault": round(p_fault, 4), "evidence": {
                "nodes": last.get("nodes", {}), "thresholds": last.get("thresholds", []),
                "scores": last.get("scores", {}), "top_tags": top_tags},
            "model_versions": {"fusion": self.model.version,
                               "scores": last.get("model_version", "")},
            "history": {"asset": t.asset, "start_ts": t.opened_ts - int(before * NS),
                        "stop_ts": t.ts + int(after * NS), "tags": drivers,
                        "command": f"tocsin history around {t.alert_id}"},
            "acked_by": t.acked_by, "escalations": t.escalations, "flapping": t.flapping,
            "reason": t.reason, "tick_ts": t.ts,
        }
        source_ts = last.get("source_ts", t.ts) if t.event != "acknowledged" else t.ts
        return Alert(alert_id=t.alert_id, event=AlertEvent(t.event), asset=t.asset,
                     kind="fusion", rule=t.fault_type, tag=tag,
                     severity=Severity(t.severity), value=round(p_top, 4),
                     limit=self.cfg.lifecycle.raise_p, source_ts=source_ts,
                     opened_ts=t.opened_ts, emitted_ts=now_ns, message=msg, details=details)


def evidence_nodes(cfg: FusionConfig, spec: NetworkSpec, active, s: Scores
                   ) -> dict[str, str | None]:
    """The network's evidence for one tick: active threshold alerts per tag group, score
    levels, and the tag group that dominates the LSTM-AE error (None = not observed)."""
    lv = cfg.score_levels
    nodes: dict[str, str | None] = {}
    hit = {cfg.group_of(a.tag) for a in active}
    for g in spec.groups:
        nodes[f"thr_{g}"] = "yes" if g in hit else "no"
    for name in ("iforest", "lstm_ae"):
        m = s.models.get(name)
        nodes[name] = None if m is None else lv.level(m.ratio)
    ae = s.models.get("lstm_ae")
    if ae is None:
        nodes["top_group"] = None
    elif ae.ratio < 1.0 or not ae.contributions:
        nodes["top_group"] = "none"
    else:
        share: dict[str, float] = {}
        for tag, c in ae.contributions.items():
            grp = cfg.group_of(tag)
            if grp is not None and grp in spec.groups:
                share[grp] = share.get(grp, 0.0) + c
        nodes["top_group"] = max(sorted(share), key=share.__getitem__) if share else "none"
    return nodes


def _thr(a: Alert) -> dict:
    return {"alert_id": a.alert_id, "tag": a.tag, "rule": a.rule, "severity": a.severity.value,
            "value": a.value, "limit": a.limit, "source_ts": a.source_ts}


