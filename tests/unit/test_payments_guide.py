"""The payments guide's commands run: the `tocsin` lines of the block marked
``guide-commands`` in docs/payments.md (simulated switch export with its own column names ->
train by time with --map -> registry -> eval fraud side by side, both protocols), on a small
file: only sizes, dates and the number of trees are scaled down, the rest is the guide's text."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import orjson
from click.testing import CliRunner

from tocsin.cli import main

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "payments.md"
SMALL = {"--days 56 --customers 600 --terminals 150": "--days 16 --customers 150 --terminals 40",
         "--train-from 2026-01-15": "--train-from 2026-01-04",
         "--train-until 2026-02-05": "--train-until 2026-01-10",
         "--valid-until 2026-02-12": "--valid-until 2026-01-13",
         "--from 2026-02-12": "--from 2026-01-13"}


def guide_commands() -> list[str]:
    text = GUIDE.read_text()
    block = re.search(r"<!-- guide-commands.*?-->\n```bash\n(.*?)```", text, re.S)
    assert block, "docs/payments.md lost its guide-commands block"
    return [ln for ln in block.group(1).splitlines() if ln.startswith("tocsin ")]


def test_the_guide_runs_from_a_switch_export_to_an_evaluated_model(tmp_path, monkeypatch):
    cmds = guide_commands()
    assert [c.split()[1:3] for c in cmds] == [["payments", "simulate"], ["train", "fraud"],
                                               ["payments", "models"], ["eval", "fraud"]]
    monkeypatch.chdir(tmp_path)
    outputs = []
    for cmd in cmds:
        for big, small in SMALL.items():
            cmd = cmd.replace(big, small)
        args = shlex.split(cmd)[1:]
        if args[:2] == ["train", "fraud"]:
            args += ["--max-iter", "40", "--threads", "1"]
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, f"{cmd}\n{r.output}"
        outputs.append(r.output)
    header = (tmp_path / "export.csv").read_text().splitlines()[0]
    assert header.startswith("TX_ID,TX_DATETIME,CUSTOMER_ID")  # not Tocsin's own names
    meta = orjson.loads((tmp_path / "models" / "fraud" / "meta.json").read_bytes())
    assert meta["periods_ns"]["train"][0] == 1767484800 * 10**9  # 2026-01-04
    assert meta["version"] in outputs[2] and "| yes |" in outputs[2]
    quality = (tmp_path / "quality.md").read_text()
    assert "known-compromised cards left out" in quality
    for name in ("fraud (gbdt", "random_forest ", "random_forest+sequence"):
        assert quality.count(f"| {name}") == 2, name  # one row in each protocol's table
    assert (tmp_path / "scores.csv").read_text().startswith("txn_id,label,")
