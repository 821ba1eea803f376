"""No record can stop the alarms (issue 14), on the real broker: each consumer gets a mix of
good and hostile records; every good one is processed, every bad one is a dead letter with
its reason, and the consumer goes on."""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from pathlib import Path

import orjson
import pytest
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from tests.integration.kafka_helpers import collect
from tocsin.connectors.simulator.hostile import good_frame, hostile_frames, unknown_asset_frames
from tocsin.contracts import features as fc
from tocsin.contracts import topics
from tocsin.contracts.alerts import Alert
from tocsin.contracts.deadletter import PAYLOAD_LIMIT, DeadLetter
from tocsin.contracts.payments import Transaction
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration
NS = 1_000_000_000
# what each hostile kind's dead letter must say (and at which stage)
EXPECT = {
    "garbage": ("decode", "not valid JSON"), "big_garbage": ("decode", "not valid JSON"),
    "ragged": ("decode", "'ts[0]'"), "unequal_lengths": ("decode", "differ in length"),
    "boolean_value": ("decode", "'value[0]'"), "boolean_ts": ("decode", "'ts[0]'"),
    "huge_seq": ("decode", "'seq'"), "nan_value": ("decode", "not valid JSON"),
    "empty_asset": ("decode", "'asset'"), "control_char_asset": ("decode", "U+0000"),
    "rtl_tag": ("decode", "U+202E"), "future": ("guard", "2 future"),
    "ancient": ("guard", "2 seconds_not_ns"),
}


def allow_big(kafka: str, topic: str) -> Producer:
    """The topic takes 4 MB records (the 2 MB garbage must reach the consumer); a producer
    that may send them."""
    admin = AdminClient({"bootstrap.servers": kafka})
    res = ConfigResource("topic", topic, set_config={"max.message.bytes": str(4 << 20)})
    for fut in admin.alter_configs([res]).values():
        fut.result(30)
    return Producer({"bootstrap.servers": kafka, "message.max.bytes": 4 << 20,
                     "enable.idempotence": True})


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def by_kind(dls, bad: list[tuple[str, bytes]]) -> dict[str, DeadLetter]:
    sha = {hashlib.sha256(v).hexdigest(): k for k, v in bad}
    out = {sha[d.sha256]: d for _, d in dls if d.sha256 in sha}
    assert len(out) == len(dls), "a dead letter that is not one of the hostile records"
    return out


def check_dead_letters(got: dict[str, DeadLetter], source: str) -> None:
    assert set(got) == set(EXPECT), f"missing dead letters: {set(EXPECT) - set(got)}"
    for kind, (stage, words) in EXPECT.items():
        d = got[kind]
        assert d.stage == stage and words in d.error, (kind, d.stage, d.error)
        assert d.source_topic == source and d.partition >= 0 and d.offset >= 0
        assert d.origin_ts > 0
    big = got["big_garbage"]
    assert big.truncated and big.length == 2 << 20 and len(big.raw_payload()) == PAYLOAD_LIMIT


