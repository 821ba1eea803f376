"""Local services Tocsin starts by itself on 127.0.0.1: a Kafka broker (KRaft) today.

`tocsin services up|down|status` is the one entry point; the tests, `.ci/run` and the demo
all go through :mod:`tocsin.services.kafka`.
"""
