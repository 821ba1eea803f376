"""Find (or install) the external tools a service needs: Java and Maven for Kafka."""

from __future__ import annotations

import os
import shutil
import subprocess

from tocsin.errors import ServiceError

_APT_PACKAGES = {"java": "openjdk-17-jre-headless", "mvn": "maven"}


def _can_apt() -> bool:
    return os.geteuid() == 0 and shutil.which("apt-get") is not None


def require(tool: str, *, install: bool = True) -> str:
    """Return the path of `tool`; install it with apt-get when allowed, else explain how."""
    path = shutil.which(tool)
    if path:
        return path
    pkg = _APT_PACKAGES.get(tool, tool)
    if install and _can_apt():
        print(f"tocsin: {tool} not found; installing Debian package {pkg} ...", flush=True)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env)
        proc = subprocess.run(["apt-get", "install", "-y", "-q", pkg], env=env)
        path = shutil.which(tool)
        if proc.returncode == 0 and path:
            return path
    raise ServiceError(
        f"{tool} is required but was not found on PATH. Install it first, for example "
        f"`apt-get install -y {pkg}` (Debian/Ubuntu) or any JDK 17+ and Maven 3.8+."
    )
