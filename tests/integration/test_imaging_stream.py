"""Imaging end to end on the real broker: DICOM C-STORE -> receiver -> imaging.studies ->
imaging worker -> imaging.findings; refusals and bad messages -> tocsin.deadletter, and the
stream goes on. The folder watcher publishes good files and dead-letters bad ones."""

from __future__ import annotations

import orjson
import pydicom
import pytest
from pydicom.data import get_testdata_file

from tests.imaging_helpers import corrupt_ct, tiny_model
from tests.integration.kafka_helpers import collect, produce
from tocsin.connectors import kafka_admin
from tocsin.connectors.dicom import ImagePublisher, dataset_to_image
from tocsin.connectors.dicom_scp import FolderWatcher, send_files
from tocsin.connectors.simulator.hostile import hostile_variants, refused_by
from tocsin.contracts import topics
from tocsin.contracts.deadletter import DeadLetter
from tocsin.contracts.imaging import Finding, StudyImage
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.integration
pytest.importorskip("torch")  # the session trains its tiny model


@pytest.fixture
def imaging_topics(kafka, prefix):
    kafka_admin.ensure_topics(kafka, [prefix + t for t in topics.IMAGING], 2)
    return prefix


def test_cstore_to_finding_and_bad_input_to_deadletter(kafka, imaging_topics, spawn, tmp_path):
    prefix = imaging_topics
    model = tiny_model()
    port = free_port()
    rx = spawn("imaging", "receive", "--port", str(port), name="receiver")
    worker = spawn("imaging", "worker", name="imaging-worker",
                   TOCSIN_IMAGING_MODEL_DIR=str(model), TOCSIN_IMAGING_MAX_WAIT_MS="50")
    rx.wait_for("listening", timeout=60)
    worker.wait_for("[^Worker]: Ready", timeout=120)

    # 1. a real CT file by C-STORE ends as a finding
    ct = pydicom.dcmread(get_testdata_file("CT_small.dcm"))
    [(_, status, _)] = send_files([get_testdata_file("CT_small.dcm")], "127.0.0.1", port)
    assert status == 0x0000

    # 2. undecodable pixel data: a DIMSE failure to the sender, pydicom's error dead-lettered
    bad = tmp_path / "bad.dcm"
    corrupt_ct().save_as(bad, enforce_file_format=True)
    [(_, status, comment)] = send_files([bad], "127.0.0.1", port)
    assert status == 0xC210 and "pixel data cannot be decoded" in comment

    # 3. on the topic itself: not JSON, and a well-formed image of an unsupported modality
    img = dataset_to_image(ct, source="test", sender="test")
    us = orjson.loads(img.encode())
    us["modality"], us["sop_uid"] = "US", "1.2.3.us"
    # and hostile variants of a valid image (issue 14): each a dead letter, none a crash
    hostile = refused_by(StudyImage.decode, hostile_variants(orjson.loads(img.encode())))
    produce(kafka, prefix + topics.IMAGING_STUDIES,
            [(b"k", b"{not json"), (b"k", orjson.dumps(us))] + [(b"k", v) for _, v in hostile])

    # 4. the stream goes on: MR after the bad ones still becomes a finding
    [(_, status, _)] = send_files([get_testdata_file("MR_small.dcm")], "127.0.0.1", port)
    assert status == 0x0000

    found = collect(kafka, prefix + topics.IMAGING_FINDINGS, lambda it: len(it) >= 2,
                    timeout=90, decode=Finding.decode)
    by_sop = {f.sop_uid: f for _, f in found}
    assert set(by_sop) == {ct.SOPInstanceUID,
                           pydicom.dcmread(get_testdata_file("MR_small.dcm")).SOPInstanceUID}
    f = by_sop[ct.SOPInstanceUID]
    assert (f.study_uid, f.modality, f.vendor) == (ct.StudyInstanceUID, "CT", "GE MEDICAL SYSTEMS")
    assert f.model["name"] == "student-int8" and f.model["branch"] == "ct"
    assert f.roi["rows"] > 0 and 0.0 <= f.probability <= 1.0
    assert f.latency_ms["end_to_end"] > 0

    dls = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= 3 + len(hostile),
                  timeout=60, decode=DeadLetter.decode)
    bad = {v for _, v in hostile}
    assert sorted(d.raw_payload() for _, d in dls if d.raw_payload() in bad) == sorted(bad)
    dls = [(k, d) for k, d in dls if d.raw_payload() not in bad]
    errors = sorted((d.stage, d.error) for _, d in dls)
    assert len(errors) == 3, errors
    assert all(d.source_topic == prefix + topics.IMAGING_STUDIES for _, d in dls)
    refused = [d for _, d in dls if d.worker == "dicom-receiver"]
    assert len(refused) == 1 and "16384 vs 32768 bytes" in refused[0].error
    # the refused original is kept whole: it reads back as the DICOM that was sent
    assert refused[0].raw_payload()[128:132] == b"DICM"
    assert any(s == "decode" and "not valid JSON" in e for s, e in errors)
    assert any(s == "process" and "modality 'US' is not supported" in e for s, e in errors)


def test_folder_watcher_publishes_and_dead_letters(kafka, imaging_topics, tmp_path):
    prefix = imaging_topics
    folder = tmp_path / "exports"
    folder.mkdir()
    (folder / "mr.dcm").write_bytes(open(get_testdata_file("MR_small.dcm"), "rb").read())
    (folder / "garbage.dcm").write_bytes(b"this is not DICOM" * 10)
    pub = ImagePublisher(kafka, prefix + topics.IMAGING_STUDIES, prefix + topics.DEADLETTER,
                         "dicom-watch")
    assert FolderWatcher(pub, folder, settle_s=0).scan_once() == (1, 1)
    assert (folder / "processed" / "mr.dcm").exists()
    assert (folder / "failed" / "garbage.dcm").exists()
    studies = collect(kafka, prefix + topics.IMAGING_STUDIES, lambda it: len(it) >= 1,
                      timeout=30, decode=StudyImage.decode)
    assert [s.modality for _, s in studies] == ["MR"] and studies[0][1].source == "watch"
    [(_, dl)] = collect(kafka, prefix + topics.DEADLETTER, lambda it: len(it) >= 1, timeout=30,
                        decode=DeadLetter.decode)
    assert "garbage.dcm: not a readable DICOM file" in dl.error
    assert dl.raw_payload() == b"this is not DICOM" * 10
    # a second scan finds nothing new: files are moved, never re-sent
    assert FolderWatcher(pub, folder, settle_s=0).scan_once() == (0, 0)
