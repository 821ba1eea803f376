"""A real Prometheus (and promtool, helm, alertmanager) built from the Go module proxy into the cache by
``build_gotool.sh`` on first use, and a Prometheus server started on 127.0.0.1.

The tests scrape a running worker with it and read the series back through the query API, and
check the shipped alerting rules with ``promtool check rules`` / ``promtool test rules``.
"""

from __future__ import annotations

import os
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from tocsin.errors import ServiceError
from tocsin.services.kafka import _die_with_parent

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_gotool.sh"
_ESTIMATE = {"prometheus": "about 6 minutes", "helm": "about 4 minutes",
             "alertmanager": "about 3 minutes"}


def provision(tool: str) -> Path:
    """The bin directory of `tool` (prometheus: prometheus + promtool; helm: helm;
    alertmanager: alertmanager); built on
    first use, reused afterwards (the script checks that the binaries run)."""
    print(f"tocsin: looking for {tool} in the cache (a first build from the Go module proxy "
          f"takes {_ESTIMATE.get(tool, 'minutes')} on 2 cores) ...", flush=True)
    proc = subprocess.run(["bash", str(BUILD_SCRIPT), tool], stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not Path(lines[-1]).is_dir():
        raise ServiceError(f"building {tool} failed (exit {proc.returncode}):\n"
                           f"{proc.stderr[-3000:]}")
    return Path(lines[-1])


@dataclass
class PrometheusServer:
    """``prometheus`` on 127.0.0.1:port with a config file written by the caller."""

    data_dir: Path
    config: Path
    port: int
    proc: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "prometheus.log"

    def start(self, timeout: float = 60.0) -> "PrometheusServer":
        binary = provision("prometheus") / "prometheus"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(binary), f"--config.file={self.config}",
             f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ServiceError(f"prometheus exited ({self.proc.returncode}):\n"
                                   f"{self.log_path.read_text(errors='replace')[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        self.stop()
        raise ServiceError(f"prometheus not ready in {timeout:.0f} s")

    def api(self, path: str, **params: str) -> dict:
        """GET /api/v1/<path>; returns the ``data`` member (raises on an error status)."""
        url = f"{self.url}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = orjson.loads(r.read())
        if body.get("status") != "success":
            raise ServiceError(f"prometheus {path}: {body}")
        return body["data"]

    def query(self, expr: str) -> list[dict]:
        return self.api("query", query=expr)["result"]

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    binary = provision("prometheus") / "promtool"
    return subprocess.run([str(binary), *args], cwd=cwd, capture_output=True, text=True,
                          env=dict(os.environ))
