"""Build (or reuse) the container images the compose test runs, tagged by content hash.

No registry is reachable on the CI machines, so every image starts from the local Debian base
(``tocsin-debian:bookworm``, made by ``scripts/docker-setup`` with debootstrap + docker import):

- ``tocsin-python``: Python 3.11 from Debian (stands in for the official python:3.11-slim);
- ``tocsin``: the repository's Dockerfile with ``BASE=tocsin-python:<hash>``;
- ``tocsin-kafka``: the jars :func:`tocsin.services.kafka.provision` fetched from Maven Central
  plus Debian's JRE (users keep apache/kafka);
- ``tocsin-influxdb``: the influxd built by ``build_influxd.sh`` (users keep influxdb:2.7).

Each image's tag is a hash of its build context, its Dockerfile and its base image's id, so an
unchanged image is never rebuilt (a warm run only inspects tags) and a changed file always is.
Builds use ``--network host`` (containers have no route out) and, when the machine has one,
the CA bundle named by SSL_CERT_FILE for pip (PIP_CERT).

    python -m tocsin.services.images        # build all, print NAME=tag lines
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tocsin.errors import ServiceError
from tocsin.services.kafka import cache_dir

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "deploy" / "docker"
DEBIAN_BASE = "tocsin-debian:bookworm"
_SKIP = {"__pycache__", ".pytest_cache"}


def _docker(*args: str, check: bool = True, capture: bool = True) -> str:
    proc = subprocess.run(["docker", *args], text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.STDOUT if capture else None)
    if check and proc.returncode != 0:
        raise ServiceError(f"docker {' '.join(args[:3])} ... failed ({proc.returncode}):\n"
                           f"{(proc.stdout or '')[-4000:]}")
    return (proc.stdout or "").strip()


def image_id(ref: str) -> str | None:
    proc = subprocess.run(["docker", "image", "inspect", "--format", "{{.Id}}", ref],
                          text=True, capture_output=True)
    return proc.stdout.strip() if proc.returncode == 0 else None


def _files(root: Path):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP)
        for name in sorted(filenames):
            if not name.endswith(".pyc"):
                yield Path(dirpath) / name


def context_hash(context: Path, dockerfile: Path, base_id: str, args: dict[str, str]) -> str:
    h = hashlib.sha256()
    h.update(base_id.encode())
    h.update(repr(sorted(args.items())).encode())
    h.update(dockerfile.read_bytes())
    for f in _files(context):
        rel = f.relative_to(context).as_posix()
        h.update(rel.encode() + b"\0" + (b"x" if os.access(f, os.X_OK) else b"-"))
        h.update(f.read_bytes())
    return h.hexdigest()[:16]


def _stage(name: str, items: dict[str, Path]) -> Path:
    """Copy the build context to a folder of its own (hard links where possible)."""
    ctx = cache_dir() / "docker" / f"ctx-{name}"
    shutil.rmtree(ctx, ignore_errors=True)
    ctx.mkdir(parents=True)
    for dest, src in items.items():
        target = ctx / dest
        if src.is_dir():
            shutil.copytree(src, target, ignore=shutil.ignore_patterns(*_SKIP, "*.pyc"))
        else:
            shutil.copy2(src, target)
    return ctx


def build(name: str, dockerfile: Path, items: dict[str, Path], base: str,
          args: dict[str, str] | None = None, log=print) -> str:
    """Build ``name:<hash>`` unless it exists; return the tag."""
    base_id = image_id(base)
    if base_id is None:
        raise ServiceError(f"base image {base} is missing; run scripts/docker-setup first")
    args = {"BASE": base, **(args or {})}
    ctx = _stage(name, items)
    tag = f"{name}:{context_hash(ctx, dockerfile, base_id, args)}"
    if image_id(tag):
        log(f"images: {tag} (reused)")
        return tag
    t0 = time.monotonic()
    cmd = ["build", "--network", "host", "-t", tag, "-f", str(dockerfile)]
    for k, v in args.items():
        cmd += ["--build-arg", f"{k}={v}"]
    logf = cache_dir() / "docker" / f"build-{name}.log"
    with open(logf, "w") as fh:
        proc = subprocess.run(["nice", "-n", "10", "docker", *cmd, str(ctx)], stdout=fh,
                              stderr=subprocess.STDOUT)
    if proc.returncode != 0:
        raise ServiceError(f"docker build of {name} failed; last lines of {logf}:\n"
                           + logf.read_text(errors="replace")[-4000:])
    log(f"images: {tag} built in {time.monotonic() - t0:.0f} s")
    _prune(name, keep=tag)
    return tag


def _prune(name: str, keep: str) -> None:
    """Untag older content-hash builds of `name` (shared layers stay; other tags such as a
    user's `tocsin:latest` are left alone), so disk use stays bounded."""
    old = _docker("image", "ls", name, "--format", "{{.Repository}}:{{.Tag}}", check=False)
    stale = [t for t in old.split() if t != keep and re.fullmatch(r"[0-9a-f]{16}", t.split(":")[-1])]
    if stale:
        _docker("rmi", *stale, check=False)


def ca_bundle() -> Path | None:
    for cand in (os.environ.get("SSL_CERT_FILE"), os.environ.get("REQUESTS_CA_BUNDLE"),
                 "/etc/ssl/certs/ca-certificates.crt"):
        if cand and Path(cand).is_file():
            return Path(cand)
    return None


def build_all(log=print) -> dict[str, str]:
    """The four images of the compose test; returns env names -> tags."""
    from tocsin.services.influx import provision as influxd
    from tocsin.services.kafka import provision as kafka_libs

    py = build("tocsin-python", DOCKER / "python.Dockerfile", {}, DEBIAN_BASE, log=log)
    app_items = {"pyproject.toml": REPO / "pyproject.toml", "README.md": REPO / "README.md",
                 "tocsin": REPO / "tocsin", "config": REPO / "config"}
    args = {}
    ca = ca_bundle()
    if ca is not None:
        app_items["build-ca.pem"] = ca
        args["PIP_CERT"] = "/src/build-ca.pem"
    app = build("tocsin", REPO / "Dockerfile", app_items, py, args, log=log)
    kafka = build("tocsin-kafka", DOCKER / "kafka.Dockerfile",
                  {"libs": kafka_libs(quiet=True),
                   "kafka-entrypoint": DOCKER / "kafka-entrypoint",
                   "kafka-broker-api-versions.sh": DOCKER / "kafka-broker-api-versions.sh"},
                  DEBIAN_BASE, log=log)
    influx = build("tocsin-influxdb", DOCKER / "influxdb.Dockerfile",
                   {"influxd": influxd(), "influxdb-entrypoint": DOCKER / "influxdb-entrypoint"},
                   DEBIAN_BASE, log=log)
    return {"TOCSIN_IMAGE": app, "TOCSIN_KAFKA_IMAGE": kafka, "TOCSIN_INFLUXDB_IMAGE": influx,
            "TOCSIN_PYTHON_IMAGE": py}


if __name__ == "__main__":
    try:
        for k, v in build_all(log=lambda m: print(m, file=sys.stderr)).items():
            print(f"{k}={v}")
    except ServiceError as exc:
        print(f"images: {exc}", file=sys.stderr)
        sys.exit(1)
