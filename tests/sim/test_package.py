"""The package surface: a sorted, complete ``__all__`` and no ``kestrel/__init__.py``."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import kestrel.sim


def test_all_is_sorted_and_importable() -> None:
    assert kestrel.sim.__all__ == sorted(kestrel.sim.__all__)
    for name in kestrel.sim.__all__:
        assert getattr(kestrel.sim, name) is not None


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(kestrel.sim).items()
        if not name.startswith("_") and not isinstance(value, ModuleType)  # submodules
    }
    assert public == set(kestrel.sim.__all__)


def test_kestrel_stays_a_namespace_package() -> None:
    package_dir = Path(kestrel.sim.__file__).parent
    assert not (package_dir.parent / "__init__.py").exists()
