"""The edge as an ASGI app: the composition root for one edge process.

``create_app`` takes everything the edge talks to (a scheduler, an event publisher) so the same
app runs in ``kestrel up`` with in-process adapters and in the cluster with remote ones.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from starlette.routing import Route

from kestrel.common.config import KestrelConfig
from kestrel.common.events import RequestEvent
from kestrel.edge.gateway import Gateway
from kestrel.edge.upstream import HttpxTransport, UpstreamTransport, prepare_upstreams
from kestrel.scheduler.contract import LeaseClient

_ANY = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_app(
    config: KestrelConfig,
    scheduler: LeaseClient,
    publish: Callable[[RequestEvent], None],
    *,
    transport: UpstreamTransport | None = None,
    resources: Callable[[], AbstractAsyncContextManager[Any]] | None = None,
) -> FastAPI:
    """Build the edge app.

    ``resources`` is entered before the app serves and left after its last request: the
    embedded mode opens the logger there, so events of in-flight requests are still written.
    """
    client = transport if transport is not None else HttpxTransport(config.edge)
    gateway = Gateway(config, scheduler, prepare_upstreams(config.accounts), client, publish)

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
    app.state.gateway = gateway
    # The proxy routes are plain Starlette routes: no validation layer on the hot path.
    app.router.routes.extend(
        [
            Route("/v1/messages", gateway.messages, methods=_ANY),
            Route("/v1/messages/count_tokens", gateway.count_tokens, methods=_ANY),
            Route("/v1/models", gateway.models, methods=_ANY),
            Route("/v1/models/{model_id:path}", gateway.models, methods=_ANY),
            Route("/", gateway.probe, methods=["GET", "HEAD"]),
            Route("/api/hello", gateway.probe, methods=["GET", "HEAD"]),
            Route("/livez", gateway.livez, methods=["GET", "HEAD"]),
            Route("/readyz", gateway.readyz, methods=["GET", "HEAD"]),
            Route("/{path:path}", gateway.not_found, methods=_ANY),
        ]
    )
    return app
