"""The gateway's endpoints: each reads its dialect, runs the attempt loop, answers, records.

Stages in order for ``POST /v1/messages`` and ``POST /v1/chat/completions``: authenticate → read
the body (bounded) → parse what routing needs → the model chain (aliases, fallbacks) → attempt
loop (lease, send passthrough or translated, retry) → answer (whole or relayed stream) → record.
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
from kestrel.edge.attempts import AttemptLoop, Call, Opened, Reply
from kestrel.edge.auth import ClientAuth
from kestrel.edge.demote import assemble_message, force_stream
from kestrel.edge.dialects import anthropic
from kestrel.edge.dialects.clients import ANTHROPIC, OPENAI, ClientDialect
from kestrel.edge.dialects.openai import render_models
from kestrel.edge.errors import GatewayError, MethodNotAllowed, NotFound, RequestTooLarge
from kestrel.edge.exchange import Exchange
from kestrel.edge.headers import as_text, client_response_headers, upstream_request_headers
from kestrel.edge.pipes import OpenAIUsageTap
from kestrel.edge.providers.registry import catalog_for, codec_for
from kestrel.edge.relay import Publish, RawResponse, StreamRelay
from kestrel.edge.signatures import SignatureStore
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
        signatures: SignatureStore,
    ) -> None:
        self._config = config
        self._edge = config.edge
        self._routing = config.routing
        self._auth = ClientAuth(config.auth)
        self._scheduler = scheduler
        self._upstreams = upstreams
        self._client = client
        self._publish = publish
        accounts = {a.id: a for a in config.accounts}
        catalog = catalog_for(config.routing)
        codecs = {a.id: codec_for(a, catalog) for a in config.accounts}
        self._loop = AttemptLoop(
            scheduler, upstreams, accounts, codecs, client, config.edge, config.scheduler, signatures, catalog
        )
        self.draining = False

    # -- endpoints -------------------------------------------------------------------------

    async def messages(self, request: Request) -> Any:
        return await self._handle(request, self._messages, ANTHROPIC)

    async def chat_completions(self, request: Request) -> Any:
        return await self._handle(request, self._chat_completions, OPENAI)

    async def count_tokens(self, request: Request) -> Any:
        return await self._handle(request, self._count_tokens, ANTHROPIC)

    async def models(self, request: Request) -> Any:
        return await self._handle(request, self._models, _dialect_of_models_call(request))

    async def not_found(self, request: Request) -> Any:
        async def unknown(exchange: Exchange, request: Request) -> Any:
            raise NotFound(f"{request.method} {request.url.path}: no such endpoint")

        return await self._handle(request, unknown, ANTHROPIC)

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

    async def _handle(
        self, request: Request, endpoint: Callable[[Exchange, Request], Any], dialect: ClientDialect
    ) -> Any:
        scope = request.scope
        exchange = Exchange.begin(scope["method"], scope["path"], scope["query_string"], scope["headers"])
        exchange.event.dialect = dialect.name
        try:
            exchange.event.client_key_id = self._auth.authenticate(exchange.headers)
            return await endpoint(exchange, request)
        except GatewayError as error:
            return self._fail(exchange, error, dialect)
        except Exception as exc:  # a bug must still answer in the client's dialect and be recorded
            _log.exception("unhandled error in %s %s", scope["method"], scope["path"])
            return self._fail(exchange, GatewayError(f"internal error in the gateway ({type(exc).__name__})"), dialect)

    async def _messages(self, exchange: Exchange, request: Request) -> Any:
        _require(request, "POST")
        body = await self._read_body(request)
        parsed = anthropic.parse_messages(body, exchange.headers)
        demote = self._edge.demote_non_streaming and not parsed.stream
        call = Call(
            ANTHROPIC,
            force_stream(body) if demote else body,
            self._routing.chain(parsed.model),
            parsed.model,
            parsed.stream,
            parsed.session_id,
            upstream_stream=True if demote else None,
        )
        return await self._serve(exchange, call, demote)

    async def _chat_completions(self, exchange: Exchange, request: Request) -> Any:
        _require(request, "POST")
        body = await self._read_body(request)
        canonical = OPENAI.parse(body)
        session = exchange.headers.get(anthropic.FALLBACK_SESSION_HEADER, "") or canonical.user
        call = Call(OPENAI, body, self._routing.chain(canonical.model), canonical.model, canonical.stream, session)
        call._canonical = canonical
        return await self._serve(exchange, call, demote=False)

    async def _count_tokens(self, exchange: Exchange, request: Request) -> Any:
        _require(request, "POST")
        body = await self._read_body(request)
        parsed = anthropic.parse_messages(body, exchange.headers, count_tokens=True)
        call = Call(ANTHROPIC, body, self._routing.chain(parsed.model), parsed.model, False, "", count_tokens=True)
        return await self._serve(exchange, call, demote=False)

    async def _serve(self, exchange: Exchange, call: Call, demote: bool) -> Any:
        event = exchange.event
        event.requested_model = event.served_model = call.requested_model
        event.stream = call.stream
        event.session_id = call.session_id
        result = await self._loop.run(exchange, call)
        if isinstance(result, Reply):
            return self._reply(exchange, result)
        if demote and not result.translated:
            return await self._reassembled(exchange, result, call.session_id)
        if call.stream:
            return StreamRelay(
                exchange, result, call.session_id, self._scheduler, self._publish, self._edge.max_retry_after_seconds
            )
        return await self._whole(exchange, result, call.session_id)

    async def _models(self, exchange: Exchange, request: Request) -> Any:
        _require(request, "GET")
        dialect = _dialect_of_models_call(request)
        accounts = self._config.accounts
        names = sorted({m for a in accounts for m in a.models if not _is_pattern(m)} | set(self._routing.aliases))
        open_ended = [
            a for a in accounts if a.provider == "anthropic" and (not a.models or any(map(_is_pattern, a.models)))
        ]
        if open_ended:
            # Some account serves models we cannot name: its upstream knows which.
            fetched = await self._fetch_models(exchange, min(open_ended, key=lambda a: a.priority).id)
            if fetched is not None and dialect is ANTHROPIC:
                return self._respond(exchange, 200, fetched[1], fetched[0])
            if fetched is not None:
                names = sorted(set(names) | _model_ids(fetched[0]))
        one = request.path_params.get("model_id")
        if dialect is OPENAI:
            if one is not None and one not in names:
                raise NotFound(f"model: {one}")
            body = render_models([one] if one is not None else names)
            if one is not None:
                body = orjson.dumps(orjson.loads(body)["data"][0])
            return self._respond(exchange, 200, [_JSON], body)
        return self._respond(exchange, 200, [_JSON], _model_list(names, one))

    # -- answering -------------------------------------------------------------------------

    async def _whole(self, exchange: Exchange, opened: Opened, session_id: str) -> RawResponse:
        await self._complete(opened, session_id)
        if opened.translated:
            headers = [_JSON]
        else:
            headers = client_response_headers(opened.response.raw_headers, self._edge.max_retry_after_seconds)
        opened.tap.record(exchange.event)
        return self._respond(exchange, opened.response.status_code, headers, opened.body)

    async def _reassembled(self, exchange: Exchange, opened: Opened, session_id: str) -> RawResponse:
        """Serve a non-streaming request from an upstream stream (``edge.demote_non_streaming``)."""
        assert opened.pipe is not None and opened.chunks is not None
        frames = [opened.body]
        try:
            async for chunk in opened.chunks:
                frames.append(opened.pipe.feed(chunk))
        except UpstreamError as exc:
            await opened.response.aclose()
            await self._scheduler.complete(opened.lease, Completion(Outcome.SERVER_ERROR, session_id=session_id))
            opened.attempt.error = exc.kind
            raise GatewayError(f"upstream stream interrupted: {exc}") from None
        body, status = assemble_message(b"".join(frames) + opened.pipe.finish())
        await self._complete(opened, session_id, outcome_for_status(status))
        opened.pipe.record(exchange.event)
        headers = [
            (k, v)
            for k, v in client_response_headers(opened.response.raw_headers, self._edge.max_retry_after_seconds)
            if k != b"content-type"
        ]
        return self._respond(exchange, status, [*headers, _JSON], body)

    async def _complete(self, opened: Opened, session_id: str, outcome: Outcome = Outcome.SUCCESS) -> None:
        await self._scheduler.complete(
            opened.lease,
            Completion(
                outcome,
                http_status=opened.response.status_code,
                rate_limit_headers=rate_limit_headers(as_text(opened.response.raw_headers)),
                usage=opened.tap.usage(),
                session_id=session_id,
            ),
        )

    def _reply(self, exchange: Exchange, reply: Reply) -> RawResponse:
        dialect = OPENAI if exchange.event.dialect == "openai" else ANTHROPIC
        tap = UsageTap() if dialect is ANTHROPIC else OpenAIUsageTap()
        tap.feed_message(reply.body)
        tap.record(exchange.event)
        if reply.translated:
            headers = list(reply.headers)
        else:
            headers = client_response_headers(reply.headers, self._edge.max_retry_after_seconds)
        return self._respond(exchange, reply.status, headers, reply.body)

    def _fail(self, exchange: Exchange, error: GatewayError, dialect: ClientDialect) -> RawResponse:
        headers = [_JSON]
        if error.retry_after_s is not None:
            headers.append((b"retry-after", str(error.retry_after_s).encode()))
        event = exchange.event
        event.error_type, event.error_message = error.kind, error.message
        status, body = dialect.error_body(error.status, error.kind, error.message, exchange.request_id)
        return self._respond(exchange, status, headers, body)

    def _respond(self, exchange: Exchange, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> RawResponse:
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

    async def _fetch_models(
        self, exchange: Exchange, account_id: str
    ) -> tuple[bytes, list[tuple[bytes, bytes]]] | None:
        """An Anthropic upstream's own model list (body, headers for the client); None when unavailable."""
        upstream = self._upstreams[account_id]
        headers = upstream_request_headers(exchange.raw_headers, upstream.credential)
        if "anthropic-version" not in exchange.headers:  # an OpenAI client asking
            headers.append((b"anthropic-version", b"2023-06-01"))
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
        return body, client_response_headers(response.raw_headers, self._edge.max_retry_after_seconds)


def _model_ids(body: bytes) -> set[str]:
    try:
        data = orjson.loads(body).get("data") or []
    except (orjson.JSONDecodeError, AttributeError):
        return set()
    return {m["id"] for m in data if isinstance(m, dict) and isinstance(m.get("id"), str)}


def _require(request: Request, method: str) -> None:
    if request.method != method:
        raise MethodNotAllowed(f"{request.method} is not allowed on {request.url.path}; use {method}")


def _dialect_of_models_call(request: Request) -> ClientDialect:
    """OpenAI clients send a bearer token and no ``anthropic-version``; Anthropic SDKs always send it."""
    headers = request.headers
    if "anthropic-version" not in headers and headers.get("authorization", "")[:7].lower() == "bearer ":
        return OPENAI
    return ANTHROPIC


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
