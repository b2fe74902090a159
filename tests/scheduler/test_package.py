"""The package surface: ``__all__`` is sorted and lists every public name the package exposes."""

from __future__ import annotations

import types

import kestrel.scheduler as scheduler
import kestrel.scheduler.store as store


def test_all_is_sorted_and_complete() -> None:
    for package in (scheduler, store):
        public = {
            name
            for name, value in vars(package).items()
            if not name.startswith("_") and not isinstance(value, types.ModuleType)
        }
        assert package.__all__ == sorted(package.__all__)
        assert set(package.__all__) == public
