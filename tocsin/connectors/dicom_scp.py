"""The DICOM edges as running services: a C-STORE receiver (storage SCP), a folder watcher
and a small C-STORE sender (SCU) for demos and tests. pynetdicom runs the DIMSE protocol;
each received image goes through `dataset_to_image` and `ImagePublisher`."""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from tocsin.connectors.dicom import DicomRejected, ImagePublisher, dataset_to_image
from tocsin.errors import ConnectorError, TocsinError

log = logging.getLogger(__name__)

OUT_OF_RESOURCES = 0xA700
CANNOT_UNDERSTAND = 0xC210


def _status(code: int, comment: str):
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Status = code
    ds.ErrorComment = comment[:64]  # LO: 64 characters at most
    return ds


class StoreReceiver:
    """Storage SCP: accepts every storage SOP class (so refusals carry a reason instead of
    an association rejection), and answers each C-STORE after Kafka acknowledged."""

    def __init__(self, publisher: ImagePublisher, host: str = "127.0.0.1", port: int = 11112,
                 ae_title: str = "TOCSIN", store_dir: Path | None = None):
        self.publisher, self.host, self.port, self.ae_title = publisher, host, port, ae_title
        self.store_dir = store_dir
        self.server = None
        self.received = self.rejected = 0

    def handle_store(self, event):
        calling = event.assoc.requestor.ae_title
        calling = calling.decode().strip() if isinstance(calling, bytes) else str(calling).strip()
        now = time.time_ns()
        try:
            raw = event.encoded_dataset()
        except Exception:  # keep what we can for the dead letter
            raw = bytes(event.request.DataSet.getvalue())
        try:
            ds = event.dataset
            ds.file_meta = event.file_meta
            img = dataset_to_image(ds, source="cstore", sender=calling,
                                   store_dir=self.store_dir, received_ts=now)
        except DicomRejected as exc:
            return self._reject(raw, str(exc), exc.status, calling)
        except Exception as exc:  # pydicom could not even parse the data set
            return self._reject(raw, f"data set cannot be decoded: {type(exc).__name__}: {exc}",
                                CANNOT_UNDERSTAND, calling)
        try:
            self.publisher.publish(img)
        except TocsinError as exc:
            log.error("C-STORE from %s not stored: %s", calling, exc)
            return _status(OUT_OF_RESOURCES, "Kafka unavailable; retry later")
        self.received += 1
        log.info("C-STORE from %s: %s %s stored (study %s)", calling, img.modality,
                 img.sop_uid, img.study_uid)
        return 0x0000

    def _reject(self, raw: bytes, reason: str, status: int, calling: str):
        self.rejected += 1
        log.warning("C-STORE from %s refused (0x%04X): %s", calling, status, reason)
        try:
            self.publisher.dead_letter(raw, reason, f"cstore:{calling}")
        except TocsinError as exc:
            log.error("could not dead-letter the refused image: %s", exc)
            return _status(OUT_OF_RESOURCES, "Kafka unavailable; retry later")
        return _status(status, reason)

    def start(self) -> None:
        from pynetdicom import AE, AllStoragePresentationContexts, evt
        from pynetdicom.sop_class import Verification

        ae = AE(ae_title=self.ae_title)
        for cx in AllStoragePresentationContexts:
            ae.add_supported_context(cx.abstract_syntax)
        ae.add_supported_context(Verification)
        try:
            self.server = ae.start_server((self.host, self.port), block=False,
                                          evt_handlers=[(evt.EVT_C_STORE, self.handle_store)])
        except OSError as exc:
            raise ConnectorError(f"DICOM receiver cannot listen on {self.host}:{self.port}: "
                                 f"{exc}") from exc
        self.port = self.server.server_address[1]
        log.info("imaging receiver: listening as %s on %s:%d", self.ae_title, self.host,
                 self.port)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server = None


class FolderWatcher:
    """Polls a folder for DICOM exports; each file is published (then moved to
    `processed/`) or dead-lettered (then moved to `failed/`), so a restart never re-sends."""

    def __init__(self, publisher: ImagePublisher, folder: Path, store_dir: Path | None = None,
                 settle_s: float = 1.0):
        self.publisher, self.folder, self.store_dir = publisher, Path(folder), store_dir
        self.settle_s = settle_s  # a file must be this old: exporters write in pieces
        self.done, self.failed = self.folder / "processed", self.folder / "failed"

    def scan_once(self) -> tuple[int, int]:
        import pydicom

        ok = bad = 0
        now = time.time()
        for path in sorted(p for p in self.folder.iterdir() if p.is_file()):
            if path.name.startswith(".") or now - path.stat().st_mtime < self.settle_s:
                continue
            raw = b""
            try:  # any failure on one file moves it to failed/ with a dead letter
                try:
                    raw = path.read_bytes()
                    ds = pydicom.dcmread(path)
                except Exception as exc:
                    raise DicomRejected(f"not a readable DICOM file: {type(exc).__name__}: "
                                        f"{exc}") from exc
                img = dataset_to_image(ds, source="watch", sender=str(path),
                                       store_dir=self.store_dir)
            except Exception as exc:
                why = str(exc) if isinstance(exc, DicomRejected) else \
                    f"cannot be read: {type(exc).__name__}: {exc}"
                # dead letter first (Kafka down: the file stays and is retried), then the move
                self.publisher.dead_letter(raw, f"{path.name}: {why}", f"watch:{path}",
                                           kept_at=self.failed / path.name)
                self._move(path, self.failed)
                log.warning("watch: %s moved to %s: %s", path.name, self.failed, why)
                bad += 1
                continue
            self.publisher.publish(img)
            self._move(path, self.done)
            log.info("watch: %s %s published (study %s)", path.name, img.modality, img.study_uid)
            ok += 1
        return ok, bad

    @staticmethod
    def _move(path: Path, to: Path) -> None:
        to.mkdir(exist_ok=True)
        shutil.move(str(path), to / path.name)


def send_files(paths: list[Path], host: str, port: int, called: str = "TOCSIN",
               calling: str = "TOCSIN-SCU") -> list[tuple[Path, int, str]]:
    """C-STORE each file; returns (path, status, comment) per file."""
    import pydicom
    from pynetdicom import AE

    datasets = [(p, pydicom.dcmread(p)) for p in paths]
    ae = AE(ae_title=calling)
    for _, ds in datasets:
        ae.add_requested_context(ds.SOPClassUID, ds.file_meta.TransferSyntaxUID)
    assoc = ae.associate(host, port, ae_title=called)
    if not assoc.is_established:
        raise ConnectorError(f"no DICOM association with {called}@{host}:{port}")
    out = []
    try:
        for p, ds in datasets:
            st = assoc.send_c_store(ds)
            code = int(st.Status) if "Status" in st else -1
            out.append((p, code, str(st.get("ErrorComment", ""))))
    finally:
        assoc.release()
    return out
