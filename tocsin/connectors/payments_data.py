"""Raw transaction data for training: a labeled CSV, a Tocsin recording of the payment
topics, or the simulated switch -- all turned into (transactions, labels) in event time.

Labeled CSV columns (header required; names are matched case-insensitively):
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
from tocsin.errors import SchemaError

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


def read_csv(path: str | Path, label_delay_ns: int = 7 * DAY
             ) -> tuple[list[Transaction], list[FraudLabel], list[bool]]:
    txns, labels, y = [], [], []
    with open(path, newline="") as fh:
        rd = csv.DictReader(fh)
        cols = {c.lower().strip(): c for c in (rd.fieldnames or [])}

        def col(*names: str, required: bool = True) -> str | None:
            for n in names:
                if n in cols:
                    return cols[n]
            if required:
                raise SchemaError(f"{path}: missing column {' or '.join(repr(n) for n in names)}"
                                  f"; columns are {list(cols)}")
            return None

        c_ts, c_card = col("timestamp", "ts"), col("card_id", "customer_id")
        c_term, c_amt = col("terminal_id", "merchant_id"), col("amount")
        c_lab = col("label", "fraud")
        c_id, c_mcc = col("txn_id", required=False), col("mcc", required=False)
        c_pem, c_cur = col("pos_entry_mode", required=False), col("currency", required=False)
        c_lts = col("label_ts", "reported_ts", required=False)
        for i, row in enumerate(rd, start=2):
            try:
                amount = float(row[c_amt])
            except (TypeError, ValueError):
                raise SchemaError(f"line {i}, column '{c_amt}': not a number: "
                                  f"{row[c_amt]!r}") from None
            lab = (row[c_lab] or "0").strip().lower() in ("1", "true", "yes", "fraud")
            t = Transaction(txn_id=row[c_id] if c_id else f"L{i}", ts=_ts(row[c_ts], i, c_ts),
                            card_id=row[c_card], terminal_id=row[c_term], amount=amount,
                            currency=row[c_cur] if c_cur else "EUR",
                            mcc=int(row[c_mcc] or 0) if c_mcc else 0,
                            pos_entry_mode=row[c_pem] if c_pem else "", source="csv")
            if not t.card_id or not t.terminal_id:
                raise SchemaError(f"line {i}: empty card or terminal id")
            txns.append(t)
            y.append(lab)
            if lab:
                rep = (_ts(row[c_lts], i, c_lts) if c_lts and row[c_lts]
                       else t.ts + label_delay_ns)
                labels.append(FraudLabel(t.txn_id, t.card_id, t.terminal_id, t.ts,
                                         max(rep, t.ts), True))
    order = sorted(range(len(txns)), key=lambda k: txns[k].ts)
    labels.sort(key=lambda x: x.reported_ts)
    return [txns[k] for k in order], labels, [y[k] for k in order]


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
