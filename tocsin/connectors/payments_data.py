"""Raw transaction data for training and evaluation: a labeled CSV or Parquet file, a Tocsin
recording of the payment topics, or the simulated switch -- all turned into (transactions,
labels) in event time.

A switch's own export rarely uses Tocsin's column names: ``mapping`` (``--map
tx_datetime=timestamp,customer_id=card_id,...``) renames the file's columns first. Parquet
needs pyarrow (``pip install 'tocsin[parquet]'``), imported only for a ``.parquet`` file.

Labeled file columns (header required; names are matched case-insensitively):
``timestamp`` (ISO 8601 or epoch seconds/ms/ns), ``card_id`` or ``customer_id``,
``terminal_id`` or ``merchant_id``, ``amount``, ``label`` (0/1); optional ``txn_id``,
``mcc``, ``pos_entry_mode``, ``currency`` and ``label_ts`` (when the label became known; if
absent, ``label_delay`` after the transaction is assumed). Errors name the line and column.
"""

from __future__ import annotations

import csv
from datetime import datetime, timezone
from pathlib import Path

from tocsin.contracts.payments import FraudLabel, Transaction
from tocsin.errors import DataError, SchemaError

DAY = 86_400 * 10**9


def _ts(text: str, line: int, col: str) -> int:
    t = text.strip()
    if t.isdigit() and len(t) >= 18:  # integer ns: exact (a float would round it)
        return int(t)
    try:
        v = float(t)
    except ValueError:
        try:
            d = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            raise SchemaError(f"line {line}, column '{col}': not a timestamp: {t!r}") from None
        if d.tzinfo is None:
            d = d.replace(tzinfo=timezone.utc)
        return int(d.timestamp() * 1e6) * 1000
    if v > 1e17:
        return int(v)
    if v > 1e11:
        return int(v * 1e6)
    return int(v * 1e9)


def parse_time(text: str, name: str = "time") -> int:
    """An ISO 8601 time (UTC if no zone) or epoch s/ms/ns -> ns; errors name the option."""
    try:
        return _ts(text, 0, name)
    except SchemaError:
        raise DataError(f"{name}: not a time: {text!r} (ISO 8601, e.g. 2026-02-01 or "
                        "2026-02-01T06:00:00Z, or epoch seconds)") from None


def parse_mapping(spec: str | None) -> dict[str, str]:
    """``"a=timestamp,b=card_id"`` -> ``{"a": "timestamp", "b": "card_id"}`` (lower case)."""
    out: dict[str, str] = {}
    for part in (spec or "").split(","):
        if not part.strip():
            continue
        src, eq, dst = part.partition("=")
        if not eq or not src.strip() or not dst.strip():
            raise DataError(f"--map {spec!r}: each item is FILE_COLUMN=TOCSIN_COLUMN, "
                            f"got {part!r}")
        out[src.strip().lower()] = dst.strip().lower()
    return out


def _rows(path: str | Path, mapping: dict[str, str] | None):
    """(column names, iterator of row dicts) with lower-cased, mapped names."""
    mapping = mapping or {}
    path = Path(path)
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise DataError(f"{path}: reading Parquet needs pyarrow: "
                            "pip install 'tocsin[parquet]'") from exc
        table = pq.read_table(path)
        names = [c.lower().strip() for c in table.column_names]
        cols = [table.column(i).to_pylist() for i in range(table.num_columns)]
        rows = ({n: ("" if v is None else _cell(v)) for n, v in zip(names, vals)}
                for vals in zip(*cols))
    else:
        fh = open(path, newline="")
        rd = csv.reader(fh)
        try:
            names = [c.lower().strip() for c in next(rd)]
        except StopIteration:
            raise DataError(f"{path}: empty file (a header row is required)") from None

        def gen():
            with fh:
                for vals in rd:
                    yield dict(zip(names, vals))
        rows = gen()
    missing = sorted(set(mapping) - set(names))
    if missing:
        raise DataError(f"{path}: --map names columns the file does not have: {missing}; "
                        f"columns are {names}")
    if mapping:
        names = [mapping.get(n, n) for n in names]
        rows = ({mapping.get(k, k): v for k, v in r.items()} for r in rows)
    return names, rows


def _cell(v) -> str:
    if isinstance(v, datetime):
        if v.tzinfo is None:
            v = v.replace(tzinfo=timezone.utc)
        return str(int(v.timestamp() * 1e6) * 1000)
    if isinstance(v, bool):
        return "1" if v else "0"
    return str(v)


def _col(path, names, *want: str, required: bool = True) -> str | None:
    for n in want:
        if n in names:
            return n
    if required:
        raise SchemaError(f"{path}: missing column {' or '.join(repr(n) for n in want)}; columns "
                        f"are {names} (rename with --map FILE_COLUMN=NAME)")
    return None


