"""The benchmark reporting convention: medians, ratios to the peer, verdicts, JSON, compare."""

import argparse
import json

from benchmarks.report import Report, compare


def _report() -> Report:
    r = Report("demo", {"rounds": 3, "compare": "x"})
    for i, (b, t) in enumerate([(100, 70), (120, 90), (110, 95)]):
        r.add("bare", sps=b)
        r.add("tocsin", sps=t, p99=5 + i)
    return r


def test_ratio_verdicts_use_medians_of_rounds():
    r = _report()
    r.check("vs bare", "sps", "tocsin", peer="bare", op=">=", target=0.8)
    r.check("p99", "p99", "tocsin", op="<=", target=5.5)
    r.check("info only", "sps", "tocsin", peer="bare")
    lines = r.verdict_lines()
    assert lines[0].startswith("VERDICT PASS demo: vs bare") and "0.82x" in lines[0]
    assert lines[1].startswith("VERDICT FAIL demo: p99")  # median 6 > 5.5
    assert lines[2].startswith("VERDICT INFO")
    assert r.checks[0].value == 90 / 110


def test_missing_contender_is_reported_not_raised():
    r = _report()
    r.check("absent", "sps", "nobody", peer="bare", op=">=", target=1)
    assert r.verdict_lines()[0].startswith("VERDICT MISSING")


def test_json_result_and_compare(tmp_path):
    r = _report()
    r.check("vs bare", "sps", "tocsin", peer="bare", op=">=", target=0.8)
    path = tmp_path / "demo.json"
    r.finish(argparse.Namespace(compare=None, json=path, no_json=False))
    data = json.loads(path.read_text())
    assert data["params"] == {"rounds": 3}  # the reporting options are not parameters
    assert len(data["rounds"]["tocsin"]) == 3 and "load1" in data["rounds"]["tocsin"][0]
    assert data["medians"]["bare"]["sps"] == 110
    assert data["checks"][0]["passed"] is True
    assert len(data["machine"]["loadavg_start"]) == 3 and data["date"]
    old = json.loads(json.dumps(data))
    old["medians"]["tocsin"]["sps"] = 45.0
    old["checks"][0].update(value=0.41, passed=False)
    text = compare(old, data)
    assert "45.0 ->" in text and "+100%" in text and "FAIL -> PASS" in text
