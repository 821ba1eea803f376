"""InfluxDB's credentials for one install: a random operator token and onboarding password,
generated on the first `tocsin services up`, kept in 0600 files of the cache's run folder
(itself 0700), never printed in full.

Clients find the token through ``TOCSIN_INFLUX_TOKEN`` or ``TOCSIN_INFLUX_TOKEN_FILE``
(default: this install's file), so it is not in any command line (``ps`` shows those).
"""

from __future__ import annotations

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
