"""Fixtures for the upstream client tests.

Every async test here runs twice, on asyncio's loop and on uvloop (the edge's): their
transports differ in the details the client leans on (pausing, extra info, close ordering).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import uvloop

from kestrel.common.config import EdgeConfig
from kestrel.common.serving import BackgroundServer, serve_in_thread
from kestrel.edge.http import FastTransport
from kestrel.edge.upstream import Upstream

from .servers import SECRET, app


def pytest_asyncio_loop_factories(config: Any, item: Any) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    return {"asyncio": asyncio.new_event_loop, "uvloop": uvloop.new_event_loop}


@pytest.fixture(scope="module")
def app_server() -> Iterator[BackgroundServer]:
    with serve_in_thread(app, lifespan="off") as server:
        yield server


@pytest.fixture
def app_upstream(app_server: BackgroundServer) -> Upstream:
    return Upstream("acct-app", "anthropic", app_server.url, (b"x-api-key", SECRET))


@pytest.fixture
def config() -> EdgeConfig:
    return EdgeConfig(connect_timeout_seconds=2.0, read_timeout_seconds=5.0)


@pytest.fixture
async def fast(config: EdgeConfig) -> AsyncIterator[FastTransport]:
    transport = FastTransport(config)
    yield transport
    await transport.aclose()
