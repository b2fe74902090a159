"""Fixtures every test folder may use: real Redis and Postgres (see ``servers.py``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from servers import delete_prefix, fresh_database, postgres_server, redis_server


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix no other test or run shares; its keys are deleted afterwards."""
    prefix = f"kestrel-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(redis_url, prefix)


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    with postgres_server() as url:
        yield url


@pytest.fixture(scope="session")
def database_url(postgres_url: str) -> Iterator[str]:
    """A database created for this test run and dropped at its end."""
    with fresh_database(postgres_url) as url:
        yield url
