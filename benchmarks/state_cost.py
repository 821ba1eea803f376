"""What durable state costs each stateful plant operator (docs/runtime-state.md), in process.

replay (features, anomaly): the input a restart re-reads (records, bytes) and the CPU time of
  that replay, side by side with the live processing of the same stream (ratio = how much of
  a horizon's worth of live work a restart costs; anomaly replays without model calls).
changelog (fusion, alarm board): the bytes written per input record (one asset's state after
  each score tick; the board's keys after each alert event), i.e. bytes/s at a given rate.

SIMULATED plant data (tocsin.connectors.model_sources.simulated_frames), the demo plant's
three assets; fusion with the config's expert network. Usage: python -m benchmarks.state_cost
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from pathlib import Path

from tocsin.config.plant import load_plant
from tocsin.config.worker import load_settings
from tocsin.connectors.model_sources import simulated_frames
from tocsin.contracts import topics
from tocsin.streams.runtime.emitter import BatchEmitter
from tocsin.streams.runtime.operator import Record
from tocsin.streams.runtime.state import KeyedState

ASSETS = ["pump-1", "motor-1", "press-1"]


def _cpu(fn) -> float:
    t0 = time.process_time()
    fn()
    return time.process_time() - t0


def _feed(op, recs, muted: bool, batch: int = 64) -> None:
    out = BatchEmitter("dl", "bench")
    out.muted = muted
    for i in range(0, len(recs), batch):
        op.process(recs[i:i + batch], out)
        out.take()


def replay_costs(tmp: Path) -> None:
    from tocsin.streams.plant_ops import FeaturesOperator

    plant = load_plant(None)
    s = load_settings(broker="127.0.0.1:1", topic_prefix="b.", data_dir=tmp, agents="features")
    op = FeaturesOperator(s, plant)
    horizon = op.restore_mode().horizon_s
    frames = list(simulated_frames(600, seed=1, assets=ASSETS))
    recs = [Record("b." + topics.READINGS, 0, i, f.asset.encode(), f.encode(),
                   int(f.ts.max()) // 1_000_000) for i, f in enumerate(frames)]
    last = recs[-1].timestamp_ms
    replay = [r for r in recs if r.timestamp_ms >= last - horizon * 1000]
    live_s, rep_s = [], []
    for _ in range(3):
        op.open(0, KeyedState(0, logged=False))
        live_s.append(_cpu(lambda: _feed(op, replay, muted=False)))
        op.open(0, KeyedState(0, logged=False))
        rep_s.append(_cpu(lambda: _feed(op, replay, muted=True)))
    nbytes = sum(len(r.value) for r in replay)
    print(f"features  replay horizon {horizon:.0f} s: {len(replay)} records, {nbytes / 1e6:.2f} "
          f"MB for {len(ASSETS)} assets; replay CPU {statistics.median(rep_s) * 1e3:.0f} ms "
          f"vs live {statistics.median(live_s) * 1e3:.0f} ms (ratio "
          f"{statistics.median(rep_s) / statistics.median(live_s):.2f}); changelog 0 B/s")


def changelog_costs() -> None:
    from tests.unit.test_fusion_state import fresh, stream
    from tocsin.detectors.fusion_state import dump_asset

    eng, sizes = fresh(), []
    for kind, x in stream(1):
        if kind == "scores":
            eng.on_scores(x, 0)
            sizes.append(len(dump_asset(eng, x.asset)))
        elif kind == "alert":
            eng.on_threshold(x)
    print(f"fusion    changelog per score tick: median {statistics.median(sizes):.0f} B, max "
          f"{max(sizes)} B -> at 1 tick/s per asset {statistics.median(sizes) / 1e3:.1f} kB/s "
          f"per asset (compacted: one record per asset is kept)")
    from tests.unit.test_alarm_board_state import inputs, run

    sent, _ = run(None)
    n = len(inputs())
    state_bytes = sum(len(k) + len(v or b"") for t, k, v in sent if t.endswith("alarm_states"))
    print(f"board     changelog per input record: {state_bytes / n:.0f} B (alarm and point "
          f"records; the same bytes again on plant.alarm_states)")


def main() -> None:
    os.environ.setdefault("TOCSIN_DEV", "1")
    with tempfile.TemporaryDirectory() as tmp:
        replay_costs(Path(tmp))
    changelog_costs()


if __name__ == "__main__":
    main()
