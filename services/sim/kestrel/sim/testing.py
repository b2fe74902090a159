"""Run a sim on a loopback port for a test and steer it through the control API.

    from kestrel.sim.testing import running_sim

    with running_sim(SimConfig(keys={"sk-a": KeyLimits(requests_per_window=2)})) as sim:
        sim.script(["first answer", [{"type": "tool_use", "name": "Read", "input": {"p": 1}}]])
        sim.fault("529", key="sk-a")
        ...  # point a client or Kestrel at sim.url
        assert sim.requests()[-1]["path"] == "/v1/messages"

The handle talks HTTP to the sim like any other test client would, so it works the same whether
the test also drives the sim through Kestrel or directly. ``handle.state`` exposes the in-process
state for the rare assertion the control API does not cover.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from kestrel.common.serving import serve_in_thread
from kestrel.sim._state import Simulator
from kestrel.sim.app import create_app
from kestrel.sim.config import KeyLimits, SimConfig

ScriptItem = str | list[dict[str, Any]] | dict[str, Any]


class SimHandle:
    """A running sim: its ``url`` and helpers for every control endpoint."""

    def __init__(self, url: str, state: Simulator) -> None:
        self.url = url
        self.state = state
        self.http = httpx.Client(base_url=url, timeout=30.0)
        """A client bound to ``url``; reuse it (a new httpx client costs an SSL context)."""

    def script(self, responses: list[ScriptItem], key: str | None = None) -> dict[str, Any]:
        """Queue answers. Each item is a full response dict (``{"content": [...],
        "stop_reason"?}``), a list of content blocks, or a string (one text block)."""
        body: dict[str, Any] = {"responses": [_response(item) for item in responses]}
        if key is not None:
            body["key"] = key
        return self._post("/_sim/script", body)

    def fault(
        self,
        kind: str,
        *,
        key: str | None = None,
        count: int = 1,
        after_events: int = 0,
        stall_s: float = 10.0,
        retry_after: int = 1,
    ) -> dict[str, Any]:
        """Queue ``count`` faults of ``kind`` (429, 529, 500, stall, reset, error_event)."""
        body: dict[str, Any] = {
            "kind": kind,
            "count": count,
            "after_events": after_events,
            "stall_s": stall_s,
            "retry_after": retry_after,
        }
        if key is not None:
            body["key"] = key
        return self._post("/_sim/faults", body)

    def requests(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Received API requests (``/v1``, ``/v1beta``), oldest first (``path``, ``query``, ``headers``...)."""
        params = {"limit": limit} if limit is not None else None
        response = self.http.get("/_sim/requests", params=params)
        response.raise_for_status()
        return list(response.json()["requests"])

    def key_state(self, key: str) -> dict[str, Any]:
        """The key's limits, current window (``start``/``reset_at`` epoch seconds) and counts."""
        response = self.http.get(f"/_sim/keys/{key}")
        response.raise_for_status()
        return dict(response.json())

    def set_limits(self, key: str, limits: KeyLimits) -> dict[str, Any]:
        """Give a key new limits (and a fresh window) while the sim runs."""
        body = {
            "requests_per_window": limits.requests_per_window,
            "input_tokens_per_window": limits.input_tokens_per_window,
            "output_tokens_per_window": limits.output_tokens_per_window,
            "window_s": limits.window_s,
        }
        response = self.http.put(f"/_sim/keys/{key}", json=body)
        response.raise_for_status()
        return dict(response.json())

    def clear_script(self) -> None:
        self.http.delete("/_sim/script").raise_for_status()

    def clear_faults(self) -> None:
        self.http.delete("/_sim/faults").raise_for_status()

    def clear_requests(self) -> None:
        self.http.delete("/_sim/requests").raise_for_status()

    def reset(self) -> None:
        """Drop scripts, faults, logged requests, rate windows and the cache; restore key limits."""
        self.http.post("/_sim/reset").raise_for_status()

    def close(self) -> None:
        self.http.close()

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        response = self.http.post(path, json=body)
        if response.status_code != 200:
            raise ValueError(f"{path}: {response.status_code} {response.text}")
        return dict(response.json())


@contextlib.contextmanager
def running_sim(config: SimConfig | None = None) -> Iterator[SimHandle]:
    """Serve a fresh sim on a free loopback port for the duration of the block."""
    app = create_app(config or SimConfig())
    with serve_in_thread(app) as server:
        handle = SimHandle(server.url, app.state.sim)
        try:
            yield handle
        finally:
            handle.close()


def _response(item: ScriptItem) -> dict[str, Any]:
    if isinstance(item, str):
        return {"content": [{"type": "text", "text": item}]}
    if isinstance(item, list):
        return {"content": item}
    return item
