"""committed_offsets: a partition whose offset fetch failed is retried, never read as "nothing
committed" (which would rewind it to the beginning and process it twice)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, TopicPartition

from tocsin.errors import ServiceError
from tocsin.streams.runtime.assignment import committed_offsets


class _Consumer:
    """Answers committed() from a script of replies (pure stand-in for the offset fetch)."""

    def __init__(self, replies):
        self.replies = list(replies)
        self.calls = 0

    def committed(self, tps, timeout):
        self.calls += 1
        reply = self.replies[min(self.calls - 1, len(self.replies) - 1)]
        return [TopicPartition(t.topic, t.partition, off) if err is None else
                _with_error(t, err) for t, (off, err) in zip(tps, reply)]


def _with_error(t, code):
    # TopicPartition.error is read-only in the client: a stand-in with the same fields
    return SimpleNamespace(topic=t.topic, partition=t.partition, offset=-1001,
                           error=KafkaError(code))


TPS = [TopicPartition("in", 0), TopicPartition("in", 1)]


def test_an_unstable_offset_is_retried_until_it_is_known():
    c = _Consumer([[(-1001, KafkaError.UNSTABLE_OFFSET_COMMIT), (7, None)],
                   [(42, None), (7, None)]])
    got = committed_offsets(c, TPS, timeout_s=5)
    assert [(t.partition, t.offset) for t in got] == [(0, 42), (1, 7)]
    assert c.calls == 2


def test_never_committed_is_not_an_error():
    got = committed_offsets(_Consumer([[(-1001, None), (-1001, None)]]), TPS, timeout_s=1)
    assert [t.offset for t in got] == [-1001, -1001]


def test_an_offset_that_stays_unavailable_raises_naming_the_partition():
    c = _Consumer([[(3, None), (-1001, KafkaError.UNSTABLE_OFFSET_COMMIT)]])
    with pytest.raises(ServiceError, match=r"in\[1\]"):
        committed_offsets(c, TPS, timeout_s=0.5)
    assert c.calls >= 2
