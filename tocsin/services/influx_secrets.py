"""InfluxDB's credentials for one install: a random operator token and onboarding password,
generated on the first `tocsin services up`, kept in 0600 files of the cache's run folder
(itself 0700), never printed in full.

Clients find the token through ``TOCSIN_INFLUX_TOKEN`` or ``TOCSIN_INFLUX_TOKEN_FILE``
(default: this install's file), so it is not in any command line (``ps`` shows those).
"""

from __future__ import annotations

import os
from pathlib import Path

from tocsin.services.certs import private_dir, secret_file


def secrets_dir(run_dir: Path) -> Path:
    return private_dir(run_dir / "influx-secrets")


def install_token(run_dir: Path) -> str:
    """This install's operator token (created on first use)."""
    return secret_file(secrets_dir(run_dir) / "token", 32)


def install_password(run_dir: Path) -> str:
    return secret_file(secrets_dir(run_dir) / "password", 24)


def token_file(run_dir: Path) -> Path:
    return secrets_dir(run_dir) / "token"


def mask(secret: str) -> str:
    """What may be shown of a secret: its first 4 characters and its length."""
    return f"{secret[:4]}… ({len(secret)} characters)" if secret else "(none)"


def client_token(run_dir: Path | None = None) -> str | None:
    """The token a client should use: TOCSIN_INFLUX_TOKEN, the file named by
    TOCSIN_INFLUX_TOKEN_FILE, or this install's file; None when there is none."""
    if os.environ.get("TOCSIN_INFLUX_TOKEN"):
        return os.environ["TOCSIN_INFLUX_TOKEN"]
    path = os.environ.get("TOCSIN_INFLUX_TOKEN_FILE")
    if path:
        return Path(path).expanduser().read_text().strip()
    if run_dir is not None:
        f = run_dir / "influx-secrets" / "token"
        if f.exists():
            return f.read_text().strip()
    return None
