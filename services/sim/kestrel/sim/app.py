"""``create_app``: the composition root of one simulator.

It builds the runtime state (``Simulator``) once, hands it to the route groups (the Anthropic
API under ``/v1``, OpenAI's chat completions under ``/v1/chat/completions``, Gemini under
``/v1beta`` and the control API under ``/_sim``) and maps everything else to Anthropic's error
envelope: unknown paths are 404 ``not_found_error``, a wrong method is 405
``invalid_request_error``, and a crash is 500 ``api_error``. Trailing-slash redirects are off:
a redirect is itself a failure for Claude Code's model discovery.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request

from kestrel.sim import _ids
from kestrel.sim._api import AnthropicApi
from kestrel.sim._control import ControlApi
from kestrel.sim._gemini import GeminiApi
from kestrel.sim._openai import OpenAIApi
from kestrel.sim._responses import BytesResponse, error_body
from kestrel.sim._state import Simulator
from kestrel.sim.config import SimConfig


def create_app(
    config: SimConfig | None = None,
    *,
    clock: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> Starlette:
    """An ASGI app playing Anthropic's, OpenAI's and Gemini's APIs; ``app.state.sim`` is its state.

    ``clock`` (epoch seconds, for rate windows and reset headers) and ``monotonic`` (cache
    expiry) are injectable for tests that move time by hand.
    """
    sim = Simulator(config or SimConfig(), clock=clock, monotonic=monotonic)
    openai = OpenAIApi(sim)
    routes = [
        *AnthropicApi(sim, openai).routes(),
        *openai.routes(),
        *GeminiApi(sim).routes(),
        *ControlApi(sim).routes(),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_error, Exception: _crash},
    )
    app.router.redirect_slashes = False
    app.state.sim = sim
    return app


async def _http_error(request: Request, exc: Exception) -> BytesResponse:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 404:
        error_type, message = "not_found_error", f"Not found: {request.method} {request.url.path}"
    elif status == 405:
        error_type, message = "invalid_request_error", f"Method not allowed: {request.method}"
    else:
        error_type, message = "invalid_request_error", str(getattr(exc, "detail", exc))
    return _envelope(status, error_type, message)


async def _crash(request: Request, exc: Exception) -> BytesResponse:
    return _envelope(500, "api_error", "Internal server error")


def _envelope(status: int, error_type: str, message: str) -> BytesResponse:
    rid = _ids.request_id()
    return BytesResponse(status, error_body(error_type, message, rid), [(b"request-id", rid.encode())])
