"""The command-line tails on a real broker: a record that does not decode is reported with its
offset, and the records after it are still shown (one bad record never stops a tail)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import orjson

from tests import waiting
from tests.integration.kafka_helpers import produce
from tocsin.connectors import kafka_admin
from tocsin.connectors.simulator.hostile import hostile_variants, refused_by
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert, AlertEvent, Severity
from tocsin.contracts.payments import FraudScore

NS = 1_000_000_000


def _tail(kafka: str, prefix: str, tmp_path, args: list[str], wait_for: list[str],
          timeout: float = 60.0) -> tuple[str, str]:
    """Run a tail command until all of `wait_for` appear on stdout, then Ctrl-C it."""
    out_f, err_f = tmp_path / "tail.out", tmp_path / "tail.err"
    with open(out_f, "w") as out, open(err_f, "w") as err:
        p = subprocess.Popen([sys.executable, "-m", "tocsin.cli", *args, "--broker", kafka,
                              "--prefix", prefix, "--from-beginning"], stdout=out, stderr=err)
        try:
            waiting.wait_for(lambda: p.poll() is not None
                             or all(w in out_f.read_text() for w in wait_for), timeout,
                             f"{wait_for} on the tail's output", seen=out_f.read_text)
        finally:
            p.send_signal(signal.SIGINT)
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    return out_f.read_text(), err_f.read_text()


def test_alerts_tail_reports_a_bad_record_and_goes_on(kafka, prefix, tmp_path):
    t0 = time.time_ns()
    good = [Alert(f"pump-7:a{i}", AlertEvent.RAISED, "pump-7", "threshold", "high", "temp",
                  Severity.CRITICAL, 95.5 + i, 90.0, t0 + i * NS, t0 + i * NS, t0 + i * NS,
                  f"hot number {i}") for i in range(2)]
    hostile = refused_by(Alert.decode, hostile_variants(orjson.loads(good[0].encode())))
    produce(kafka, prefix + topics.ALERTS, [(b"pump-7", good[0].encode()),
                                            (b"pump-7", b'{"schema": "tocsin.alert/1"}')]
            + [(b"pump-7", v) for _, v in hostile] + [(b"pump-7", good[1].encode())])
    out, _ = _tail(kafka, prefix, tmp_path, ["alerts", "tail"], ["hot number 0", "hot number 1"])
    assert "hot number 0" in out and "hot number 1" in out
    flat = out.replace("\n", "")
    assert flat.count("undecodable record at " + prefix + topics.ALERTS) == 1 + len(hostile)


def test_payments_tail_reports_a_bad_record_and_goes_on(kafka, prefix, tmp_path):
    kafka_admin.ensure_topics(kafka, [prefix + t for t in topics.PAYMENTS], 2)
    t0 = time.time_ns()
    scores = [FraudScore(f"TXN-{i}", "tok_ab", "TRM00001", 0.93, "decline", "light", "fraud-x",
                         t0, t0, t0 + 10**6, 1.0, 12, None) for i in range(2)]
    produce(kafka, prefix + topics.PAY_SCORES, [(b"tok_ab", scores[0].encode()),
                                                (b"tok_ab", b"not json"),
                                                (b"tok_ab", scores[1].encode())])
    out, err = _tail(kafka, prefix, tmp_path, ["payments", "tail"], ["TXN-0", "TXN-1"])
    assert "TXN-0" in out and "TXN-1" in out
    assert "undecodable record at " + prefix + topics.PAY_SCORES in err
