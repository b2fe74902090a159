"""The attempt loop: lease an account, send, and move on while nothing reached the client.

Models are tried in the order of the request's chain (the model asked for, then its fallbacks);
for each, accounts are tried until one answers. Rate limits, overloads, 5xx, rejected credentials
and connect errors go back to the scheduler as outcomes and the next account is tried. Only the
last model of the chain waits (up to ``scheduler.max_wait_seconds``) for a busy account: earlier
ones fall back at once.

Each attempt is either passthrough (the account speaks the client's dialect: bytes forwarded, only
``model`` rewritten when the account names it differently, unless the body asks that other model
for something it refuses: ``model_fit``) or translated (the canonical request
encoded by the account's codec, the answer decoded and rendered in the client's dialect). The
loop ends with an open upstream response (``Opened``; the relay takes it from there) or a final
answer (``Reply``): an upstream error in the client's dialect, or Kestrel's own error.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import orjson

from kestrel.common.config import AccountConfig, EdgeConfig, SchedulerConfig
from kestrel.common.events import Attempt
from kestrel.edge.canonical import Request
from kestrel.edge.dialects.anthropic import replace_model
from kestrel.edge.dialects.clients import ClientDialect
from kestrel.edge.errors import GatewayError, NotFound, RateLimited, UpstreamUnavailable
from kestrel.edge.exchange import Exchange
from kestrel.edge.headers import as_text, upstream_request_headers
from kestrel.edge.model_fit import fits_as_is
from kestrel.edge.pipes import EventTap, OpenAIUsageTap, PassthroughPipe, Pipe, TranslatedPipe
from kestrel.edge.providers.base import Codec, StreamDecoder
from kestrel.edge.providers.capabilities import ModelCatalog
from kestrel.edge.providers.openai import OpenAICodec, estimate_input_tokens
from kestrel.edge.signatures import SignatureStore
from kestrel.edge.signatures.keep import KEEPERS
from kestrel.edge.tap import UsageTap
from kestrel.edge.upstream import Upstream, UpstreamError, UpstreamResponse, UpstreamTransport
from kestrel.scheduler.contract import (
    Completion,
    Exhausted,
    ExhaustedReason,
    Lease,
    LeaseClient,
    LeaseRequest,
    Outcome,
)
from kestrel.scheduler.leases import outcome_for_status
from kestrel.scheduler.ratelimits import rate_limit_headers, retry_after_seconds

_RETRYABLE = frozenset({Outcome.RATE_LIMITED, Outcome.OVERLOADED, Outcome.SERVER_ERROR, Outcome.AUTH_ERROR})
_ERROR_CLASS = {
    Outcome.RATE_LIMITED: "rate_limited",
    Outcome.OVERLOADED: "overloaded",
    Outcome.SERVER_ERROR: "server_error",
    Outcome.AUTH_ERROR: "auth_error",
    Outcome.CLIENT_ERROR: "client_error",
}
_STATUS_OF_KIND = {"overloaded_error": 529, "rate_limit_error": 429}
_JSON = (b"content-type", b"application/json")


def outcome_for_error_event(kind: str) -> Outcome:
    return {"overloaded_error": Outcome.OVERLOADED, "rate_limit_error": Outcome.RATE_LIMITED}.get(
        kind, Outcome.SERVER_ERROR
    )


@dataclass(slots=True)
class Call:
    """One client request as the attempt loop needs it."""

    dialect: ClientDialect
    body: bytes
    """The body exactly as the client sent it."""
    chain: tuple[str, ...]
    """Models to try in order: the one asked for (aliases resolved), then its fallbacks."""
    requested_model: str
    """The ``model`` value in ``body``."""
    stream: bool
    session_id: str
    upstream_stream: bool | None = None
    """Ask a passthrough upstream for a stream although the client did not (demotion)."""
    count_tokens: bool = False
    _canonical: Request | None = field(default=None, repr=False)

    def canonical(self) -> Request:
        """The body in the canonical model, parsed once, only when an attempt needs translation."""
        if self._canonical is None:
            self._canonical = self.dialect.parse(self.body)
        return self._canonical


@dataclass(slots=True)
class Opened:
    """A 2xx upstream response, its lease still held."""

    lease: Lease
    attempt: Attempt
    response: UpstreamResponse
    body: bytes
    """Non-streaming: the whole answer in the client's dialect. Streams: the first bytes to send."""
    tap: UsageTap | EventTap | Pipe
    """Records usage, stop reason and errors of what was answered."""
    translated: bool
    pipe: Pipe | None = None
    chunks: AsyncIterator[bytes] | None = None
    """The rest of a stream, after the peeked events."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A final answer that is not a success, in the client's dialect."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    translated: bool = False


class AttemptLoop:
    def __init__(
        self,
        scheduler: LeaseClient,
        upstreams: dict[str, Upstream],
        accounts: dict[str, AccountConfig],
        codecs: dict[str, Codec],
        client: UpstreamTransport,
        edge: EdgeConfig,
        scheduling: SchedulerConfig,
        signatures: SignatureStore,
        catalog: ModelCatalog,
    ) -> None:
        self._scheduler = scheduler
        self._catalog = catalog
        self._signatures = signatures
        self._upstreams = upstreams
        self._accounts = accounts
        self._codecs = codecs
        self._client = client
        self._max_wait = scheduling.max_wait_seconds
        self._max_retry_after = edge.max_retry_after_seconds

    async def run(self, exchange: Exchange, call: Call) -> Opened | Reply:
        deadline = time.monotonic() + self._max_wait
        last: Reply | UpstreamError | None = None
        exhausted: Exhausted | None = None
        exhausted_model = call.chain[0]
        for position, model in enumerate(call.chain):
            final = position == len(call.chain) - 1
            tried: set[str] = set()
            while True:
                granted = await self._scheduler.acquire(
                    LeaseRequest(
                        request_id=exchange.request_id,
                        model=model,
                        session_id=call.session_id,
                        client_key_id=exchange.event.client_key_id,
                        exclude_accounts=frozenset(tried),
                        max_wait_s=max(0.0, deadline - time.monotonic()) if final else 0.0,
                    )
                )
                if isinstance(granted, Exhausted):
                    if granted.reason is not ExhaustedReason.NO_ACCOUNT or exhausted is None:
                        exhausted, exhausted_model = granted, model
                    break
                tried.add(granted.account_id)
                result = await self._attempt(exchange, call, model, granted)
                if isinstance(result, Opened):
                    return result
                if isinstance(result, UpstreamError):
                    last = result
                    continue
                if outcome_for_status(result.status) not in _RETRYABLE:
                    return result
                last = result
        assert exhausted is not None
        return self._give_up(exhausted_model, exhausted, last, call, exchange)

    async def _attempt(
        self, exchange: Exchange, call: Call, model: str, lease: Lease
    ) -> Opened | Reply | UpstreamError:
        attempt = Attempt(account_id=lease.account_id, model=model)
        exchange.attempts.append(attempt)
        exchange.event.account_id = lease.account_id
        exchange.event.served_model = model
        started = time.perf_counter()
        try:
            result = await self._try(exchange, call, model, lease, attempt)
        except UpstreamError as exc:
            attempt.error = exc.kind
            attempt.duration_ms = (time.perf_counter() - started) * 1000
            outcome = Outcome.CONNECT_ERROR if exc.kind == "connect_error" else Outcome.SERVER_ERROR
            await self._scheduler.complete(lease, Completion(outcome, session_id=call.session_id))
            return exc
        except BaseException:
            await self._scheduler.complete(lease, Completion(Outcome.CANCELLED, session_id=call.session_id))
            raise
        attempt.duration_ms = (time.perf_counter() - started) * 1000
        if isinstance(result, Opened):
            return result
        outcome = outcome_for_status(result.status)
        attempt.error = _ERROR_CLASS.get(outcome, "")
        headers = as_text(result.headers)
        await self._scheduler.complete(
            lease,
            Completion(
                outcome,
                http_status=result.status,
                retry_after_s=retry_after_seconds(headers, time.time()),
                rate_limit_headers=rate_limit_headers(headers),
                session_id=call.session_id,
            ),
        )
        return result

    async def _try(self, exchange: Exchange, call: Call, model: str, lease: Lease, attempt: Attempt) -> Opened | Reply:
        upstream = self._upstreams[lease.account_id]
        account = self._accounts[lease.account_id]
        upstream_model = account.upstream_model(model)
        if upstream.provider == call.dialect.name and (
            upstream_model == call.requested_model
            or fits_as_is(call.dialect.name, call.body, self._catalog.caps(upstream_model))
        ):
            return await self._passthrough(exchange, call, upstream, upstream_model, lease, attempt)
        if call.count_tokens:
            return self._count_locally(call, lease, attempt)
        return await self._translated(exchange, call, upstream, upstream_model, lease, attempt)

    async def _passthrough(
        self, exchange: Exchange, call: Call, upstream: Upstream, model: str, lease: Lease, attempt: Attempt
    ) -> Opened | Reply:
        body = call.body if model == call.requested_model else replace_model(call.body, model)
        target = exchange.target
        codec = self._codecs[upstream.account_id]
        if isinstance(codec, OpenAICodec):  # compatible services mount chat completions elsewhere
            target = codec.preset.path
        headers = upstream_request_headers(exchange.raw_headers, upstream.credential)
        response = await self._client.open(upstream, "POST", target, headers, body)
        attempt.status = response.status_code
        stream = call.stream if call.upstream_stream is None else call.upstream_stream
        if response.status_code >= 300 or not stream:
            raw = await response.read()
            if response.status_code >= 300:
                return Reply(response.status_code, response.raw_headers, raw)
            tap = UsageTap() if call.dialect.name == "anthropic" else OpenAIUsageTap()
            tap.feed_message(raw)
            return Opened(lease, attempt, response, raw, tap, translated=False)
        pipe = PassthroughPipe(call.dialect.name, call.dialect.error_frame)
        return await self._peek(response, lease, attempt, pipe, call, translated=False)

    async def _translated(
        self, exchange: Exchange, call: Call, upstream: Upstream, model: str, lease: Lease, attempt: Attempt
    ) -> Opened | Reply:
        request = call.canonical()
        codec = self._codecs[upstream.account_id]
        keeper = KEEPERS.get(codec.kind)
        if keeper is not None and (missing := keeper.missing(request)):
            request = keeper.restore(request, await self._signatures.recall(missing))
        encoded = codec.encode(dataclasses.replace(request, stream=call.stream), model)
        headers = [*encoded.headers, upstream.credential, (b"accept-encoding", b"identity")]
        response = await self._client.open(upstream, "POST", encoded.path, headers, encoded.body)
        attempt.status = response.status_code
        if response.status_code >= 300:
            raw = await response.read()
            failure = codec.decode_error(response.status_code, response.raw_headers, raw)
            return self._reply(
                call,
                exchange,
                failure.status,
                failure.kind,
                failure.message,
                failure.retry_after_s,
                response.raw_headers,
            )
        if not call.stream:
            raw = await response.read()
            decoded = codec.decode_response(raw)
            if keeper is not None and (kept := keeper.kept(decoded)):
                self._signatures.remember(kept)
            tap = EventTap()
            tap.response(decoded)
            body = call.dialect.render_response(decoded, decoded.model or model)
            return Opened(lease, attempt, response, body, tap, translated=True)
        decoder: StreamDecoder = codec.stream_decoder(request)
        if keeper is not None:
            decoder = keeper.watching(decoder, self._signatures)
        pipe = TranslatedPipe(decoder, call.dialect.stream_renderer(request, model))
        return await self._peek(response, lease, attempt, pipe, call, translated=True)

    async def _peek(
        self, response: UpstreamResponse, lease: Lease, attempt: Attempt, pipe: Pipe, call: Call, *, translated: bool
    ) -> Opened | Reply:
        """Hold the response until its first bytes show the stream really started."""
        first = b""
        chunks = aiter(response.iter_chunks())
        try:
            async for chunk in chunks:
                first = pipe.feed(chunk)
                if first:
                    break
        except BaseException:
            await response.aclose()
            raise
        kind = pipe.failed_early()
        if kind:
            # An error before any content: nothing reached the client, so another account may serve it.
            await response.aclose()
            status = _STATUS_OF_KIND.get(kind, 500)
            attempt.status = status
            status, body = call.dialect.error_body(status, kind, "upstream failed before the stream started", "")
            return Reply(status, [_JSON], body, translated)
        if not first and not translated:
            await response.aclose()
            raise _EmptyStream("upstream closed the stream before any event")
        return Opened(lease, attempt, response, first, pipe, translated, pipe, chunks)

    def _count_locally(self, call: Call, lease: Lease, attempt: Attempt) -> Reply:
        """count_tokens for an upstream without one: an estimate, good enough for a context meter."""
        attempt.status = 200
        count = estimate_input_tokens(call.canonical())
        return Reply(200, [_JSON], orjson.dumps({"input_tokens": count}), translated=True)

    def _reply(
        self,
        call: Call,
        exchange: Exchange,
        status: int,
        kind: str,
        message: str,
        retry_after_s: float,
        upstream_headers: list[tuple[bytes, bytes]],
    ) -> Reply:
        status_out, body = call.dialect.error_body(status, kind, message, exchange.request_id)
        headers = [_JSON]
        headers += [
            (k, v)
            for k, v in upstream_headers
            if k.lower().startswith((b"retry-after", b"x-ratelimit-", b"anthropic-ratelimit-"))
        ]
        if retry_after_s and not any(k.lower() == b"retry-after" for k, _ in headers):
            headers.append((b"retry-after", str(math.ceil(retry_after_s)).encode()))
        return Reply(status_out, headers, body, translated=True)

    def _give_up(
        self, model: str, exhausted: Exhausted, last: Reply | UpstreamError | None, call: Call, exchange: Exchange
    ) -> Reply:
        if exhausted.reason is ExhaustedReason.NO_ACCOUNT and last is None:
            raise NotFound(f"model: no account serves {model!r}")
        rate_limited = isinstance(last, Reply) and last.status == 429
        if exhausted.reason is ExhaustedReason.ALL_BUSY or rate_limited or last is None:
            raise self._rate_limited(model, exhausted)
        if isinstance(last, Reply):
            return last
        raise UpstreamUnavailable(f"no upstream could serve {model!r}: {last}")

    def _rate_limited(self, model: str, exhausted: Exhausted) -> GatewayError:
        retry = max(1, math.ceil(exhausted.retry_after_s)) if exhausted.retry_after_s else 1
        states = ", ".join(
            f"{a.account_id} ({a.state}" + (f", free in {math.ceil(a.free_in_s)}s)" if a.free_in_s else ")")
            for a in exhausted.accounts
        )
        message = (
            f"all {len(exhausted.accounts)} accounts serving {model!r} are rate-limited or busy"
            f" after waiting up to {self._max_wait:g}s: {states}. Retry in {retry}s."
        )
        return RateLimited(message, retry_after_s=min(retry, self._max_retry_after))


class _EmptyStream(UpstreamError):
    kind = "empty_stream"
