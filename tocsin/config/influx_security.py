"""How clients reach InfluxDB: the token (never on a command line, never printed in full) and
TLS. Read from the environment (prefix ``TOCSIN_INFLUX_``):

- ``TOCSIN_INFLUX_TOKEN`` or ``TOCSIN_INFLUX_TOKEN_FILE``; default: the token file of this
  install (``$TOCSIN_CACHE/run/influx-secrets/token``, written by `tocsin services up`).
- ``TOCSIN_INFLUX_SSL_CA_FILE``: CA to check an https:// server against;
  ``TOCSIN_INFLUX_VERIFY_SSL=0`` turns checking off (tests only).
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.errors import ConfigError


def install_token_file() -> Path:
    cache = Path(os.environ.get("TOCSIN_CACHE", Path.home() / ".cache" / "tocsin"))
    return cache / "run" / "influx-secrets" / "token"


def mask(secret: str | None) -> str:
    """What may be shown of a secret: its first 4 characters and its length."""
    return f"{secret[:4]}… ({len(secret)} characters)" if secret else "(none)"


class InfluxSecurity(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TOCSIN_INFLUX_", extra="ignore")

    token: SecretStr | None = None
    token_file: Path | None = None
    ssl_ca_file: Path | None = Field(None, description="CA (PEM) for an https:// influxd")
    verify_ssl: bool = True

    @model_validator(mode="after")
    def _check(self) -> "InfluxSecurity":
        for name in ("token_file", "ssl_ca_file"):
            p = getattr(self, name)
            if p is not None and not Path(p).expanduser().is_file():
                raise ValueError(f"{name}: no such file {p}")
        return self

    def token_value(self, explicit: str | None = None) -> str | None:
        """An explicit token, else the environment's, else the token file's, else this
        install's file (None when none of them exists)."""
        if explicit:
            return explicit
        if self.token is not None:
            return self.token.get_secret_value()
        f = self.token_file or install_token_file()
        return Path(f).expanduser().read_text().strip() if Path(f).expanduser().exists() \
            else None

    def client_kwargs(self, url: str, token: str | None = None,
                      ca_file: str | Path | None = None) -> dict:
        """Keyword arguments for ``influxdb_client.InfluxDBClient`` (url, token, TLS);
        ``ca_file`` overrides the configured CA."""
        kw: dict = {"url": url, "token": self.token_value(token)}
        if url.startswith("https://"):
            kw["verify_ssl"] = self.verify_ssl
            ca = ca_file or self.ssl_ca_file
            if ca:
                kw["ssl_ca_cert"] = str(ca)
        return kw


def load_influx_security(**overrides) -> InfluxSecurity:
    try:
        return InfluxSecurity(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as exc:
        lines = [f"  TOCSIN_INFLUX_{'_'.join(map(str, e['loc'])).upper() or '(settings)'}: "
                 f"{e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid InfluxDB settings:\n" + "\n".join(lines)) from exc
