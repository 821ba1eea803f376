"""Run the simulated payment switch live: transactions to Kafka directly, to the ISO 8583
listener, or to the HTTP endpoint; labels to ``payments.labels`` when they become known.

Simulated time is rebased so the first transaction is "now" and runs ``speed`` times faster
than the wall clock (speed 1: real time; 3600: an hour of simulated traffic per second).
Event time (``ts``) is the simulated time, so the features see realistic spacing; a label is
sent when the simulated clock passes its ``reported_ts``.
"""

from __future__ import annotations

import asyncio
import os
import struct
import time

from confluent_kafka import Producer

from tocsin.config.kafka_security import client_conf
from tocsin.connectors import iso8583_codec as iso
from tocsin.connectors.simulator.payswitch import PaymentSwitch
from tocsin.contracts.payments import FraudLabel, Transaction

_LEN = struct.Struct(">H")


def pan_of(card_id: str) -> str:
    digits = "".join(c for c in card_id if c.isdigit()) or "0"
    return "4" + digits[-15:].rjust(15, "0")


class IsoClient:
    """A switch-side ISO 8583 client: one request, one response, in order."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    async def connect(self) -> None:
        self.r, self.w = await asyncio.open_connection(self.host, self.port)

    async def send(self, raw: bytes) -> dict:
        import iso8583

        self.w.write(_LEN.pack(len(raw)) + raw)
        await self.w.drain()
        n = _LEN.unpack(await self.r.readexactly(2))[0]
        doc, _ = iso8583.decode(await self.r.readexactly(n), iso.SPEC)
        return doc

    async def close(self) -> None:
        self.w.close()


async def run_live(*, bootstrap: str, txn_topic: str, label_topic: str, via: str = "kafka",
                   target: str = "127.0.0.1:8583", days: int = 7, customers: int = 500,
                   terminals: int = 120, seed: int = 11, speed: float = 3600.0,
                   limit: int | None = None, log=print) -> dict:
    sim = PaymentSwitch(customers=customers, terminals=terminals, seed=seed).generate(days)
    txns, labels = sim.transactions[:limit], sim.labels
    if not txns:
        return {"sent": 0, "labels": 0}
    t0_sim, t0_wall = txns[0].ts, time.time_ns()
    shift = t0_wall - t0_sim
    prod = Producer(client_conf(bootstrap, {"enable.idempotence": True,
                     "linger.ms": 2}))
    client = None
    key = b""  # the ingest's PAN token key, to label ISO transactions with their card token
    if via == "iso":
        from tocsin.connectors.payments_ingest import token_key

        key = token_key()
        host, port = target.rsplit(":", 1)
        client = IsoClient(host, int(port))
        await client.connect()
    http = None
    if via == "http":
        import aiohttp

        # the ingest's bearer token (the token itself, client side), if it wants one
        tok = os.environ.get("TOCSIN_INGEST_TOKEN")
        http = aiohttp.ClientSession(headers={"Authorization": f"Bearer {tok}"} if tok else None)
    li = sent = rejected = labels_sent = 0
    ids = {}
    try:
        for i, t in enumerate(txns):
            due = t0_wall + (t.ts - t0_sim) / speed
            delay = (due - time.time_ns()) / 1e9
            if delay > 0:
                await asyncio.sleep(delay)
            sim_now = t.ts
            while li < len(labels) and labels[li].reported_ts <= sim_now:
                lab = labels[li]
                li += 1
                tid = ids.get(lab.txn_id)
                if tid is None:  # a label for a transaction beyond --limit
                    continue
                lab2 = FraudLabel(tid[0], tid[1], lab.terminal_id, lab.txn_ts + shift,
                                  lab.reported_ts + shift, True, lab.scenario)
                prod.produce(label_topic, lab2.encode(), key=lab.terminal_id.encode())
                labels_sent += 1
            ts = t.ts + shift
            if via == "iso":
                raw = iso.request(pan=pan_of(t.card_id), amount_minor=round(t.amount * 100),
                                  ts_ns=ts, stan=i, rrn=f"{i:012d}", terminal=t.terminal_id,
                                  merchant=t.merchant_id, mcc=t.mcc,
                                  pos_entry_mode=t.pos_entry_mode, currency=t.currency)
                resp = await client.send(raw)
                ok = resp.get("39") == "00"
                ids[t.txn_id] = (f"{t.terminal_id}-{i:012d}-{i % 1_000_000:06d}",
                                 iso.tokenize(pan_of(t.card_id), key))
            else:
                t2 = Transaction(t.txn_id, ts, t.card_id, t.terminal_id, t.amount, t.currency,
                                 t.merchant_id, t.customer_id, t.mcc, t.pos_entry_mode,
                                 time.time_ns(), "sim")
                ids[t.txn_id] = (t.txn_id, t.card_id)
                if via == "http":
                    async with http.post(f"http://{target}/v1/transactions",
                                         data=t2.encode()) as r:
                        ok = r.status == 202
                else:
                    prod.produce(txn_topic, t2.encode(), key=t.card_id.encode())
                    prod.poll(0)
                    ok = True
            sent += ok
            rejected += not ok
            if i % 1000 == 999:
                log(f"sim: {i + 1} transactions, {li} labels, simulated day "
                    f"{(t.ts - t0_sim) / 86400e9:.2f}")
    finally:
        if client:
            await client.close()
        if http:
            await http.close()
        prod.flush(30)
    fraud = int(sim.fraud[:len(txns)].sum())
    return {"sent": sent, "rejected": rejected, "labels": labels_sent, "fraud": fraud}
