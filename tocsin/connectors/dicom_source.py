"""The DICOM edges as :class:`tocsin.connectors.base.Source` implementations, yielding
:class:`StudyImage` records.

- :class:`DicomReceiverSource`: the C-STORE receiver of :mod:`tocsin.connectors.dicom_scp`
  (same handler: DIMSE status per refusal, "out of resources" when the consumer does not take
  the image), answering each C-STORE once the consumer is done with the image.
- :class:`DicomWatchSource`: the folder watcher; a file moves to ``processed/`` once the
  consumer is done with its image, to ``failed/`` when it is refused.

Both reuse the existing handlers with an inbox-backed publisher in place of the Kafka one
(`tocsin imaging receive|watch` keep theirs). Refusals go to `on_reject(origin, raw, reason)`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from tocsin.connectors.inbox import Inbox
from tocsin.contracts.imaging import StudyImage

log = logging.getLogger(__name__)


class _InboxImagePublisher:
    """ImagePublisher's interface (publish, dead_letter), called from handler threads."""

    def __init__(self, inbox: Inbox[StudyImage], timeout: float):
        self.inbox, self.timeout = inbox, timeout

    def publish(self, img: StudyImage) -> None:
        self.inbox.put_from_thread(img, self.timeout)

    def dead_letter(self, raw: bytes, error: str, key: str, kept_at=None) -> None:
        loop = self.inbox._loop
        if loop is not None and self.inbox.on_reject is not None:
            loop.call_soon_threadsafe(self.inbox.reject, key, raw, error)
        else:
            self.inbox.rejected += 1
            self.inbox.rejects.append((key, error))


class DicomReceiverConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "dicom-receiver"
    host: str = "127.0.0.1"
    port: int = Field(11112, ge=0, lt=65536, description="0: any free port")
    ae_title: str = Field("TOCSIN", min_length=1, max_length=16, pattern=r"^[ -~]+$")
    store_dir: Path | None = Field(None, description="pixels of large images (else inline)")
    queue: int = Field(64, gt=0)
    timeout_s: float = Field(30.0, gt=0, description="wait for the consumer, then refuse")


class DicomReceiverSource:
    def __init__(self, config: DicomReceiverConfig, *, on_reject=None):
        self.config = config
        self.name = f"{config.name}:{config.ae_title}@{config.host}"
        self.inbox: Inbox[StudyImage] = Inbox(self.name, config.queue, on_reject=on_reject)
        self.receiver: Any = None  # dicom_scp.StoreReceiver once started

    @property
    def port(self) -> int:
        return self.receiver.port if self.receiver else self.config.port

    async def start(self) -> None:
        from tocsin.connectors.dicom_scp import StoreReceiver

        c = self.config
        self.inbox.bind()
        pub: Any = _InboxImagePublisher(self.inbox, c.timeout_s)  # duck-types ImagePublisher
        rx = StoreReceiver(pub, c.host, c.port, c.ae_title, store_dir=c.store_dir)
        await asyncio.to_thread(rx.start)  # raises ConnectorError naming host:port
        self.receiver = rx

    def records(self) -> AsyncIterator[StudyImage]:
        return self.inbox.records()

    async def close(self) -> None:
        self.inbox.close()
        if self.receiver is not None:
            rx, self.receiver = self.receiver, None
            await asyncio.to_thread(rx.stop)


class DicomWatchConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = "dicom-watch"
    folder: Path
    interval_s: float = Field(1.0, gt=0, description="seconds between scans")
    settle_s: float = Field(1.0, ge=0, description="a file must be this old (exports in "
                                                   "pieces)")
    store_dir: Path | None = None
    queue: int = Field(64, gt=0)
    timeout_s: float = Field(30.0, gt=0)

    @field_validator("folder")
    @classmethod
    def _is_dir(cls, v: Path) -> Path:
        if not Path(v).is_dir():
            raise ValueError(f"no such folder {str(v)!r}")
        return v


class DicomWatchSource:
    def __init__(self, config: DicomWatchConfig, *, on_reject=None):
        self.config = config
        self.name = f"{config.name}:{config.folder}"
        self.inbox: Inbox[StudyImage] = Inbox(self.name, config.queue, on_reject=on_reject)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        from tocsin.connectors.dicom_scp import FolderWatcher

        c = self.config
        self.inbox.bind()
        pub: Any = _InboxImagePublisher(self.inbox, c.timeout_s)
        watcher = FolderWatcher(pub, c.folder, store_dir=c.store_dir, settle_s=c.settle_s)
        self._task = asyncio.create_task(self._scan(watcher), name=self.name)

    async def _scan(self, watcher) -> None:
        while not self.inbox.closed:
            try:
                await asyncio.to_thread(watcher.scan_once)
            except Exception as exc:  # consumer gone or a file vanished: next scan retries
                if not self.inbox.closed:
                    log.warning("%s: scan stopped early: %s", self.name, exc)
            await asyncio.sleep(self.config.interval_s)

    def records(self) -> AsyncIterator[StudyImage]:
        return self.inbox.records()

    async def close(self) -> None:
        self.inbox.close()
        if self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
