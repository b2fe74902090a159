"""Saying why a test cannot run: it skips, or fails under CI (``CI=true``)."""

from __future__ import annotations

import os

import pytest


def need(reason: str) -> None:
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"required under CI: {reason}")
    pytest.skip(reason)