def read_csv(path: str | Path, label_delay_ns: int = 7 * DAY,
             mapping: dict[str, str] | None = None
             ) -> tuple[list[Transaction], list[FraudLabel], list[bool]]:
    """Transactions, labels and ground truth from a labeled CSV or Parquet file."""
    txns, labels, y = [], [], []
    names, rows = _rows(path, mapping)
    c_ts, c_card = _col(path, names, "timestamp", "ts"), _col(path, names, "card_id",
                                                                "customer_id")
    c_term = _col(path, names, "terminal_id", "merchant_id")
    c_amt, c_lab = _col(path, names, "amount"), _col(path, names, "label", "fraud")
    c_id, c_mcc = _col(path, names, "txn_id", required=False), _col(path, names, "mcc",
                                                                    required=False)
    c_pem = _col(path, names, "pos_entry_mode", required=False)
    c_cur = _col(path, names, "currency", required=False)
    c_lts = _col(path, names, "label_ts", "reported_ts", required=False)
    for i, row in enumerate(rows, start=2):
        try:
            amount = float(row[c_amt])
        except (TypeError, ValueError, KeyError):
            raise SchemaError(f"line {i}, column '{c_amt}': not a number: "
                              f"{row.get(c_amt)!r}") from None
        lab = (row.get(c_lab) or "0").strip().lower() in ("1", "1.0", "true", "yes", "fraud")
        try:
            mcc = int(float(row[c_mcc] or 0)) if c_mcc else 0
        except ValueError:
            raise SchemaError(f"line {i}, column '{c_mcc}': not a number: {row[c_mcc]!r}") \
                from None
        t = Transaction(txn_id=row[c_id] if c_id else f"L{i}", ts=_ts(row[c_ts], i, c_ts),
                        card_id=row.get(c_card) or "", terminal_id=row.get(c_term) or "",
                        amount=amount, currency=row[c_cur] if c_cur else "EUR", mcc=mcc,
                        pos_entry_mode=row[c_pem] if c_pem else "", source="csv")
        if not t.card_id or not t.terminal_id:
            raise SchemaError(f"line {i}: empty card or terminal id")
        txns.append(t)
        y.append(lab)
        if lab:
            rep = (_ts(row[c_lts], i, c_lts) if c_lts and row.get(c_lts)
                   else t.ts + label_delay_ns)
            labels.append(FraudLabel(t.txn_id, t.card_id, t.terminal_id, t.ts,
                                     max(rep, t.ts), True))
    order = sorted(range(len(txns)), key=lambda k: txns[k].ts)
    labels.sort(key=lambda x: x.reported_ts)
    return [txns[k] for k in order], labels, [y[k] for k in order]


def read_labels(path: str | Path, mapping: dict[str, str] | None = None) -> list[FraudLabel]:
    """Chargebacks from a CSV/Parquet file: ``txn_id, card_id, terminal_id, txn_ts,
    reported_ts`` (times as for transactions), optional ``fraud`` (default 1) and
    ``scenario``. Each row is validated like a record on ``payments.labels``; errors name the
    line."""
    import orjson

    names, rows = _rows(path, mapping)
    cols = {k: _col(path, names, k) for k in ("txn_id", "card_id", "terminal_id", "txn_ts",
                                               "reported_ts")}
    c_fraud = _col(path, names, "fraud", "label", required=False)
    c_scen = _col(path, names, "scenario", "reason", required=False)
    out = []
    for i, row in enumerate(rows, start=2):
        obj = {"schema": "tocsin.fraud_label/1", "txn_id": row[cols["txn_id"]],
               "card_id": row[cols["card_id"]], "terminal_id": row[cols["terminal_id"]],
               "txn_ts": _ts(row[cols["txn_ts"]], i, cols["txn_ts"]),
               "reported_ts": _ts(row[cols["reported_ts"]], i, cols["reported_ts"]),
               "fraud": (row.get(c_fraud) or "1").strip().lower() in ("1", "1.0", "true",
                                                                      "yes", "fraud"),
               "scenario": row.get(c_scen) or "" if c_scen else ""}
        try:
            lab = FraudLabel.decode(orjson.dumps(obj))
        except SchemaError as exc:
            raise SchemaError(f"{path}, line {i}: {exc}") from None
        if not lab.txn_id or not lab.card_id or not lab.terminal_id:
            raise SchemaError(f"{path}, line {i}: empty txn_id, card_id or terminal_id")
        out.append(lab)
    return out


def write_csv(path: str | Path, txns: list[Transaction], fraud, labels: list[FraudLabel]) -> None:
    reported = {lab.txn_id: lab.reported_ts for lab in labels}
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["txn_id", "timestamp", "card_id", "terminal_id", "amount", "currency", "mcc",
                    "pos_entry_mode", "label", "label_ts"])
        for t, f in zip(txns, fraud):
            w.writerow([t.txn_id, t.ts, t.card_id, t.terminal_id, t.amount, t.currency, t.mcc,
                        t.pos_entry_mode, int(bool(f)), reported.get(t.txn_id, "")])


def read_recording(path: str | Path) -> tuple[list[Transaction], list[FraudLabel], list[bool]]:
    """Transactions and labels recorded from ``*payments.transactions``/``*payments.labels``;
    a transaction is fraud when some label names it."""
    from tocsin.connectors.recording import RecordingReader

    txns, labels = [], []
    with RecordingReader(path) as rd:
        for m in rd:
            if m.value is None:
                continue
            if m.topic.endswith("payments.transactions"):
                txns.append(Transaction.decode(m.value))
            elif m.topic.endswith("payments.labels"):
                labels.append(FraudLabel.decode(m.value))
    fraud_ids = {lab.txn_id for lab in labels if lab.fraud}
    txns.sort(key=lambda t: t.ts)
    labels.sort(key=lambda x: x.reported_ts)
    return txns, labels, [t.txn_id in fraud_ids for t in txns]
