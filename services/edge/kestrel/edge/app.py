"""The edge as an ASGI app: the composition root for one edge process.

``create_app`` takes everything the edge talks to (a scheduler, an event publisher, optionally an
upstream transport) so the same app runs in ``kestrel up`` with in-process adapters and in the
cluster with remote ones.

The proxy routes are dispatched by a dict lookup straight to the gateway, in front of FastAPI:
its middleware stack costs more per request than the whole passthrough budget. FastAPI keeps
the lifespan and everything that is not on the hot path (the admin API, later).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from kestrel.common.config import KestrelConfig
from kestrel.common.events import RequestEvent
from kestrel.edge.gateway import Gateway
from kestrel.edge.http import FastTransport
from kestrel.edge.metrics import EdgeMetrics
from kestrel.edge.signatures import MemorySignatureStore, SignatureStore
from kestrel.edge.upstream import UpstreamTransport, prepare_upstreams
from kestrel.scheduler.contract import LeaseClient

_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
Handler = Callable[[Request], Awaitable[Any]]


class EdgeApp:
    """Hot routes by exact path (and the models prefix) to the gateway; the rest to FastAPI."""

    def __init__(self, gateway: Gateway, fallback: FastAPI, metrics: EdgeMetrics) -> None:
        self.gateway = gateway
        self.fallback = fallback
        self.metrics = metrics
        self.state = fallback.state
        self._routes: dict[str, Handler] = {
            "/v1/messages": gateway.messages,
            "/v1/messages/count_tokens": gateway.count_tokens,
            "/v1/chat/completions": gateway.chat_completions,
            "/v1/models": gateway.models,
        }

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            handler = self._routes.get(scope["path"])
            if handler is not None:
                response = await handler(Request(scope, receive))
                await response(scope, receive, send)
                return
        await self.fallback(scope, receive, send)


def create_app(
    config: KestrelConfig,
    scheduler: LeaseClient,
    publish: Callable[[RequestEvent], None],
    *,
    transport: UpstreamTransport | None = None,
    resources: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
    metrics: EdgeMetrics | None = None,
    signatures: SignatureStore | None = None,
) -> EdgeApp:
    """Build the edge app.

    ``resources`` is entered before the app serves and left after its last request: the
    embedded mode opens the logger there, so events of in-flight requests are still written.
    ``signatures`` defaults to a store in this process (``kestrel up``); a cluster passes Redis.
    """
    client = transport if transport is not None else FastTransport(config.edge)
    metrics = metrics if metrics is not None else EdgeMetrics()
    registry = CollectorRegistry()
    registry.register(metrics)

    def record(event: RequestEvent) -> None:
        metrics.observe(event)
        publish(event)

    if signatures is None:
        signatures = MemorySignatureStore(ttl_seconds=config.edge.signature_ttl_seconds)
    gateway = Gateway(config, scheduler, prepare_upstreams(config.accounts), client, record, signatures)

    async def scrape(request: Request) -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as stack:
            if resources is not None:
                await stack.enter_async_context(resources())
            try:
                yield
            finally:
                gateway.draining = True
                await client.aclose()

    app = FastAPI(title="Kestrel", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.router.routes.extend(
        [
            Route("/v1/models/{model_id:path}", gateway.models, methods=_ANY),
            Route("/", gateway.probe, methods=["GET", "HEAD"]),
            Route("/api/hello", gateway.probe, methods=["GET", "HEAD"]),
            Route("/livez", gateway.livez, methods=["GET", "HEAD"]),
            Route("/readyz", gateway.readyz, methods=["GET", "HEAD"]),
            Route("/metrics", scrape, methods=["GET"]),
            Route("/{path:path}", gateway.not_found, methods=_ANY),
        ]
    )
    return EdgeApp(gateway, app, metrics)
