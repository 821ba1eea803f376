#!/bin/bash
# Readiness probe of the test image: the jars fetched from Maven do not include kafka-tools, so
# unlike apache/kafka's script of this name this only checks that the listener in
# --bootstrap-server accepts connections (bash /dev/tcp).
hp=localhost:9092
while [ $# -gt 0 ]; do [ "$1" = --bootstrap-server ] && hp="$2"; shift; done
host="${hp%:*}"; [ "$host" = localhost ] && host=127.0.0.1   # no IPv6 inside the containers
exec 3<>"/dev/tcp/$host/${hp##*:}"
