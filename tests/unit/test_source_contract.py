"""The Source contract, run over every connector in tocsin.connectors.registry.

For each registered source: its sample config validates; a bad config is refused at set-up
with the bad field named; against a real local peer on 127.0.0.1 (the simulator's asyncua and
pymodbus servers, an ISO 8583 client on a socket and an HTTP POST, a pynetdicom C-STORE, a
DICOM file in a folder, a CSV on disk) it yields well-formed records of its declared type that
survive their wire encoding, and the peer gets its answer; close is idempotent, before and
after start. A new registry entry without a case here fails the first test.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
import yaml

from tocsin.connectors.base import Source
from tocsin.connectors.registry import SOURCES
from tocsin.errors import ConfigError
from tocsin.services.kafka import free_port

pytestmark = pytest.mark.timeout(120)


@dataclass
class Case:
    paths: Callable[[Path], dict]  # overrides that make the sample usable in tmp_path
    bad: tuple[dict, str]  # a bad override and the field the error must name
    peer: Callable  # async context manager (tmp_path) -> (overrides, drive(src) -> answers)
    want: int  # records to take
    check: Callable[[list, Any, Any], None]  # (records, answers, source)


# ---------------------------------------------------------------------------- peers
@asynccontextmanager
async def _opcua_peer(tmp_path):
    from tocsin.connectors.simulator.opcua_server import PlantOpcUaServer

    srv = await PlantOpcUaServer(port=free_port()).start()
    try:
        yield {"endpoint": srv.endpoint, "check_interval_s": 0.5}, None
    finally:
        await srv.stop()


def _check_opcua(frames, _answers, src) -> None:
    configured = {a: set(t) for a, t in src.config.assets.items()}
    assert {f.asset for f in frames} <= set(configured)
    for f in frames:
        assert set(f.tags) <= configured[f.asset] and len(f) > 0


@asynccontextmanager
async def _modbus_peer(tmp_path):
    from tocsin.connectors.modbus import ModbusConfig
    from tocsin.connectors.simulator.modbus_server import PlantModbusServer

    raw = yaml.safe_load(SOURCES["modbus"].sample.read_text())
    dev = dict(raw["devices"][0], port=free_port(), timeout_s=0.5, retries=0)
    cfg = ModbusConfig.model_validate({"devices": [dev]})
    srv = await PlantModbusServer(cfg.devices[0], port=dev["port"]).start()
    try:
        yield {"devices": [dev]}, None
    finally:
        await srv.stop()


def _check_modbus(frames, _answers, src) -> None:
    dev = src.config.devices[0]
    tags = {t.name for g in dev.groups for t in g.tags if t.type != "string"}
    for f in frames:
        assert f.asset == dev.asset and set(f.tags) <= tags
        assert f.quality.tolist() == [0] * len(f)  # the simulator answers every register


@asynccontextmanager
async def _payments_peer(tmp_path):
    import aiohttp

    from tocsin.connectors import iso8583_codec as iso
    from tocsin.connectors.simulator.payswitch_live import IsoClient

    async def drive(src):
        client = IsoClient("127.0.0.1", src.iso_port)
        await client.connect()
        raw = iso.request(pan="4000123412341234", amount_minor=1250, ts_ns=time.time_ns(),
                          stan=7, rrn="000000000007", terminal="T-1", merchant="M-1",
                          mcc=5411, pos_entry_mode="051")
        iso_answer = (await client.send(raw)).get("39")
        await client.close()
        url = f"http://127.0.0.1:{src.http_port}/v1/transactions"
        txn = {"txn_id": "h-1", "ts": time.time_ns(), "card_id": "c-9", "terminal_id": "T-2",
               "amount": 9.5}
        async with aiohttp.ClientSession() as http:
            async with http.post(url, json=txn) as r:
                ok = r.status
            async with http.post(url, json={**txn, "amount": "lots"}) as r:
                bad = (r.status, (await r.json())["field"])
        return iso_answer, ok, bad

    yield {"iso_port": 0, "http_port": 0}, drive


def _check_payments(txns, answers, src) -> None:
    assert answers == ("00", 202, (422, "amount"))
    assert sorted(t.source for t in txns) == ["http", "iso8583"]
    iso_txn = next(t for t in txns if t.source == "iso8583")
    assert iso_txn.amount == 12.5 and iso_txn.mcc == 5411
    assert "4000123412341234" not in iso_txn.encode().decode()  # the PAN is tokenised
    assert src.inbox.rejected == 1 and "amount" in src.inbox.rejects[0][1]


def _payments_csv(tmp_path) -> Path:
    """25 labeled transactions, written out of time order (the source sorts them)."""
    path = tmp_path / "transactions.csv"
    t0 = 1_700_000_000 * 10**9
    rows = ["txn_id,timestamp,card_id,terminal_id,amount,mcc,label"]
    for i in range(25):
        j = (i * 7) % 25  # a permutation of 0..24
        rows.append(f"x-{j},{t0 + j * 61 * 10**9},card-{j % 4},term-{j % 3},{10 + j}.25,"
                    f"5411,{int(j == 13)}")
    path.write_text("\n".join(rows) + "\n")
    return path


@asynccontextmanager
async def _csv_peer(tmp_path):
    yield {"path": str(_payments_csv(tmp_path))}, None


def _check_csv(txns, _answers, _src) -> None:
    assert [t.ts for t in txns] == sorted(t.ts for t in txns)
    assert [t.txn_id for t in txns] == [f"x-{j}" for j in range(25)]
    assert txns[3].amount == 13.25 and txns[3].card_id == "card-3" and txns[3].source == "csv"


@asynccontextmanager
async def _receiver_peer(tmp_path):
    from tocsin.connectors.dicom import sample_files
    from tocsin.connectors.dicom_scp import send_files

    async def drive(src):
        return await asyncio.to_thread(send_files, sample_files(), "127.0.0.1", src.port)

    yield {"port": 0}, drive


def _check_images(images, _answers, _src) -> None:
    assert sorted(i.modality for i in images) == ["CT", "MR"]
    for i in images:
        assert i.rows > 0 and i.cols > 0 and all(s > 0 for s in i.spacing)


def _check_receiver(images, answers, src) -> None:
    _check_images(images, answers, src)
    assert [code for _, code, _ in answers] == [0, 0]  # success only after the hand-over
    assert all(i.source == "cstore" for i in images)


@asynccontextmanager
async def _watch_peer(tmp_path):
    from tocsin.connectors.dicom import sample_files

    folder = tmp_path / "inbox"
    folder.mkdir()
    for f in sample_files():
        shutil.copy(f, folder / f.name)
    (folder / "junk.dcm").write_bytes(b"not dicom at all")
    yield {"folder": str(folder), "interval_s": 0.1, "settle_s": 0}, None


def _check_watch(images, _answers, src) -> None:
    _check_images(images, _answers, src)
    folder = src.config.folder
    deadline = time.monotonic() + 10
    while len(list((folder / "processed").glob("*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert sorted(p.name for p in (folder / "processed").iterdir()) == ["CT_small.dcm",
                                                                       "MR_small.dcm"]
    assert [p.name for p in (folder / "failed").iterdir()] == ["junk.dcm"]
    assert src.inbox.rejected == 1 and "not a readable DICOM file" in src.inbox.rejects[0][1]


def _no_paths(_tmp):
    return {}


CASES: dict[str, Case] = {
    "opcua": Case(_no_paths, ({"endpoint": "http://127.0.0.1:4840"}, "endpoint"),
                  _opcua_peer, 3, _check_opcua),
    "modbus": Case(_no_paths, ({"devices": [{"name": "x", "host": "h", "port": 70000,
                                             "groups": []}]}, "devices.0.port"),
                   _modbus_peer, 3, _check_modbus),
    "payments-feed": Case(_no_paths, ({"http_port": 99999}, "http_port"),
                          _payments_peer, 2, _check_payments),
    "payments-csv": Case(lambda t: {"path": str(_payments_csv(t))},
                         ({"path": "/nonexistent/transactions.csv"}, "path"),
                         _csv_peer, 25, _check_csv),
    "dicom-receiver": Case(_no_paths, ({"ae_title": "A-TITLE-LONGER-THAN-16"}, "ae_title"),
                           _receiver_peer, 2, _check_receiver),
    "dicom-watch": Case(lambda t: {"folder": str(t)}, ({"folder": "/nonexistent"}, "folder"),
                        _watch_peer, 2, _check_watch),
}


def _raw(name: str, tmp_path: Path, **over) -> dict:
    raw = yaml.safe_load(SOURCES[name].sample.read_text())
    raw.update(CASES[name].paths(tmp_path))
    raw.update(over)
    return raw


# ---------------------------------------------------------------------------- the contract
def test_every_registered_source_has_a_contract_case():
    assert set(SOURCES) == set(CASES)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_sample_config_is_valid(name, tmp_path):
    spec = SOURCES[name]
    assert spec.sample.is_file() and spec.sample.parent.name == "data"
    cfg = spec.parse_config(_raw(name, tmp_path))
    assert isinstance(cfg, spec.config_model())
    if not CASES[name].paths(tmp_path):  # a sample without file paths loads as shipped
        assert spec.load_config() == cfg


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_bad_config_is_refused_naming_the_field(name, tmp_path):
    spec = SOURCES[name]
    patch, field = CASES[name].bad
    with pytest.raises(ConfigError) as exc:
        spec.create(_raw(name, tmp_path, **patch))
    assert field in str(exc.value) and spec.config_model().__name__ in str(exc.value)
    bad_file = tmp_path / "bad.yaml"
    bad_file.write_text(yaml.safe_dump({**_raw(name, tmp_path), "no_such_option": 1}))
    with pytest.raises(ConfigError, match=r"(?s)bad\.yaml.*no_such_option"):
        spec.load_config(bad_file)


async def _take(src, n: int, timeout: float = 30.0) -> list:
    it = src.records()
    out = []
    try:
        async with asyncio.timeout(timeout):
            while len(out) < n:
                out.append(await anext(it))
    finally:
        await it.aclose()  # the consumer is done: a push source answers its last peer
    return out


@pytest.fixture(autouse=True)
def _pan_key(monkeypatch):
    """The payments feed refuses to start without a PAN token key outside dev mode (#17)."""
    monkeypatch.setenv("TOCSIN_PAN_TOKEN_KEY", os.urandom(24).hex())


@pytest.mark.parametrize("name", sorted(SOURCES))
async def test_produces_well_formed_records_from_a_real_peer(name, tmp_path):
    spec, case = SOURCES[name], CASES[name]
    async with case.peer(tmp_path) as (over, drive):
        src = spec.create(_raw(name, tmp_path, **over))
        assert isinstance(src, Source) and src.name
        await src.start()
        try:
            driver = asyncio.create_task(drive(src)) if drive else None
            records = await _take(src, case.want)
            answers = await asyncio.wait_for(driver, 30) if driver else None
        finally:
            await src.close()
            await src.close()  # idempotent
        kind = spec.record_type()
        for r in records:
            assert isinstance(r, kind)
            assert kind.decode(r.encode()).encode() == r.encode()  # the wire contract
        case.check(records, answers, src)


@pytest.mark.parametrize("name", sorted(SOURCES))
async def test_close_before_start_is_harmless(name, tmp_path):
    spec = SOURCES[name]
    raw = _raw(name, tmp_path)
    if name == "payments-feed":
        raw.update(iso_port=0, http_port=0)
    src = spec.create(raw)
    await src.close()
    await src.close()


async def test_a_closed_push_source_refuses_its_peers_instead_of_hanging(tmp_path):
    """Nobody consuming: the ISO 8583 peer is answered 96 (retry) when the source closes."""
    from tocsin.connectors import iso8583_codec as iso
    from tocsin.connectors.simulator.payswitch_live import IsoClient

    src = SOURCES["payments-feed"].create({"iso_port": 0, "http_port": None})
    await src.start()
    client = IsoClient("127.0.0.1", src.iso_port)
    await client.connect()
    raw = iso.request(pan="4000123412341234", amount_minor=100, ts_ns=time.time_ns(), stan=1,
                      rrn="1", terminal="T", merchant="M", mcc=5411, pos_entry_mode="051")
    answer = asyncio.create_task(client.send(raw))
    while src.inbox._q.empty():  # the transaction waits in the inbox
        await asyncio.sleep(0.01)
    await src.close()
    assert (await asyncio.wait_for(answer, 10)).get("39") == "96"
    await client.close()


if os.environ.get("TOCSIN_SOURCE_CONTRACT_DEBUG"):  # pragma: no cover
    import logging

    logging.basicConfig(level=logging.DEBUG)
