"""How every Tocsin client talks to Kafka: TLS and SASL (SCRAM) settings in one place.

Read once per process from the environment (prefix ``TOCSIN_KAFKA_``) and, when
``TOCSIN_KAFKA_CONFIG_FILE`` names one, from a JSON file (``tocsin services up --secure``
writes such a file next to the broker; the environment wins over the file). Converters give
the same settings to each client library: confluent-kafka (connectors, sink, record/replay,
tails, CLI), aiokafka / Faust (workers), so no client can forget them.

Secrets are ``SecretStr`` (never in a repr or a log); a password can come from a file
(``TOCSIN_KAFKA_SASL_PASSWORD_FILE``) so that it is not in the environment of every process.
"""

from __future__ import annotations

import os
import ssl
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tocsin.errors import ConfigError

ENV_PREFIX = "TOCSIN_KAFKA_"
CONFIG_FILE_ENV = "TOCSIN_KAFKA_CONFIG_FILE"
Protocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
Mechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


class KafkaSecurity(BaseSettings):
    """Transport security of a Kafka client. PLAINTEXT (the default) is for 127.0.0.1 only."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore")

    security_protocol: Protocol = Field("PLAINTEXT", description="PLAINTEXT, SSL, "
                                        "SASL_PLAINTEXT or SASL_SSL")
    ssl_ca_file: Path | None = Field(None, description="CA certificate(s) (PEM) the broker's "
                                     "certificate is checked against; default: system CAs")
    ssl_cert_file: Path | None = Field(None, description="client certificate (PEM), mutual TLS")
    ssl_key_file: Path | None = Field(None, description="client private key (PEM), mutual TLS")
    ssl_key_password: SecretStr | None = None
    ssl_check_hostname: bool = Field(True, description="check the broker's name against "
                                     "its certificate (turn off only for tests)")
    sasl_mechanism: Mechanism = "SCRAM-SHA-512"
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    sasl_password_file: Path | None = Field(None, description="file holding the password "
                                            "(mode 0600); used when sasl_password is unset")

    @model_validator(mode="after")
    def _check(self) -> "KafkaSecurity":
        for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file", "sasl_password_file"):
            p = getattr(self, name)
            if p is not None and not Path(p).expanduser().is_file():
                raise ValueError(f"{name}: no such file {p}")
        if (self.ssl_cert_file is None) != (self.ssl_key_file is None):
            raise ValueError("ssl_cert_file and ssl_key_file go together (mutual TLS)")
        if self.sasl:
            if not self.sasl_username:
                raise ValueError(f"sasl_username: required with {self.security_protocol}")
            if self.sasl_password is None and self.sasl_password_file is None:
                raise ValueError(f"sasl_password (or sasl_password_file): required with "
                                 f"{self.security_protocol}")
            if self.sasl_password is None and self.sasl_password_file is not None:
                text = Path(self.sasl_password_file).expanduser().read_text().strip()
                self.sasl_password = SecretStr(text)
        return self

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """One log line, without secrets."""
        parts: list[str] = [self.security_protocol]
        if self.sasl:
            parts.append(f"{self.sasl_mechanism} as {self.sasl_username}")
        if self.tls:
            parts.append(f"CA {self.ssl_ca_file or 'system'}")
        return ", ".join(parts)

    def _password(self) -> str:
        """The SASL password (validated present whenever SASL is on)."""
        return self.sasl_password.get_secret_value() if self.sasl_password else ""

    # -------------------------------------------------------------- converters
    def confluent(self) -> dict[str, Any]:
        """librdkafka properties (confluent-kafka Producer, Consumer, AdminClient)."""
        conf: dict[str, Any] = {"security.protocol": self.security_protocol.lower()}
        if self.tls:
            if self.ssl_ca_file:
                conf["ssl.ca.location"] = str(self.ssl_ca_file)
            if self.ssl_cert_file:
                conf["ssl.certificate.location"] = str(self.ssl_cert_file)
                conf["ssl.key.location"] = str(self.ssl_key_file)
            if self.ssl_key_password is not None:
                conf["ssl.key.password"] = self.ssl_key_password.get_secret_value()
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.ssl_check_hostname else "none")
        if self.sasl:
            conf["sasl.mechanisms"] = self.sasl_mechanism
            conf["sasl.username"] = self.sasl_username
            conf["sasl.password"] = self._password()
        return conf

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client SSLContext (aiokafka, Faust), or None without TLS."""
        if not self.tls:
            return None
        ctx = ssl.create_default_context(
            cafile=str(self.ssl_ca_file) if self.ssl_ca_file else None)
        ctx.check_hostname = self.ssl_check_hostname
        if not self.ssl_check_hostname:
            ctx.verify_mode = ssl.CERT_REQUIRED  # still verify the chain
        if self.ssl_cert_file:
            pw = self.ssl_key_password.get_secret_value() if self.ssl_key_password else None
            ctx.load_cert_chain(str(self.ssl_cert_file), str(self.ssl_key_file), pw)
        return ctx

    def aiokafka(self) -> dict[str, Any]:
        """Keyword arguments for aiokafka's AIOKafkaProducer/Consumer/AdminClient."""
        kw: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.tls:
            kw["ssl_context"] = self.ssl_context()
        if self.sasl:
            kw.update(sasl_mechanism=self.sasl_mechanism,
                      sasl_plain_username=self.sasl_username,
                      sasl_plain_password=self._password())
        return kw

    def faust(self) -> dict[str, Any]:
        """Keyword arguments for ``faust.App``: ``broker_credentials`` (empty for PLAINTEXT)."""
        if self.security_protocol == "PLAINTEXT":
            return {}
        import faust  # lazy: only workers need it

        ctx = self.ssl_context()
        if self.sasl:
            return {"broker_credentials": faust.SASLCredentials(
                username=self.sasl_username, password=self._password(), ssl_context=ctx,
                mechanism=self.sasl_mechanism)}
        return {"broker_credentials": faust.SSLCredentials(ctx)}


