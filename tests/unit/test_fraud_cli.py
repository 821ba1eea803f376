"""The payments guide's path on a small simulated export: `tocsin train fraud --data` with
--map and time periods, retrained (the registry records what was replaced), then
`tocsin eval fraud` side by side with the random-forest peer and per-transaction scores."""

from __future__ import annotations

import csv

import orjson
from click.testing import CliRunner

from tests.fraud_helpers import tiny_data
from tocsin.cli import main


def test_train_models_eval_from_a_mapped_export(tmp_path):
    sim = tiny_data()
    path = tmp_path / "export.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["TX_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID", "TX_AMOUNT",
                    "TX_FRAUD"])
        for t, f in zip(sim.transactions, sim.fraud):
            w.writerow([t.txn_id, t.ts, t.card_id, t.terminal_id, t.amount, int(f)])
    mapping = ("tx_id=txn_id,tx_datetime=timestamp,customer_id=card_id,tx_amount=amount,"
               "tx_fraud=label")
    out = tmp_path / "fraud"
    args = ["train", "fraud", "--data", str(path), "--map", mapping, "--history-from",
            "2026-01-01", "--train-from", "2026-01-03", "--train-until", "2026-01-09",
            "--valid-until", "2026-01-12", "--max-iter", "30", "--threads", "1", "-o", str(out)]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert "| test | random forest (same features) |" in r.output and "alerts/day" in r.output
    first = orjson.loads((out / "meta.json").read_bytes())
    assert first["periods_ns"]["train"][0] == 1767398400 * 10**9  # 2026-01-03
    r = CliRunner().invoke(main, args + ["--learning-rate", "0.1"])
    assert r.exit_code == 0, r.output
    assert f"replaces {first['version']}" in r.output
    r = CliRunner().invoke(main, ["payments", "models", "--model-dir", str(out)])
    assert r.exit_code == 0 and first["version"] in r.output and r.output.count("| yes |") == 1
    # the deployed line: its validation period and quality, the model it replaced and that
    # model's own validation quality
    line = next(ln for ln in r.output.splitlines() if ln.startswith("| yes |"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    q0 = first["quality"]["validation"]["full"]
    assert cells[4] == "2026-01-09 .. 2026-01-12" and cells[7] == first["version"]
    assert cells[8:] == [f"{q0['roc_auc']:.3f}", f"{q0['avg_precision']:.3f}"]
    old = tmp_path / "fraud.history" / first["version"]
    scores = tmp_path / "scores.csv"
    r = CliRunner().invoke(main, ["eval", "fraud", "--data", str(path), "--map", mapping,
                                  "--model", str(out), "--model", str(old), "--k", "5",
                                  "--scores-out", str(scores), "--known-compromised"])
    assert r.exit_code == 0, r.output
    table = [ln for ln in r.output.splitlines() if ln.startswith("| ")]
    assert len(table) == 1 + 3 and "random_forest" in table[-1]  # header, 2 models, the peer
    rows = list(csv.DictReader(open(scores)))
    assert rows and len(rows[0]) == 2 + 3 and "random_forest" in rows[0]
    assert all(0.0 <= float(v) <= 1.0 for row in rows for k, v in row.items()
               if k not in ("txn_id", "label"))
    test_start = first["periods_ns"]["test"][0]
    ts = {t.txn_id: t.ts for t in sim.transactions}
    assert all(ts[row["txn_id"]] >= test_start for row in rows)
