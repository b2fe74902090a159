"""One sim per test module (starting uvicorn costs more than the tests), reset before each test."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import pytest

from kestrel.sim.config import SimConfig
from kestrel.sim.testing import SimHandle, running_sim


@pytest.fixture(scope="module")
def sim_server() -> Iterator[SimHandle]:
    with running_sim(SimConfig()) as sim:
        yield sim


@pytest.fixture
def sim(sim_server: SimHandle) -> SimHandle:
    sim_server.reset()
    return sim_server


@pytest.fixture(scope="module")
def sdk(sim_server: SimHandle) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=sim_server.url, api_key="sk-test", max_retries=0) as client:
        yield client


@pytest.fixture
def client(sim: SimHandle, sdk: anthropic.Anthropic) -> anthropic.Anthropic:
    """The official SDK pointed at a freshly reset sim."""
    return sdk