def _file_values(path: str | None) -> dict:
    if not path:
        return {}
    try:
        data = orjson.loads(Path(path).expanduser().read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{CONFIG_FILE_ENV}: cannot read {path}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{CONFIG_FILE_ENV}: {path} must hold a JSON object")
    return data


def load_kafka_security(**overrides) -> KafkaSecurity:
    """Validated settings: explicit overrides > environment > config file."""
    values = _file_values(overrides.pop("config_file", None) or os.environ.get(CONFIG_FILE_ENV))
    env = {k[len(ENV_PREFIX):].lower() for k in os.environ if k.startswith(ENV_PREFIX)}
    values = {k: v for k, v in values.items() if k not in env}  # the environment wins
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return KafkaSecurity(**values)
    except ValidationError as exc:
        lines = [f"  {ENV_PREFIX}{'_'.join(map(str, e['loc'])).upper() or '(settings)'}: "
                 f"{e['msg']}" for e in exc.errors()]
        raise ConfigError("invalid Kafka security settings:\n" + "\n".join(lines)) from exc


def _env_key() -> tuple:
    return tuple(sorted((k, v) for k, v in os.environ.items() if k.startswith(ENV_PREFIX)))


@lru_cache(maxsize=8)
def _cached(key: tuple) -> KafkaSecurity:
    return load_kafka_security()


def kafka_security() -> KafkaSecurity:
    """The process's settings (read again only when the TOCSIN_KAFKA_* environment changes)."""
    return _cached(_env_key())


def client_conf(bootstrap: str, conf: dict | None = None) -> dict[str, Any]:
    """confluent-kafka configuration: bootstrap + this process's security + ``conf``."""
    out: dict[str, Any] = {"bootstrap.servers": bootstrap}
    out.update(kafka_security().confluent())
    out.update(conf or {})
    return out
