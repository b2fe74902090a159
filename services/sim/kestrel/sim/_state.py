"""The runtime state of one simulator, built once by ``create_app`` and shared by its routes.

Config is what the sim was started with; this is what changes while it runs: per-key limits
(editable through the control API), rate windows, the prompt cache, scripted responses, queued
faults and the request log. ``reset`` returns all of it to the just-started state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from kestrel.sim._answers import ScriptedResponse
from kestrel.sim._cache import PromptCache
from kestrel.sim._faults import Fault
from kestrel.sim._limits import RateLimiter
from kestrel.sim._queues import KeyedQueue
from kestrel.sim._requestlog import RequestLog
from kestrel.sim.config import KeyLimits, ModelInfo, SimConfig

_UNLIMITED = KeyLimits()


class Simulator:
    """Everything a request handler reads or changes besides the request itself."""

    def __init__(
        self,
        config: SimConfig,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.keys: dict[str, KeyLimits] = dict(config.keys)
        self.limiter = RateLimiter(clock)
        self.cache = PromptCache(config.min_cache_tokens, monotonic)
        self.scripts: KeyedQueue[ScriptedResponse] = KeyedQueue()
        self.faults: KeyedQueue[Fault] = KeyedQueue()
        self.log = RequestLog(config.request_log_size)
        self.base_headers: list[tuple[bytes, bytes]] = [
            (b"anthropic-organization-id", config.organization_id.encode()),
        ]
        self.model_ids = frozenset(m.id for m in config.models)
        self.models: dict[str, ModelInfo] = {m.id: m for m in config.models}
        """The configured models by id: requests for these are held to their limits."""
        self.in_flight: dict[str, int] = {}
        """Messages requests per key still being answered (streams until their last byte)."""
        self.peak_in_flight: dict[str, int] = {}
        """The most ``in_flight`` ever reached per key: a gateway's concurrency cap, observed."""

    def enter(self, key: str) -> None:
        count = self.in_flight.get(key, 0) + 1
        self.in_flight[key] = count
        if count > self.peak_in_flight.get(key, 0):
            self.peak_in_flight[key] = count

    def leave(self, key: str) -> None:
        self.in_flight[key] = self.in_flight.get(key, 1) - 1

    def limits_for(self, key: str) -> KeyLimits | None:
        """The key's limits; unknown keys are unlimited when the sim is open, else None (401)."""
        limits = self.keys.get(key)
        if limits is None and self.config.open:
            return _UNLIMITED
        return limits

    def set_limits(self, key: str, limits: KeyLimits) -> None:
        """Replace a key's limits at runtime; its current window is dropped."""
        self.keys[key] = limits
        self.limiter.forget(key)

    def key_state(self, key: str) -> dict[str, Any]:
        """What ``GET /_sim/keys/{key}`` reports."""
        state = self.limiter.state(key, self.keys.get(key))
        state["accepted"] = self.limits_for(key) is not None
        state["cache_entries"] = self.cache.entry_count(key)
        state["scripts_pending"] = self.scripts.pending().get(key, 0)
        state["faults_pending"] = self.faults.pending().get(key, 0)
        state["in_flight"] = self.in_flight.get(key, 0)
        state["peak_in_flight"] = self.peak_in_flight.get(key, 0)
        return state

    def reset(self) -> None:
        """Back to the state right after start (config keys, nothing cached, queued or logged)."""
        self.keys = dict(self.config.keys)
        self.limiter.clear()
        self.cache.clear()
        self.scripts.clear()
        self.faults.clear()
        self.log.clear()
        self.in_flight.clear()
        self.peak_in_flight.clear()