def test_worker_takes_a_hostile_mix_and_every_good_frame_alarms(kafka, prefix, spawn):
    readings = prefix + topics.READINGS
    p = allow_big(kafka, readings)
    w = spawn("worker", name="worker", TOCSIN_AGENTS="thresholds,features")
    w.wait_for("runtime: ready", timeout=90)
    t0 = time.time_ns()
    n_good = 40
    bad = hostile_frames("pump-1", t0, tag="bearing_temp")
    mix = []
    for k in range(n_good):  # good frames every 0.5 s of event time, a hostile one between
        mix.append(good_frame("pump-1", "bearing_temp", k, t0 + k * NS // 2, 95.0, 50.0))
        if 5 <= k < 5 + len(bad):
            mix.append(bad[k - 5][1])
    for value in mix:
        p.produce(readings, value, key=b"pump-1")
    assert p.flush(30) == 0

    def high(items):
        return [a for _, a in items if a.rule == "high"]

    alerts = collect(kafka, prefix + topics.ALERTS, lambda it: len(high(it)) >= n_good,
                     timeout=90, decode=Alert.decode)
    events = [a.event.value for a in sorted(high(alerts), key=lambda a: a.source_ts)]
    assert events == ["raised", "cleared"] * (n_good // 2)  # every good frame, in order
    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= len(bad),
                  timeout=60, decode=DeadLetter.decode)
    check_dead_letters(by_kind(dls, bad), readings)
    # the future frame did not move the watermark: windows of pump-1 go on closing
    late_end = t0 + 15 * NS
    feats = collect(kafka, prefix + topics.FEATURES,
                    lambda it: any(r.asset == "pump-1" and r.end >= late_end for _, r in it),
                    timeout=60, decode=lambda b: fc.decode(b)[0])
    assert any(r.end >= late_end for _, r in feats if r.asset == "pump-1")

    # 5,000 unknown assets x 20 tags: bounded state, a few log lines, the alarms go on
    rss0 = rss_mb(w.p.pid)
    warn0 = w.text().count("WARNING")
    for value in unknown_asset_frames(5000, 20, time.time_ns()):
        p.produce(readings, value, key=b"pump-1")
        p.poll(0)
    t1 = t0 + n_good * NS // 2
    p.produce(readings, good_frame("pump-1", "bearing_temp", 0, t1, 95.0, 50.0), key=b"pump-1")
    assert p.flush(60) == 0
    alerts = collect(kafka, prefix + topics.ALERTS,
                     lambda it: any(a.source_ts == t1 for _, a in it), timeout=90,
                     decode=Alert.decode)
    assert any(a.source_ts == t1 and a.event.value == "raised" for _, a in alerts)
    time.sleep(3)  # the features agent reads the same frames
    grown = rss_mb(w.p.pid) - rss0
    assert grown < 80, f"worker RSS grew {grown:.0f} MB for 5,000 unknown assets"
    assert w.text().count("WARNING") - warn0 <= 6
    assert "Traceback" not in w.text()


def _post(url: str, body: bytes) -> tuple[int, dict]:
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=20) as r:
            return r.status, orjson.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, orjson.loads(exc.read())


def test_http_ingest_refuses_hostile_transactions_with_the_field_named(kafka, prefix, spawn):
    port = free_port()
    ing = spawn("payments", "ingest", "--iso-port", "-1", "--http-port", str(port),
                name="ingest", TOCSIN_PAN_TOKEN_KEY="k")
    ing.wait_for("ingest: ready", timeout=60)
    url = f"http://127.0.0.1:{port}/v1/transactions"
    now = time.time_ns()
    good = {"txn_id": "G1", "ts": now, "card_id": "tok_1", "terminal_id": "TRM1",
            "amount": 10.0}
    hostile = {
        "ts": {"ts": 2**63 - 1}, "ts ": {"ts": 1532476829},  # far future; seconds, not ns
        "card_id": {"card_id": "tok\x00"}, "card_id ": {"card_id": "tok\u202e1"},
        "txn_id": {"txn_id": ""}, "amount": {"amount": True},
    }
    for field, patch in hostile.items():
        code, body = _post(url, orjson.dumps({**good, **patch}))
        assert code == 422 and body["field"] == field.strip(), (field, code, body)
    code, body = _post(url, b'{"txn_id": "' + b"x" * (2 << 20) + b'"}')
    assert code == 413 and "over the limit" in body["error"]
    assert _post(url, orjson.dumps(good)) == (202, {"accepted": 1})

    txns = collect(kafka, prefix + topics.TRANSACTIONS, lambda it: len(it) >= 1, timeout=30,
                   decode=Transaction.decode)
    assert [t.txn_id for _, t in txns] == ["G1"]
    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= len(hostile) + 1,
                  timeout=30, decode=DeadLetter.decode)
    assert len(dls) == len(hostile) + 1
    big = [d for _, d in dls if "over the limit" in d.error]
    assert len(big) == 1 and big[0].source_topic == "ingest.http"
    assert len(big[0].raw_payload()) <= PAYLOAD_LIMIT
    reasons = " ".join(d.error for _, d in dls)
    for words in ("future", "seconds_not_ns", "U+0000", "U+202E", "'txn_id'", "'amount'"):
        assert words in reasons


