"""The gateway's endpoints: each reads its dialect, runs the attempt loop, answers, records.

Stages in order for ``POST /v1/messages``: authenticate → read the body (bounded) → parse what
routing needs → attempt loop (lease, send, retry) → answer (whole or relayed stream) → record.
Every path, including failures and unknown routes, ends in exactly one recorded event.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import orjson
from starlette.requests import Request

from kestrel.common.config import KestrelConfig
from kestrel.common.events import Attempt
from kestrel.edge.attempts import AttemptLoop, Opened, Reply, Send
from kestrel.edge.auth import ClientAuth
from kestrel.edge.demote import assemble_message, force_stream
from kestrel.edge.dialects import anthropic
from kestrel.edge.errors import GatewayError, MethodNotAllowed, NotFound, RequestTooLarge
from kestrel.edge.exchange import Exchange
from kestrel.edge.headers import as_text, client_response_headers, upstream_request_headers
from kestrel.edge.relay import Publish, RawResponse, StreamRelay
from kestrel.edge.tap import UsageTap
from kestrel.edge.upstream import Upstream, UpstreamError, UpstreamTransport
from kestrel.scheduler.contract import Completion, LeaseClient, Outcome
from kestrel.scheduler.leases import outcome_for_status
from kestrel.scheduler.ratelimits import rate_limit_headers

_JSON = (b"content-type", b"application/json")
_log = logging.getLogger("kestrel.edge")


class Gateway:
    def __init__(
        self,
        config: KestrelConfig,
        scheduler: LeaseClient,
        upstreams: dict[str, Upstream],
        client: UpstreamTransport,
        publish: Publish,
    ) -> None:
        self._config = config
        self._edge = config.edge
        self._auth = ClientAuth(config.auth)
        self._scheduler = scheduler
        self._upstreams = upstreams
        self._client = client
        self._publish = publish
        self._loop = AttemptLoop(scheduler, upstreams, client, config.edge, config.scheduler)
        self.draining = False

    # -- endpoints -------------------------------------------------------------------------

    async def messages(self, request: Request) -> Any:
        return await self._handle(request, self._messages)

    async def count_tokens(self, request: Request) -> Any:
        return await self._handle(request, self._count_tokens)

    async def models(self, request: Request) -> Any:
        return await self._handle(request, self._models)

    async def not_found(self, request: Request) -> Any:
        async def unknown(exchange: Exchange, request: Request) -> Any:
            raise NotFound(f"{request.method} {request.url.path}: no such endpoint")

        return await self._handle(request, unknown)

    async def probe(self, request: Request) -> Any:
        """Claude Code's warm-up probes (``HEAD /``, ``/api/hello``): answered, not recorded."""
        return RawResponse(200, [_JSON], b"{}")

    async def livez(self, request: Request) -> Any:
        return RawResponse(200, [_JSON], b'{"status":"ok"}')

    async def readyz(self, request: Request) -> Any:
        if self.draining:
            return RawResponse(503, [_JSON], b'{"status":"draining"}')
        return RawResponse(200, [_JSON], b'{"status":"ready"}')

    # -- the pipeline ----------------------------------------------------------------------

    async def _handle(self, request: Request, endpoint: Callable[[Exchange, Request], Any]) -> Any:
        scope = request.scope
        exchange = Exchange.begin(scope["method"], scope["path"], scope["query_string"], scope["headers"])
        try:
            exchange.event.client_key_id = self._auth.authenticate(exchange.headers)
            return await endpoint(exchange, request)
        except GatewayError as error:
            return self._fail(exchange, error)
        except Exception as exc:  # a bug must still answer in the client's dialect and be recorded
            _log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            return self._fail(exchange, GatewayError(f"internal error in the gateway ({type(exc).__name__})"))

    async def _messages(self, exchange: Exchange, request: Request) -> Any:
        if request.method != "POST":
            raise MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}; use POST")
        body = await self._read_body(request)
        parsed = anthropic.parse_messages(body, exchange.headers)
        event = exchange.event
        event.requested_model = event.served_model = parsed.model
        event.stream = parsed.stream
        event.session_id = parsed.session_id
        demote = self._edge.demote_non_streaming and not parsed.stream
        send = Send(parsed.model, parsed.session_id, force_stream(body) if demote else body, parsed.stream or demote)
        result = await self._loop.run(exchange, send)
        if isinstance(result, Reply):
            return self._reply(exchange, result)
        if demote:
            return await self._reassembled(exchange, result, parsed.session_id)
        if parsed.stream:
            return StreamRelay(
                exchange, result, parsed.session_id, self._scheduler, self._publish, self._edge.max_retry_after_seconds
            )
        return await self._whole(exchange, result, parsed.session_id)

    async def _count_tokens(self, exchange: Exchange, request: Request) -> Any:
        if request.method != "POST":
            raise MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}; use POST")
        body = await self._read_body(request)
        parsed = anthropic.parse_messages(body, exchange.headers, count_tokens=True)
        exchange.event.requested_model = exchange.event.served_model = parsed.model
        result = await self._loop.run(exchange, Send(parsed.model, "", body, False))
        if isinstance(result, Reply):
            return self._reply(exchange, result)
        return await self._whole(exchange, result, "")

    async def _models(self, exchange: Exchange, request: Request) -> Any:
        if request.method != "GET":
            raise MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}; use GET")
        accounts = self._config.accounts
        names = sorted({m for a in accounts for m in a.models if not _is_pattern(m)})
        open_ended = [a for a in accounts if not a.models or any(_is_pattern(m) for m in a.models)]
        if open_ended:
            # Some account serves models we cannot name: its upstream knows which.
            forwarded = await self._forward_models(exchange, min(open_ended, key=lambda a: a.priority).id)
            if forwarded is not None:
                return forwarded
        return self._respond(exchange, 200, [_JSON], _model_list(names, request.path_params.get("model_id")))

    # -- answering -------------------------------------------------------------------------

    async def _whole(self, exchange: Exchange, opened: Opened, session_id: str) -> RawResponse:
        tap = UsageTap()
        tap.feed_message(opened.body)
        await self._complete(opened, tap, session_id)
        headers = client_response_headers(opened.response.raw_headers, self._edge.max_retry_after_seconds)
        return self._respond(exchange, opened.response.status_code, headers, opened.body, tap)

    async def _reassembled(self, exchange: Exchange, opened: Opened, session_id: str) -> RawResponse:
        """Serve a non-streaming request from an upstream stream (``edge.demote_non_streaming``)."""
        assert opened.cutter is not None and opened.chunks is not None
        frames = [opened.body]
        try:
            async for chunk in opened.chunks:
                frames.append(opened.cutter.feed(chunk))
        except UpstreamError as exc:
            await opened.response.aclose()
            await self._scheduler.complete(opened.lease, Completion(Outcome.SERVER_ERROR, session_id=session_id))
            opened.attempt.error = exc.kind
            raise GatewayError(f"upstream stream interrupted: {exc}") from None
        body, status = assemble_message(b"".join(frames) + opened.cutter.pending)
        tap = UsageTap()
        tap.feed_message(body)
        await self._complete(opened, tap, session_id, outcome_for_status(status))
        headers = [
            (k, v)
            for k, v in client_response_headers(opened.response.raw_headers, self._edge.max_retry_after_seconds)
            if k != b"content-type"
        ]
        return self._respond(exchange, status, [*headers, _JSON], body, tap)

    async def _complete(
        self, opened: Opened, tap: UsageTap, session_id: str, outcome: Outcome = Outcome.SUCCESS
    ) -> None:
        await self._scheduler.complete(
            opened.lease,
            Completion(
                outcome,
                http_status=opened.response.status_code,
                rate_limit_headers=rate_limit_headers(as_text(opened.response.raw_headers)),
                usage=tap.usage(),
                session_id=session_id,
            ),
        )

    def _reply(self, exchange: Exchange, reply: Reply) -> RawResponse:
        tap = UsageTap()
        tap.feed_message(reply.body)
        headers = client_response_headers(reply.headers, self._edge.max_retry_after_seconds)
        return self._respond(exchange, reply.status, headers, reply.body, tap)

    def _fail(self, exchange: Exchange, error: GatewayError) -> RawResponse:
        headers = [_JSON]
        if error.retry_after_s is not None:
            headers.append((b"retry-after", str(error.retry_after_s).encode()))
        event = exchange.event
        event.error_type, event.error_message = error.kind, error.message
        return self._respond(exchange, error.status, headers, anthropic.error_body(error, exchange.request_id))

    def _respond(
        self,
        exchange: Exchange,
        status: int,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        tap: UsageTap | None = None,
    ) -> RawResponse:
        if tap is not None:
            tap.record(exchange.event)
            if tap.model:
                exchange.event.served_model = tap.model
        headers.append((b"x-kestrel-request-id", exchange.request_id.encode()))
        exchange.mark_first_byte()
        self._publish(exchange.finish(status))
        return RawResponse(status, headers, body)

    async def _read_body(self, request: Request) -> bytes:
        limit = self._edge.max_body_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise RequestTooLarge(f"request body is {int(declared)} bytes; the limit is {limit} bytes")
        chunks = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request body exceeds the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)

    async def _forward_models(self, exchange: Exchange, account_id: str) -> RawResponse | None:
        """The upstream's own model list, relayed; None when it cannot be had."""
        upstream = self._upstreams[account_id]
        headers = upstream_request_headers(exchange.raw_headers, upstream.credential)
        started = time.perf_counter()
        try:
            response = await self._client.open(upstream, "GET", exchange.target, headers, b"")
            body = await response.read()
        except (UpstreamError, OSError):
            return None
        exchange.attempts.append(
            Attempt(account_id, "", response.status_code, "", (time.perf_counter() - started) * 1000)
        )
        if response.status_code != 200:
            return None
        headers_out = client_response_headers(response.raw_headers, self._edge.max_retry_after_seconds)
        return self._respond(exchange, 200, headers_out, body)


def _is_pattern(model: str) -> bool:
    return any(c in model for c in "*?[")


def _model_list(names: list[str], one: str | None) -> bytes:
    entries = [{"type": "model", "id": n, "display_name": n, "created_at": "2025-01-01T00:00:00Z"} for n in names]
    if one is not None:
        for entry in entries:
            if entry["id"] == one:
                return orjson.dumps(entry)
        raise NotFound(f"model: {one}")
    return orjson.dumps(
        {
            "data": entries,
            "has_more": False,
            "first_id": names[0] if names else None,
            "last_id": names[-1] if names else None,
        }
    )
