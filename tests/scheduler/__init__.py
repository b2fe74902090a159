"""Tests for ``kestrel.scheduler``: pure policy, the store contract, and the service."""
