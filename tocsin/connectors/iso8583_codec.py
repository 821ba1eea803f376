"""ISO 8583 (1987, ASCII) authorisation messages <-> Transaction, with pyiso8583.

Framing on TCP: a 2-byte big-endian length, then the message (the common convention of
switches; the header-less ASCII spec ``iso8583.specs.default_ascii``). Data elements mapped:

====  ==============================  =====================================================
DE2   primary account number          tokenized (keyed BLAKE2b) -> ``card_id``; never stored
DE3   processing code                 checked: 6 digits
DE4   amount, transaction (n12)       minor units -> ``amount`` (2 decimals)
DE7   transmission date/time (UTC)    MMDDhhmmss -> ``ts`` (year: the one nearest to now)
DE11  system trace audit number       part of ``txn_id``
DE18  merchant type                   ``mcc``
DE22  POS entry mode                  ``pos_entry_mode``
DE37  retrieval reference number      ``txn_id`` = DE41 + DE37 + DE11
DE41  card acceptor terminal id       ``terminal_id``
DE42  card acceptor id code           ``merchant_id``
DE49  currency code, transaction      ``currency`` (numeric ISO 4217)
====  ==============================  =====================================================

Responses (0110/0210/...): DE39 ``00`` when accepted for scoring, ``30`` (format error) with
DE44 naming the data element at fault (the feed taps the switch; it does not authorise).
"""

from __future__ import annotations

from datetime import datetime, timezone

import iso8583
from iso8583.specs import default_ascii as SPEC

from tocsin.contracts.pan import tokenize
from tocsin.contracts.payments import Transaction
from tocsin.errors import SchemaError

REQUEST_TYPES = {"0100", "0200", "0120", "0220"}
REQUIRED = ("2", "4", "7", "11", "41")


class IsoFieldError(SchemaError):
    def __init__(self, field: str, msg: str):
        super().__init__(f"iso8583: DE{field}: {msg}" if field.isdigit() else f"iso8583: {msg}")
        self.field = field


def _ts(mmddhhmmss: str, now: datetime) -> int:
    best = None
    for year in (now.year - 1, now.year, now.year + 1):
        try:
            d = datetime.strptime(f"{year}{mmddhhmmss}", "%Y%m%d%H%M%S").replace(
                tzinfo=timezone.utc)
        except ValueError:
            continue
        if best is None or abs(d - now) < abs(best - now):
            best = d
    if best is None:
        raise IsoFieldError("7", f"not a date and time MMDDhhmmss: {mmddhhmmss!r}")
    return int(best.timestamp()) * 10**9


def decode(raw: bytes, token_key: bytes, now_ns: int) -> tuple[Transaction, dict]:
    """One message (without the length prefix) -> Transaction; errors name the element."""
    try:
        doc, _ = iso8583.decode(raw, SPEC)
    except iso8583.DecodeError as exc:
        raise IsoFieldError(str(exc.field), exc.msg) from None
    mti = doc.get("t", "")
    if mti not in REQUEST_TYPES:
        raise IsoFieldError("t", f"message type {mti!r} is not an authorisation or financial "
                                 f"request ({', '.join(sorted(REQUEST_TYPES))})")
    for f in REQUIRED:
        if not doc.get(f, "").strip():
            raise IsoFieldError(f, "missing")
    pan = doc["2"]
    if not pan.isdigit() or not 12 <= len(pan) <= 19:
        raise IsoFieldError("2", "PAN must be 12-19 digits")
    if "3" in doc and not (doc["3"].isdigit() and len(doc["3"]) == 6):
        raise IsoFieldError("3", "processing code must be 6 digits")
    if not doc["4"].isdigit():
        raise IsoFieldError("4", f"amount must be digits (minor units), got {doc['4']!r}")
    mcc = doc.get("18", "0") or "0"
    if not mcc.isdigit():
        raise IsoFieldError("18", f"merchant type must be 4 digits, got {mcc!r}")
    cur = doc.get("49", "978")
    if not cur.isdigit():
        raise IsoFieldError("49", f"currency must be a numeric ISO 4217 code, got {cur!r}")
    now = datetime.fromtimestamp(now_ns / 1e9, timezone.utc)
    term = doc["41"].strip()
    txn = Transaction(
        txn_id=f"{term}-{doc.get('37', '').strip()}-{doc['11']}", ts=_ts(doc["7"], now),
        card_id=tokenize(pan, token_key), terminal_id=term, amount=int(doc["4"]) / 100.0,
        currency=cur, merchant_id=doc.get("42", "").strip(), mcc=int(mcc),
        pos_entry_mode=doc.get("22", ""), ingest_ts=now_ns, source="iso8583")
    return txn, doc


def response(doc: dict | None, code: str, field: str | None = None) -> bytes:
    """The response to a request: MTI + 10, echoing the keys, DE39 = code, DE44 = field."""
    doc = doc or {}
    mti = doc.get("t", "0200")
    rt = mti[:2] + str(int(mti[2]) + 1) + mti[3] if mti[:1].isdigit() and len(mti) == 4 \
        and mti[2].isdigit() and int(mti[2]) % 2 == 0 else "0210"
    out = {"t": rt, "39": code}
    for f in ("2", "3", "4", "7", "11", "37", "41", "42", "49"):
        v = doc.get(f)
        if isinstance(v, str) and v:
            out[f] = v
    if field:
        out["44"] = f"DE{field}"[:25] if field.isdigit() else field[:25]
    try:
        raw, _ = iso8583.encode(out, SPEC)
    except iso8583.EncodeError:  # an echoed element was itself malformed: answer minimal
        raw, _ = iso8583.encode({"t": rt, "39": code,
                                 **({"44": out["44"]} if "44" in out else {})}, SPEC)
    return bytes(raw)


def request(*, pan: str, amount_minor: int, ts_ns: int, stan: int, rrn: str, terminal: str,
            merchant: str, mcc: int, pos_entry_mode: str, currency: str = "978",
            mti: str = "0200") -> bytes:
    """An authorisation/financial request as a switch would send it (simulator, tests)."""
    d = datetime.fromtimestamp(ts_ns / 1e9, timezone.utc)
    doc = {"t": mti, "2": pan, "3": "000000", "4": f"{amount_minor:012d}",
           "7": d.strftime("%m%d%H%M%S"), "11": f"{stan % 1_000_000:06d}",
           "12": d.strftime("%H%M%S"), "13": d.strftime("%m%d"), "18": f"{mcc:04d}",
           "22": pos_entry_mode[:3].ljust(3, "0"), "37": rrn[:12].rjust(12, "0"),
           "41": terminal[:8].ljust(8), "42": merchant[:15].ljust(15), "49": currency}
    raw, _ = iso8583.encode(doc, SPEC)
    return bytes(raw)
