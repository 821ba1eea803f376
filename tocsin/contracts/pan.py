"""Card numbers (PANs): the keyed token that replaces them, and the mask for what is kept.

A PAN never reaches Kafka or a log: feeds replace it with :func:`tokenize` (keyed BLAKE2b, so
the same card gives the same ``card_id`` and nobody without the key can test a guess), and
anything kept for diagnosis (dead letters, error messages, log lines) goes through
:func:`mask_pans`, which keeps at most the first 6 and last 4 digits of every run of 12 or
more digits. The rule is deliberately blunt: it does not parse, so a PAN in a malformed
message (a wrong length prefix, a broken bitmap, a PAN in the wrong field) is masked too. The
price is that other long digit runs (nanosecond timestamps, glued ISO 8583 fields) are masked
in dead letters as well.
"""

from __future__ import annotations

import hashlib
import re

MIN_RUN = 12  # shortest PAN (ISO/IEC 7812 allows 8, but card networks issue 12-19)
# 12+ digits, single spaces or dashes allowed between them (PANs as printed: 4111 1111 ...)
_RUN = re.compile(rb"[0-9](?:[ -]?[0-9]){%d,}" % (MIN_RUN - 1))
_RUN_S = re.compile(r"[0-9](?:[ -]?[0-9]){%d,}" % (MIN_RUN - 1))
_PAN_LIKE = re.compile(r"[0-9]{12,19}")


def tokenize(pan: str, key: bytes) -> str:
    """The card's stable token: ``tok_`` + 16 hex of BLAKE2b keyed with the PAN key."""
    return "tok_" + hashlib.blake2b(pan.encode(), key=key, digest_size=8).hexdigest()


def looks_like_pan(value: str) -> bool:
    """12-19 digits and nothing else (spaces and dashes as printed on cards allowed)."""
    return bool(_PAN_LIKE.fullmatch(value.replace(" ", "").replace("-", "")))


def _mask_run(run: str) -> str:
    """Keep the first 6 and last 4 digits (separators stay where they were)."""
    n = sum(c.isdigit() for c in run)
    out, i = [], 0
    for c in run:
        if c.isdigit():
            out.append(c if i < 6 or i >= n - 4 else "*")
            i += 1
        else:
            out.append(c)
    return "".join(out)


def mask_pans(data: bytes) -> bytes:
    """Every run of 12+ ASCII digits (single spaces/dashes between them allowed) keeps its first 6 and last 4 digits, the rest is ``*``."""
    return _RUN.sub(lambda m: _mask_run(m.group().decode()).encode(), data)


def mask_text(text: str) -> str:
    """:func:`mask_pans` for text (error messages, log lines)."""
    return _RUN_S.sub(lambda m: _mask_run(m.group()), text)
