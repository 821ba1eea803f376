# Python 3.11 on the local Debian base (tocsin-debian:bookworm, from debootstrap + docker import):
# the stand-in for the official python:3.11-slim image where no registry is reachable (tests).
ARG BASE=tocsin-debian:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
