"""Secrets and limits of the payment feeds: the PAN token key, the HTTP bearer tokens (stored
hashed), the ISO 8583 listener's bounds, and TLS for both listeners.

Secure by default: outside development mode (``--dev`` or ``TOCSIN_DEV=1``) the ingest and the
payments worker refuse to start without a PAN key, and the HTTP ingest refuses to start without
at least one bearer token hash. Development mode uses a fixed, public key (logged loudly) and
leaves HTTP open when no token is configured.

Environment (prefix ``TOCSIN_INGEST_``; the key keeps its historical name):

- ``TOCSIN_PAN_TOKEN_KEY`` / ``TOCSIN_PAN_TOKEN_KEY_FILE``: the PAN key (16+ characters).
- ``TOCSIN_INGEST_TOKEN_HASHES``: comma-separated ``sha256:<hex>`` of the accepted tokens;
  ``TOCSIN_INGEST_TOKEN_HASHES_FILE``: one per line. ``tocsin payments token`` makes a pair.
- ``TOCSIN_INGEST_ISO_MAX_CONNECTIONS``, ``..._ISO_IDLE_TIMEOUT_S``, ``..._ISO_RATE_PER_S``,
  ``..._ISO_BURST``: the listener's bounds.
- ``TOCSIN_INGEST_TLS_CERT_FILE`` / ``..._TLS_KEY_FILE`` (+ ``..._TLS_CLIENT_CA_FILE`` for
  mutual TLS): TLS on the ISO 8583 and HTTP listeners.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import secrets
import ssl
from pathlib import Path

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.errors import ConfigError

log = logging.getLogger("tocsin.ingest")
DEV_ENV = "TOCSIN_DEV"
KEY_ENV, KEY_FILE_ENV = "TOCSIN_PAN_TOKEN_KEY", "TOCSIN_PAN_TOKEN_KEY_FILE"
DEV_PAN_KEY = b"tocsin-development-token-key"  # public: development and tests only
MIN_KEY_LEN = 16
_HASH = re.compile(r"sha256:[0-9a-f]{64}")


def dev_mode(flag: bool | None = None) -> bool:
    """``--dev`` when given, else ``TOCSIN_DEV`` (1/true/yes)."""
    if flag is not None:
        return flag
    return os.environ.get(DEV_ENV, "").strip().lower() in ("1", "true", "yes", "on")


def load_pan_key(*, dev: bool | None = None) -> bytes:
    """The PAN token key; outside development mode a missing or weak key stops start-up."""
    dev = dev_mode(dev)
    key = os.environ.get(KEY_ENV, "")
    path = os.environ.get(KEY_FILE_ENV)
    if not key and path:
        try:
            key = Path(path).expanduser().read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{KEY_FILE_ENV}: cannot read {path}: {exc}") from exc
    if not key:
        if dev:
            log.warning("development mode: %s not set, PANs are tokenised with the PUBLIC "
                        "development key (never use this with real card data)", KEY_ENV)
            return DEV_PAN_KEY
        raise ConfigError(f"{KEY_ENV} (or {KEY_FILE_ENV}) is not set: the PAN token key is "
                          f"required outside development mode (make one with "
                          f"`tocsin secrets pan-key -o FILE`, or run with --dev for a demo)")
    raw = key.encode()
    if not dev and (len(raw) < MIN_KEY_LEN or raw == DEV_PAN_KEY):
        raise ConfigError(f"{KEY_ENV}: the PAN key must be at least {MIN_KEY_LEN} characters "
                          f"and not the development key")
    return raw[:64]  # BLAKE2b's key limit (as before: tokens of existing keys stay the same)


def hash_token(token: str) -> str:
    """What goes in the config for a bearer token (tokens are random, so a plain SHA-256
    is enough: there is nothing to guess that a slow hash would protect)."""
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh bearer token (256 bits) and its config hash."""
    tok = "tsn_" + secrets.token_urlsafe(32)
    return tok, hash_token(tok)


class IngestSecurity(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_INGEST_", extra="ignore")

    token_hashes: str = Field("", description="comma-separated sha256:<hex> of accepted "
                              "bearer tokens")
    token_hashes_file: Path | None = Field(None, description="one sha256:<hex> per line")
    iso_max_connections: int = Field(256, ge=1, le=100_000)
    iso_idle_timeout_s: float = Field(60.0, gt=0, description="close a connection silent "
                                      "this long")
    iso_rate_per_s: float = Field(2000.0, gt=0, description="messages per second per "
                                  "connection (token bucket; excess is slowed down)")
    iso_burst: int = Field(4000, ge=1)
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = Field(None, description="require client certificates "
                                            "signed by this CA (mutual TLS)")

    @field_validator("token_hashes")
    @classmethod
    def _hashes(cls, v: str) -> str:
        for h in (x.strip() for x in v.split(",") if x.strip()):
            if not _HASH.fullmatch(h):
                raise ValueError(f"not a sha256:<64 hex> token hash: {h[:12]}...")
        return v

    @model_validator(mode="after")
    def _check(self) -> "IngestSecurity":
        if (self.tls_cert_file is None) != (self.tls_key_file is None):
            raise ValueError("tls_cert_file and tls_key_file go together")
        for name in ("token_hashes_file", "tls_cert_file", "tls_key_file", "tls_client_ca_file"):
            p = getattr(self, name)
            if p is not None and not Path(p).expanduser().is_file():
                raise ValueError(f"{name}: no such file {p}")
        return self

    def hashes(self) -> list[str]:
        out = [h.strip() for h in self.token_hashes.split(",") if h.strip()]
        if self.token_hashes_file:
            for line in Path(self.token_hashes_file).expanduser().read_text().splitlines():
                line = line.split("#", 1)[0].strip()
                if line:
                    if not _HASH.fullmatch(line):
                        raise ConfigError(f"TOCSIN_INGEST_TOKEN_HASHES_FILE: not a "
                                          f"sha256:<hex> hash: {line[:12]}...")
                    out.append(line)
        return out

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_cert_file is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(self.tls_cert_file), str(self.tls_key_file))
        if self.tls_client_ca_file:
            ctx.load_verify_locations(str(self.tls_client_ca_file))
            ctx.verify_mode = ssl.CERT_REQUIRED
        return ctx


def load_ingest_security(**overrides) -> IngestSecurity:
    try:
        return IngestSecurity(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [f"  TOCSIN_INGEST_{'_'.join(map(str, e['loc'])).upper() or '(settings)'}: "
                 f"{e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid ingest security settings:\n" + "\n".join(lines)) from exc


def token_ok(header: str | None, hashes: list[str]) -> bool:
    """Does an ``Authorization`` header carry one of the tokens? (constant-time compare)"""
    if not header or not header.startswith("Bearer "):
        return False
    got = hash_token(header[7:].strip())
    ok = False
    for h in hashes:
        ok |= hmac.compare_digest(got, h)
    return ok