def _dicom_variant(tag: int, raw: bytes) -> bytes:
    """A real MR file with one DS element replaced by raw bytes as they came off the wire."""
    import io

    import pydicom
    from pydicom.data import get_testdata_file

    ds = pydicom.dcmread(get_testdata_file("MR_small.dcm"))
    ds[tag] = pydicom.dataelem.RawDataElement(tag, "DS", len(raw), raw, 0, False, True)
    out = io.BytesIO()
    ds.save_as(out)
    return out.getvalue()


def test_folder_watcher_moves_unreadable_files_to_failed_and_goes_on(kafka, prefix, tmp_path):
    from pydicom.data import get_testdata_file

    from tocsin.connectors import kafka_admin
    from tocsin.connectors.dicom import ImagePublisher
    from tocsin.connectors.dicom_scp import FolderWatcher
    from tocsin.contracts.imaging import StudyImage

    kafka_admin.ensure_topics(kafka, [prefix + t for t in topics.IMAGING], 2)
    folder = tmp_path / "exports"
    folder.mkdir()
    bad = {"a-single-spacing.dcm": (_dicom_variant(0x00280030, b"0.5 "), "PixelSpacing"),
           "b-bad-ds.dcm": (_dicom_variant(0x00280030, b"abc\\0.5 "), "PixelSpacing"),
           "c-bad-slope.dcm": (_dicom_variant(0x00281053, b"zz"), "RescaleSlope"),
           "d-garbage.dcm": (b"\x00" * 200, "not a readable DICOM file")}
    for name, (data, _) in bad.items():
        (folder / name).write_bytes(data)
    (folder / "z-good.dcm").write_bytes(Path(get_testdata_file("MR_small.dcm")).read_bytes())
    pub = ImagePublisher(kafka, prefix + topics.IMAGING_STUDIES, prefix + topics.DEADLETTER,
                         "dicom-watch")
    assert FolderWatcher(pub, folder, settle_s=0).scan_once() == (1, len(bad))
    assert sorted(p.name for p in (folder / "failed").iterdir()) == sorted(bad)
    assert (folder / "processed" / "z-good.dcm").exists()
    studies = collect(kafka, prefix + topics.IMAGING_STUDIES, lambda it: len(it) >= 1,
                      timeout=30, decode=StudyImage.decode)
    assert [s.modality for _, s in studies] == ["MR"]
    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= len(bad),
                  timeout=30, decode=DeadLetter.decode)
    assert len(dls) == len(bad)
    for name, (data, words) in bad.items():
        [d] = [d for _, d in dls if d.error.startswith(name)]
        assert words in d.error and str(folder / "failed" / name) in d.error
        assert d.sha256 == hashlib.sha256(data).hexdigest() and d.length == len(data)


def test_history_sink_takes_the_hostile_mix(kafka, prefix, spawn, tmp_path):
    from tocsin.connectors.history import History
    from tocsin.services.influx import InfluxServer

    readings = prefix + topics.READINGS
    p = allow_big(kafka, readings)
    t0 = (int(time.time()) - 60) * NS  # inside retention and the rollup window
    bad = hostile_frames("pump-7", t0, tag="temp")
    for k in range(20):
        p.produce(readings, good_frame("pump-7", "temp", k, t0 + k * NS // 10, 95.0, 50.0),
                  key=b"pump-7")
        if k < len(bad):
            p.produce(readings, bad[k][1], key=b"pump-7")
    assert p.flush(30) == 0
    influx = InfluxServer(tmp_path / "influx", port=free_port(), retention_hours=24).start()
    try:
        sink = spawn("sink", "influx", "--influx-url", influx.url, "--influx-token",
                     influx.token, "--flush", "0.2", name="sink")
        dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= len(bad),
                      timeout=90, decode=DeadLetter.decode)
        check_dead_letters(by_kind(dls, bad), readings)
        h = History(influx.url, influx.token, influx.org, influx.bucket)
        deadline, rows = time.monotonic() + 60, []
        while time.monotonic() < deadline and len(rows) < 20:
            rows = h.readings("pump-7", start="-2h")
            time.sleep(0.5)
        # the good samples, and none of the refused future/ancient ones
        assert len(rows) == 20 and sink.p.poll() is None
        assert "Traceback" not in sink.text()
    finally:
        influx.stop()
