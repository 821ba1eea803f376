"""Where a transaction's time goes, read from a librdkafka producer's debug log.

Run a transactional client with ``debug=eos,protocol`` (the runner:
``python -m benchmarks.runner_profile commits --producer debug=eos,protocol 2> eos.log``),
then ``python -m benchmarks.txn_phases eos.log``. Per transaction (begin_transaction to the
return of commit_transaction), from the log's timestamps (1 ms resolution):

  produce        begin_transaction -> send_offsets_to_transaction called (the app's produce calls)
  send_offsets   AddOffsetsToTxn + TxnOffsetCommit, retries included
  flush          commit_transaction's flush: AddPartitionsToTxn and the produce requests
  endtxn         flush complete -> commit_transaction returns (EndTxn)

and the CONCURRENT_TRANSACTIONS answers (the previous commit's markers not yet written) met by
AddOffsetsToTxn (retried after retry.backoff.ms) and AddPartitionsToTxn (retried after a fixed
20 ms in librdkafka).
"""

from __future__ import annotations

import re
import sys

import numpy as np

_TS = re.compile(r"%\d\|(\d+\.\d+)\|")


def phases(lines) -> tuple[dict[str, list[float]], int, int]:
    rows: list[dict] = []
    cur: dict | None = None
    offsets_busy = parts_busy = 0
    for line in lines:
        m = _TS.match(line)
        if not m:
            continue
        t = float(m.group(1)) * 1e3
        if "called: begin_transaction" in line:
            cur = {"b": t}
        elif "AddOffsetsToTxn response" in line and "CONCURRENT_TRANSACTIONS" in line:
            offsets_busy += 1
        elif "AddPartitionsToTxn response" in line and "concurrent" in line.lower():
            parts_busy += 1
        if cur is None:
            continue
        if "called: send_offsets_to_transaction" in line:
            cur["so"] = t
        elif "send_offsets_to_transaction return" in line:
            cur["soe"] = t
        elif "called: commit_transaction" in line:
            cur["c"] = t
        elif "commit message flush complete" in line:
            cur["fl"] = t
        elif "commit_transaction return" in line:
            cur["e"] = t
            rows.append(cur)
            cur = None
    out: dict[str, list[float]] = {"produce": [], "send_offsets": [], "flush": [],
                                   "endtxn": [], "total": []}
    for r in rows:
        if "so" in r and "soe" in r:
            out["produce"].append(r["so"] - r["b"])
            out["send_offsets"].append(r["soe"] - r["so"])
        if "c" in r and "fl" in r:
            out["flush"].append(r["fl"] - r["c"])
            out["endtxn"].append(r["e"] - r["fl"])
        out["total"].append(r["e"] - r["b"])
    return out, offsets_busy, parts_busy


def main() -> None:
    path = sys.argv[1] if len(sys.argv) > 1 else "-"
    f = sys.stdin if path == "-" else open(path, errors="replace")
    with f:
        out, offsets_busy, parts_busy = phases(f)
    n = len(out["total"])
    print(f"{n} transactions; CONCURRENT_TRANSACTIONS met by AddOffsetsToTxn {offsets_busy}, "
          f"by AddPartitionsToTxn {parts_busy}")
    for name, v in out.items():
        if v:
            a = np.array(v)
            print(f"  {name:13s} p50 {np.percentile(a, 50):5.0f}  p90 {np.percentile(a, 90):5.0f}"
                  f"  p99 {np.percentile(a, 99):5.0f}  max {a.max():5.0f} ms")


if __name__ == "__main__":
    main()
