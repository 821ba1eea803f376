# InfluxDB 2.x from the influxd the project builds from the Go module proxy
# (tocsin/services/build_influxd.sh), for the tests here; users keep the official influxdb image.
# Onboards itself from the same DOCKER_INFLUXDB_INIT_* variables as the official image
# (mode setup: username, password, org, bucket, retention, admin token).
ARG BASE=tocsin-debian:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends curl \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY influxd /usr/local/bin/influxd
COPY influxdb-entrypoint /usr/local/bin/influxdb-entrypoint
ENV INFLUXD_BOLT_PATH=/var/lib/influxdb2/influxd.bolt \
    INFLUXD_ENGINE_PATH=/var/lib/influxdb2/engine \
    INFLUXD_SQLITE_PATH=/var/lib/influxdb2/influxd.sqlite \
    INFLUXD_HTTP_BIND_ADDRESS=:8086 INFLUXD_REPORTING_DISABLED=true
VOLUME /var/lib/influxdb2
EXPOSE 8086
ENTRYPOINT ["/usr/local/bin/influxdb-entrypoint"]
