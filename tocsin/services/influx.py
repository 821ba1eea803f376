"""A real InfluxDB 2.x server (influxd with Flux), built from the Go module proxy into the cache
by ``build_influxd.sh`` on first use, started on 127.0.0.1 and onboarded (org, bucket, token).

The onboarding also creates the rollup bucket and the task that fills it, so retention and
downsampling exist from the first start (see :mod:`tocsin.connectors.influx_admin`).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tocsin.errors import ServiceError
from tocsin.services.kafka import ServiceProcess, _die_with_parent, cache_dir

INFLUX_VERSION = "v2.7.12"
BUILD_SCRIPT = Path(__file__).resolve().parent / "build_influxd.sh"


def provision(version: str = INFLUX_VERSION) -> Path:
    """The influxd binary; built on first use (about 8 minutes cold on 2 cores)."""
    binary = cache_dir() / f"influxdb-{version.lstrip('v')}" / "bin" / "influxd"
    if binary.exists() and os.access(binary, os.X_OK):
        return binary
    print(f"tocsin: building influxd {version} from the Go module proxy into {binary.parent} "
          "(first time only; about 8 minutes on 2 cores) ...", flush=True)
    env = dict(os.environ, TOCSIN_INFLUXDB_VERSION=version)
    proc = subprocess.run(["bash", str(BUILD_SCRIPT)], env=env, stdout=subprocess.PIPE,
                          text=True)
    if proc.returncode != 0 or not binary.exists():
        raise ServiceError(f"building influxd failed (exit {proc.returncode}); the build "
                           f"logs are in {binary.parent.parent / 'logs'}")
    return binary


@dataclass
class InfluxServer(ServiceProcess):
    data_dir: Path
    port: int = 8086
    org: str = "tocsin"
    bucket: str = "tocsin"
    # random unless given: `tocsin services up` passes the install's token (influx_secrets)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(32), repr=False)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)
    tls_cert: Path | None = None  # serve https with this certificate and key
    tls_key: Path | None = None
    tls_ca: Path | None = None  # CA to check our own https server against (health, setup)
    retention_hours: int = 24 * 30
    detach: bool = False
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls_cert else 'http'}://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "influxd.log"

    def start(self, timeout: float = 60.0) -> "InfluxServer":
        binary = provision()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        d = self.data_dir
        args = [str(binary), "--http-bind-address", f"127.0.0.1:{self.port}",
                "--bolt-path", str(d / "influxd.bolt"), "--sqlite-path", str(d / "influxd.sqlite"),
                "--engine-path", str(d / "engine"), "--reporting-disabled",
                "--log-level", "warn"]
        if self.tls_cert:
            args += ["--tls-cert", str(self.tls_cert), "--tls-key", str(self.tls_key)]
        env = dict(os.environ, INFLUXD_CONFIG_PATH=str(d))  # no stray config file
        log = open(self.log_path, "ab")
        opts = {"start_new_session": True} if self.detach else {"preexec_fn": _die_with_parent}
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env,
                                     cwd=str(d), **opts)
        log.close()
        self._wait_ready(timeout)
        self._onboard()
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise ServiceError(f"influxd exited with code {self.proc.returncode}; log "
                                   f"{self.log_path}:\n{self.tail_log()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1,
                                            context=self._ssl()) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise ServiceError(f"influxd not ready within {timeout:.0f}s at {self.url}; log "
                           f"{self.log_path}:\n{self.tail_log()}")

    def _onboard(self) -> None:
        status = _http("GET", f"{self.url}/api/v2/setup", ctx=self._ssl())
        if status.get("allowed"):
            _http("POST", f"{self.url}/api/v2/setup", {
                "username": "tocsin", "password": self.password, "org": self.org,
                "bucket": self.bucket, "token": self.token,
                "retentionPeriodSeconds": self.retention_hours * 3600}, ctx=self._ssl())
        from tocsin.connectors.influx_admin import ensure_rollups

        ensure_rollups(self.url, self.token, self.org, self.bucket, ca_file=self.tls_ca)

    def _ssl(self):
        if not self.tls_cert:
            return None
        import ssl

        return ssl.create_default_context(cafile=str(self.tls_ca) if self.tls_ca else None)



def _http(method: str, url: str, body: dict | None = None, ctx=None) -> dict:
    data = orjson.dumps(body) if body is not None else None
    req = urllib.request.Request(url, data=data, method=method,
                                 headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10, context=ctx) as r:
            raw = r.read()
    except urllib.error.HTTPError as exc:
        raise ServiceError(f"influxd {method} {url}: {exc.code} {exc.read()[:300]!r}") from exc
    return orjson.loads(raw) if raw else {}
