# Kafka (KRaft, single node) from the jars the project fetches from Maven Central
# (tocsin.services.kafka.provision) and Debian's JRE. For the tests here, where no registry is
# reachable; users keep the official apache/kafka image. Configured like apache/kafka: every
# KAFKA_FOO_BAR variable becomes foo.bar in server.properties (see kafka-entrypoint).
ARG BASE=tocsin-debian:bookworm
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends openjdk-17-jre-headless \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
COPY libs /opt/kafka/libs
COPY kafka-entrypoint /opt/kafka/bin/kafka-entrypoint
COPY kafka-broker-api-versions.sh /opt/kafka/bin/kafka-broker-api-versions.sh
VOLUME /var/lib/kafka/data
EXPOSE 9092 9093
ENTRYPOINT ["/opt/kafka/bin/kafka-entrypoint"]
