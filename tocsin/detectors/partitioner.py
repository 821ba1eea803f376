"""Kafka's default partitioner (murmur2, as the Java client, Faust and the runtime's producer
``partitioner=murmur2_random`` use): which partition a key goes to, and a key for each
partition (the fraud card stage sends a watermark to every partition of its through topic)."""

from __future__ import annotations

_M = 0x5BD1E995


def murmur2(data: bytes) -> int:
    """Kafka's ``Utils.murmur2`` (seed 0x9747b28c), as an unsigned 32-bit int."""
    n = len(data)
    h = (0x9747B28C ^ n) & 0xFFFFFFFF
    for i in range(0, n - n % 4, 4):
        k = data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24
        k = (k * _M) & 0xFFFFFFFF
        k ^= k >> 24
        k = (k * _M) & 0xFFFFFFFF
        h = ((h * _M) & 0xFFFFFFFF) ^ k
    rest, i = n % 4, n - n % 4
    if rest == 3:
        h ^= data[i + 2] << 16
    if rest >= 2:
        h ^= data[i + 1] << 8
    if rest >= 1:
        h ^= data[i]
        h = (h * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    h ^= h >> 15
    return h


def partition_of(key: bytes, partitions: int) -> int:
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def keys_for_partitions(prefix: bytes, partitions: int) -> list[bytes]:
    """One key per partition (``prefix`` + a number), so a record can be sent to each."""
    found: dict[int, bytes] = {}
    i = 0
    while len(found) < partitions:
        k = prefix + str(i).encode()
        found.setdefault(partition_of(k, partitions), k)
        i += 1
    return [found[p] for p in range(partitions)]
