"""One asset's fusion state to and from bytes (the fusion operator's changelog value).

Everything the engine keeps per asset goes in: the open episode (id, severity, posterior,
ack, escalations, hold timer), the 3-of-5 raise window and flapping history, threshold
alerts waiting for their tick and active ones, ticks waiting out the lateness, and the last
evaluation's evidence (the text of an ack or clear). The network spec is not stored: it is
looked up again from the asset type, so a restored asset uses the worker's current network.
"""

from __future__ import annotations

from collections import deque
from dataclasses import asdict

import orjson

from tocsin.contracts.alerts import Alert, AlertEvent
from tocsin.contracts.scores import Scores
from tocsin.detectors.fusion import FusionEngine, _AssetState
from tocsin.detectors.lifecycle import AlertLifecycle, _Open

FORMAT = 1


def dump_asset(engine: FusionEngine, asset: str) -> bytes:
    st = engine._state[asset]
    lc = st.lifecycle
    return orjson.dumps({
        "v": FORMAT, "asset": asset,
        "asset_type": st.spec.asset_type if st.spec is not None else None,
        "open": asdict(lc.open) if lc.open is not None else None,
        "last_ts": lc.last_ts, "raises": [list(r) for r in lc.raises],
        "pending": list(lc.pending),
        "pending_thr": [a.encode().decode() for *_k, a in st.pending_thr],
        "active_thr": [a.encode().decode() for a in st.active_thr.values()],
        "pending_ticks": [s.encode().decode() for s in st.pending_ticks],
        "last": st.last,
    })


def load_asset(engine: FusionEngine, data: bytes) -> str:
    """Put a dumped asset back into ``engine``; -> the asset id."""
    d = orjson.loads(data)
    if d.get("v") != FORMAT:
        raise ValueError(f"fusion state format {d.get('v')!r}, expected {FORMAT}")
    asset = d["asset"]
    lc = AlertLifecycle(asset, engine.cfg.lifecycle)
    lc.open = _Open(**d["open"]) if d["open"] is not None else None
    lc.last_ts = d["last_ts"]
    lc.raises = deque((int(ts), str(t)) for ts, t in d["raises"])
    lc.pending = deque(int(t) for t in d["pending"])
    st = _AssetState(lc, None)
    for raw in d["pending_thr"]:
        a = Alert.decode(raw.encode())
        st.pending_thr.append((a.source_ts, a.alert_id, a.event is AlertEvent.CLEARED, a))
    for raw in d["active_thr"]:
        a = Alert.decode(raw.encode())
        st.active_thr[a.alert_id] = a
    st.pending_ticks = [Scores.decode(raw.encode()) for raw in d["pending_ticks"]]
    st.last = d["last"]
    atype = engine.assets.get(asset, (d.get("asset_type"), []))[0] or d.get("asset_type")
    net = engine.model.networks.get(atype) if atype else None
    st.spec = net.spec if net else None
    if asset not in engine.assets:
        engine._extra.admit(asset)
    engine._state[asset] = st
    return asset


def drop_asset(engine: FusionEngine, asset: str) -> None:
    """Forget an asset whose partition moved to another worker."""
    engine._state.pop(asset, None)
    engine._extra.keys.discard(asset)
