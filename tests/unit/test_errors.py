"""The one exception tree: every exception Tocsin defines belongs to one family of
tocsin/errors.py, so `except ModelError` (or ConfigError, ...) catches every error of its kind."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

import tocsin
from tocsin import errors

FAMILIES = (errors.ConfigError, errors.SchemaError, errors.ServiceError, errors.ConnectorError,
            errors.ModelError, errors.DataError, errors.ActionError)
# modules whose import needs an optional extra that the test environment may lack
OPTIONAL = ("tocsin.models.imaging.nets", "tocsin.models.imaging.distill",
            "tocsin.models.imaging.training", "tocsin.models.imaging.export")


def _all_modules():
    for info in pkgutil.walk_packages(tocsin.__path__, "tocsin."):
        if info.name.endswith("__main__"):
            continue
        try:
            yield importlib.import_module(info.name)
        except ImportError:
            if info.name not in OPTIONAL:
                raise


def _defined_exceptions():
    seen = {}
    for mod in _all_modules():
        for name, obj in vars(mod).items():
            if (inspect.isclass(obj) and issubclass(obj, BaseException)
                    and obj.__module__ == mod.__name__):
                seen[f"{mod.__name__}.{name}"] = obj
    return seen


def test_families_derive_from_the_root():
    for fam in FAMILIES:
        assert fam.__mro__[1] is errors.TocsinError, fam


def test_every_exception_belongs_to_exactly_one_family():
    found = _defined_exceptions()
    assert "tocsin.errors.ModelError" in found  # the walk reached the tree itself
    assert len(found) > 10
    for qual, cls in found.items():
        if cls is errors.TocsinError or cls in FAMILIES:
            continue
        fams = [f for f in FAMILIES if issubclass(cls, f)]
        assert len(fams) == 1, f"{qual} must subclass one family of tocsin.errors, not {fams}"


def test_one_model_error():
    found = _defined_exceptions()
    assert [q for q in found if q.endswith(".ModelError")] == ["tocsin.errors.ModelError"]


@pytest.mark.parametrize("fam", FAMILIES)
def test_families_are_caught_by_the_root(fam):
    with pytest.raises(errors.TocsinError):
        raise fam("x")
