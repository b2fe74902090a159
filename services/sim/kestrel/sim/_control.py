"""The ``/_sim`` control API that tests, benchmarks and the demo use to steer the sim.

Endpoints (JSON in, JSON out; no auth, as the sim only ever listens on a test network):

* ``POST /_sim/script`` ``{"key"?: str, "responses": [{"content": [...], "stop_reason"?: str}]}``
  -> ``{"queued": n, "pending": {...}}``; ``DELETE /_sim/script[?key=K]`` -> ``{"cleared": n}``.
* ``POST /_sim/faults`` ``{"key"?, "kind", "count"?, "after_events"?, "stall_s"?,
  "retry_after"?}`` -> ``{"queued": n, "pending": {...}}``; ``DELETE /_sim/faults[?key=K]``.
* ``GET /_sim/requests[?limit=N]`` -> ``{"requests": [entry, ...]}`` oldest first;
  ``DELETE /_sim/requests`` -> ``{"cleared": n}``.
* ``GET /_sim/keys/{key}`` -> the key's limits, current window (``start``, ``reset_at`` in epoch
  seconds, usage) or null, cache entries, pending scripts and faults.
* ``PUT /_sim/keys/{key}`` ``{"requests_per_window"?, "input_tokens_per_window"?,
  "output_tokens_per_window"?, "window_s"?}`` sets a key's limits (and drops its window).
* ``POST /_sim/reset`` clears everything runtime; ``GET /_sim/health`` -> ``{"ok": true}``.

``pending`` maps a key to the number of queued items, the global queue being ``"*"``.

Scripts and faults serve every API alike: the next generation request on the key (Anthropic
Messages, OpenAI chat completions or Gemini generateContent) takes the next item, and scripted
content blocks (Anthropic's ``text``, ``thinking``, ``tool_use`` form) are rendered in that
API's form. ``redacted_thinking`` has no OpenAI or Gemini form and is left out there (its tokens
still count).
"""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request
from starlette.routing import Route

from kestrel.sim._answers import ScriptError, parse_script
from kestrel.sim._faults import FaultError, parse_faults
from kestrel.sim._responses import BytesResponse, error_body
from kestrel.sim._state import Simulator
from kestrel.sim.config import ConfigError, KeyLimits


class ControlApi:
    """Handlers for the ``/_sim`` routes of one simulator."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim

    def routes(self) -> list[Route]:
        return [
            Route("/_sim/health", self.health, methods=["GET"]),
            Route("/_sim/script", self.add_script, methods=["POST"]),
            Route("/_sim/script", self.clear_script, methods=["DELETE"]),
            Route("/_sim/faults", self.add_faults, methods=["POST"]),
            Route("/_sim/faults", self.clear_faults, methods=["DELETE"]),
            Route("/_sim/requests", self.requests, methods=["GET"]),
            Route("/_sim/requests", self.clear_requests, methods=["DELETE"]),
            Route("/_sim/keys/{key:path}", self.key_state, methods=["GET"]),
            Route("/_sim/keys/{key:path}", self.set_key, methods=["PUT"]),
            Route("/_sim/reset", self.reset, methods=["POST"]),
        ]

    async def health(self, request: Request) -> BytesResponse:
        return _ok({"ok": True})

    async def add_script(self, request: Request) -> BytesResponse:
        data = await _json(request)
        if not isinstance(data, dict) or not isinstance(data.get("responses"), list):
            return _bad('body must be {"key"?: str, "responses": [...]}')
        key = data.get("key")
        if key is not None and not isinstance(key, str):
            return _bad("key must be a string")
        try:
            responses = [parse_script(r) for r in data["responses"]]
        except ScriptError as exc:
            return _bad(f"responses: {exc}")
        self.sim.scripts.push(key, responses)
        return _ok({"queued": len(responses), "pending": self.sim.scripts.pending()})

    async def clear_script(self, request: Request) -> BytesResponse:
        key = request.query_params.get("key")
        cleared = self.sim.scripts.clear(key, everything=key is None)
        return _ok({"cleared": cleared})

    async def add_faults(self, request: Request) -> BytesResponse:
        try:
            key, faults = parse_faults(await _json(request))
        except FaultError as exc:
            return _bad(str(exc))
        self.sim.faults.push(key, faults)
        return _ok({"queued": len(faults), "pending": self.sim.faults.pending()})

    async def clear_faults(self, request: Request) -> BytesResponse:
        key = request.query_params.get("key")
        return _ok({"cleared": self.sim.faults.clear(key, everything=key is None)})

    async def requests(self, request: Request) -> BytesResponse:
        raw = request.query_params.get("limit")
        try:
            limit = int(raw) if raw is not None else None
        except ValueError:
            return _bad("limit must be an integer")
        return _ok({"requests": self.sim.log.recent(limit)})

    async def clear_requests(self, request: Request) -> BytesResponse:
        return _ok({"cleared": self.sim.log.clear()})

    async def key_state(self, request: Request) -> BytesResponse:
        return _ok(self.sim.key_state(request.path_params["key"]))

    async def set_key(self, request: Request) -> BytesResponse:
        data = await _json(request)
        if not isinstance(data, dict):
            return _bad("body must be a JSON object of KeyLimits fields")
        try:
            limits = KeyLimits(**data)
        except (TypeError, ConfigError) as exc:
            return _bad(str(exc))
        key = request.path_params["key"]
        self.sim.set_limits(key, limits)
        return _ok(self.sim.key_state(key))

    async def reset(self, request: Request) -> BytesResponse:
        self.sim.reset()
        return _ok({"ok": True})


async def _json(request: Request) -> Any:
    body = await request.body()
    try:
        return orjson.loads(body) if body else None
    except orjson.JSONDecodeError:
        return None


def _ok(data: Any) -> BytesResponse:
    return BytesResponse(200, orjson.dumps(data), [])


def _bad(message: str) -> BytesResponse:
    return BytesResponse(400, error_body("invalid_request_error", message, "req_sim_control"), [])
