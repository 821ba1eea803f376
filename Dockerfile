# One image for the worker, the simulator and the connectors (see docker-compose.yml).
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY tocsin ./tocsin
COPY config ./config
RUN pip install --no-cache-dir .
ENV TOCSIN_LOG_LEVEL=info
ENTRYPOINT ["tocsin"]
