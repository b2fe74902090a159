"""The package surface: ``__all__`` lists what is exported, sorted, and nothing is missing."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("name", ["kestrel.logger", "kestrel.logger.bus", "kestrel.logger.sink"])
def test_all_is_sorted_and_complete(name: str) -> None:
    module = importlib.import_module(name)
    exported = module.__all__
    assert exported == sorted(exported)
    public = {
        attr for attr, value in vars(module).items()
        if not attr.startswith("_") and not isinstance(value, type(importlib))
    }
    assert public == set(exported)
