"""The local KRaft broker with TLS and SCRAM-SHA-512 (``tocsin services up --secure``).

Clients reach one SASL_SSL listener: TLS with a certificate from a local CA
(:mod:`tocsin.services.certs`), then SCRAM-SHA-512. The SCRAM users (``admin`` for the
broker itself, ``tocsin`` for the clients) get random passwords, kept in 0600 files, and are
created when the storage is formatted (``kafka-storage format --add-scram``), so no
credential ever crosses the wire in clear. The controller listener stays on 127.0.0.1 in
plaintext (a single-node quorum talks only to itself; see docs/security.md).

A ``client.json`` next to the broker holds what clients need (CA file, user, password file);
point ``TOCSIN_KAFKA_CONFIG_FILE`` at it and every Tocsin client uses it.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tocsin.errors import ServiceError
from tocsin.services import certs
from tocsin.services.kafka import KafkaBroker, _cluster_id, provision

MECHANISM = "SCRAM-SHA-512"
ADMIN_USER = "admin"
CLIENT_USER = "tocsin"


@dataclass
class SecureKafkaBroker(KafkaBroker):
    """A :class:`KafkaBroker` whose client listener is SASL_SSL with SCRAM-SHA-512."""

    secrets_dir: Path | None = None  # default: <data_dir>/secrets
    users: dict[str, str] = field(default_factory=dict)  # extra SCRAM users: name -> password

    def __post_init__(self) -> None:
        certs.private_dir(self.data_dir)
        self.secrets_dir = certs.private_dir(Path(self.secrets_dir or self.data_dir / "secrets"))
        self.certs = certs.ensure_certs(self.secrets_dir, "kafka")
        self.admin_password = certs.secret_file(self.secrets_dir / f"{ADMIN_USER}.password")
        self.client_password = certs.secret_file(self.secrets_dir / f"{CLIENT_USER}.password")
        jaas = (f'org.apache.kafka.common.security.scram.ScramLoginModule required '
                f'username="{ADMIN_USER}" password="{self.admin_password}";')
        self.extra = {
            "listeners": f"SASL_SSL://127.0.0.1:{self.port},"
                         f"CONTROLLER://127.0.0.1:{self.controller_port}",
            "advertised.listeners": f"SASL_SSL://127.0.0.1:{self.port}",
            "listener.security.protocol.map": "SASL_SSL:SASL_SSL,CONTROLLER:PLAINTEXT",
            "inter.broker.listener.name": "SASL_SSL",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_ssl.{MECHANISM.lower()}.sasl.jaas.config": jaas,
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": str(self.certs.bundle),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": str(self.certs.ca),
            "ssl.client.auth": "none",  # clients authenticate with SCRAM
            "ssl.endpoint.identification.algorithm": "https",
            **self.extra,
        }

    @property
    def client_file(self) -> Path:
        return self.secrets_dir / "client.json"

    def client_settings(self, user: str = CLIENT_USER) -> dict:
        """What a client needs (the JSON of ``client.json``); the password stays in its file."""
        return {"security_protocol": "SASL_SSL", "sasl_mechanism": MECHANISM,
                "sasl_username": user, "ssl_ca_file": str(self.certs.ca),
                "sasl_password_file": str(self.secrets_dir / f"{user}.password")}

    def start(self, timeout: float = 90.0) -> "SecureKafkaBroker":
        self._format()
        super().start(timeout)
        self.client_file.write_bytes(orjson.dumps(self.client_settings(), option=orjson.OPT_INDENT_2))
        return self

    def _format(self) -> None:
        """Format the storage with the SCRAM users (only once: the users live in the
        cluster metadata from then on)."""
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        libs = provision(self.version)
        props = self.data_dir / "server.properties"
        certs.write_secret(props, self._properties())  # holds the admin's JAAS password
        (self.data_dir / "log4j2.properties").write_text(
            "rootLogger.level = WARN\nappender.c.type = Console\nappender.c.name = C\n"
            "rootLogger.appenderRef.c.ref = C\n")
        users = {ADMIN_USER: self.admin_password, CLIENT_USER: self.client_password,
                 **self.users}
        scram = [a for name, pw in users.items()
                 for a in ("--add-scram", f"{MECHANISM}=[name={name},password={pw}]")]
        fmt = self._java(libs, "kafka.tools.StorageTool", "format", "-t", _cluster_id(),
                         "-c", str(props), *scram, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
        out, _ = fmt.communicate(timeout=120)
        if fmt.returncode != 0:
            for pw in users.values():
                out = out.replace(pw, "***")
            raise ServiceError(f"Kafka storage format (with SCRAM users) failed:\n{out[-3000:]}")
