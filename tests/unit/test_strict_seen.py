"""check_ids_seen: the cached id-list check refuses what check_ids refuses, every time, and
its cache stays bounded whatever ids arrive."""

from __future__ import annotations

import pytest

from tocsin.contracts import strict
from tocsin.errors import SchemaError


def test_refuses_what_check_ids_refuses_and_never_caches_a_bad_list():
    for _ in range(2):
        with pytest.raises(SchemaError, match=r"tag\[1\].*U\+0000"):
            strict.check_ids_seen(["a", "b\x00"], "tag", "x")
        with pytest.raises(SchemaError, match=r"tag\[0\].*empty"):
            strict.check_ids_seen([""], "tag", "x")
    ok = ["a", "b"]
    assert strict.check_ids_seen(ok, "tag", "x") is ok
    assert tuple(ok) in strict._SEEN_IDS
    assert strict.check_ids_seen(list(ok), "tag", "x") == ok


def test_the_cache_is_bounded(monkeypatch):
    monkeypatch.setattr(strict, "_SEEN_ITEMS_MAX", 100)
    monkeypatch.setattr(strict, "_SEEN_IDS", {})
    monkeypatch.setattr(strict, "_seen_items", 0)
    for i in range(1000):
        strict.check_ids_seen([f"t{i}", f"u{i}", "v"], "tag", "x")
        assert sum(map(len, strict._SEEN_IDS)) <= 100
    long = [f"t{i}" for i in range(strict._SEEN_LIST_MAX + 1)]
    strict.check_ids_seen(long, "tag", "x")
    assert tuple(long) not in strict._SEEN_IDS
