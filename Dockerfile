# One image for every Tocsin process (worker, fusion, connectors, simulator, history sink,
# payments, imaging): `docker run IMAGE <tocsin subcommand>`; see docker-compose.yml.
#
#   docker build -t tocsin .                                    (official python:3.11-slim)
#   docker build --build-arg BASE=tocsin-python:bookworm ...    (the local Debian base, tests)
#
# Serving only: ONNX Runtime, pgmpy (fusion) and the DICOM readers; no torch (training runs
# elsewhere, `pip install tocsin[train]`). Runs as uid 10001; state under /var/lib/tocsin.
# A CA bundle named build-ca.pem in the context (optional; for TLS-inspecting proxies) is used
# by pip when the build argument PIP_CERT names it (PIP_CERT=/src/build-ca.pem).
ARG BASE=python:3.11-slim
FROM ${BASE}
ARG PIP_CERT=
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1 \
    VIRTUAL_ENV=/opt/tocsin PATH=/opt/tocsin/bin:$PATH \
    TOCSIN_LOG_LEVEL=info TOCSIN_DATA_DIR=/var/lib/tocsin/data \
    TOCSIN_MODEL_DIR=/var/lib/tocsin/models HOME=/var/lib/tocsin
# dependencies first, from pyproject.toml alone: this layer is reused until it changes
COPY pyproject.toml build-ca.pe[m] /src/
RUN python3 -m venv /opt/tocsin \
 && mkdir -p /src/tocsin && touch /src/tocsin/__init__.py /src/README.md \
 && pip install ${PIP_CERT:+--cert "$PIP_CERT"} "setuptools>=68" wheel "/src[fusion,imaging]" \
 && pip uninstall -y tocsin && rm -rf /src/tocsin /src/build /src/*.egg-info
COPY README.md /src/README.md
COPY tocsin /src/tocsin
COPY config /app/config
RUN pip install --no-deps --no-build-isolation /src \
 && rm -rf /src /root/.cache \
 && mkdir -p /var/lib/tocsin/data /var/lib/tocsin/models && chown -R 10001:10001 /var/lib/tocsin
WORKDIR /app
USER 10001:10001
ENTRYPOINT ["tocsin"]
CMD ["--help"]
