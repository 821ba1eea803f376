"""Faust helpers shared by the apps still on Faust (imaging, payments).

The plant path (thresholds, features, anomaly) and fusion run on Tocsin's own exactly-once
runtime (tocsin/streams/runtime, docs/runtime.md): tocsin/streams/plant_worker.py.
"""

from __future__ import annotations

import faust


def raw_topic(app: faust.App, name: str, partitions: int) -> faust.TopicT:
    return app.topic(name, key_type=bytes, value_type=bytes, key_serializer="raw",
                     value_serializer="raw", partitions=partitions)
