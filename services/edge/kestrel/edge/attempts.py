"""The attempt loop: lease an account, send, and move on while nothing reached the client.

Rate limits, overloads, 5xx, rejected credentials and connect errors go back to the scheduler as
outcomes and the next account is tried. The loop ends with either an open upstream response
(the relay takes it from there) or a final answer: an upstream error passed through unchanged,
or Kestrel's own error when no account is left.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import orjson

from kestrel.common.config import EdgeConfig, SchedulerConfig
from kestrel.common.events import Attempt
from kestrel.edge.errors import GatewayError, NotFound, RateLimited, UpstreamUnavailable
from kestrel.edge.exchange import Exchange
from kestrel.edge.headers import as_text, upstream_request_headers
from kestrel.edge.sse import FrameCutter, iter_events
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


def outcome_for_error_event(kind: str) -> Outcome:
    return {"overloaded_error": Outcome.OVERLOADED, "rate_limit_error": Outcome.RATE_LIMITED}.get(
        kind, Outcome.SERVER_ERROR
    )


@dataclass(slots=True)
class Opened:
    """A 2xx upstream response, its lease still held."""

    lease: Lease
    attempt: Attempt
    response: UpstreamResponse
    body: bytes
    """The whole body for non-streaming requests; the first whole SSE events for streams."""
    cutter: FrameCutter | None
    chunks: AsyncIterator[bytes] | None = None
    """The rest of a stream, after the peeked events."""


@dataclass(frozen=True, slots=True)
class Reply:
    """A final upstream answer that is not a success, passed to the client unchanged."""

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes


@dataclass(frozen=True, slots=True)
class Send:
    """What to send upstream for one request."""

    model: str
    session_id: str
    body: bytes
    stream: bool
    method: str = "POST"


class AttemptLoop:
    def __init__(
        self,
        scheduler: LeaseClient,
        upstreams: dict[str, Upstream],
        client: UpstreamTransport,
        edge: EdgeConfig,
        scheduling: SchedulerConfig,
    ) -> None:
        self._scheduler = scheduler
        self._upstreams = upstreams
        self._client = client
        self._max_wait = scheduling.max_wait_seconds
        self._max_retry_after = edge.max_retry_after_seconds

    async def run(self, exchange: Exchange, send: Send) -> Opened | Reply:
        deadline = time.monotonic() + self._max_wait
        tried: set[str] = set()
        last: Reply | UpstreamError | None = None
        event = exchange.event
        while True:
            granted = await self._scheduler.acquire(
                LeaseRequest(
                    request_id=exchange.request_id,
                    model=send.model,
                    session_id=send.session_id,
                    client_key_id=event.client_key_id,
                    exclude_accounts=frozenset(tried),
                    max_wait_s=max(0.0, deadline - time.monotonic()),
                )
            )
            if isinstance(granted, Exhausted):
                return self._give_up(send.model, granted, last)
            lease = granted
            tried.add(lease.account_id)
            attempt = Attempt(account_id=lease.account_id, model=lease.model)
            exchange.attempts.append(attempt)
            event.account_id = lease.account_id
            event.served_model = lease.model
            upstream = self._upstreams[lease.account_id]
            started = time.perf_counter()
            try:
                result = await self._try(exchange, send, lease, upstream, attempt)
            except UpstreamError as exc:
                attempt.error = exc.kind
                attempt.duration_ms = (time.perf_counter() - started) * 1000
                outcome = Outcome.CONNECT_ERROR if exc.kind == "connect_error" else Outcome.SERVER_ERROR
                await self._scheduler.complete(lease, Completion(outcome, session_id=send.session_id))
                last = exc
                continue
            except BaseException:
                await self._scheduler.complete(lease, Completion(Outcome.CANCELLED, session_id=send.session_id))
                raise
            attempt.duration_ms = (time.perf_counter() - started) * 1000
            if isinstance(result, Opened):
                return result
            outcome = outcome_for_status(result.status)
            attempt.error = _ERROR_CLASS.get(outcome, "")
            await self._scheduler.complete(
                lease,
                Completion(
                    outcome,
                    http_status=result.status,
                    retry_after_s=retry_after_seconds(as_text(result.headers), time.time()),
                    rate_limit_headers=rate_limit_headers(as_text(result.headers)),
                    session_id=send.session_id,
                ),
            )
            if outcome not in _RETRYABLE:
                return result
            last = result

    async def _try(
        self, exchange: Exchange, send: Send, lease: Lease, upstream: Upstream, attempt: Attempt
    ) -> Opened | Reply:
        headers = upstream_request_headers(exchange.raw_headers, upstream.credential)
        response = await self._client.open(upstream, send.method, exchange.target, headers, send.body)
        attempt.status = response.status_code
        if response.status_code >= 300 or not send.stream:
            body = await response.read()
            if response.status_code >= 300:
                return Reply(response.status_code, response.raw_headers, body)
            return Opened(lease, attempt, response, body, None)
        return await self._peek_stream(response, lease, attempt)

    async def _peek_stream(self, response: UpstreamResponse, lease: Lease, attempt: Attempt) -> Opened | Reply:
        """Hold the response until its first whole event shows the stream really started."""
        cutter = FrameCutter()
        first = b""
        chunks = aiter(response.iter_chunks())
        try:
            async for chunk in chunks:
                first = cutter.feed(chunk)
                if first:
                    break
        except BaseException:
            await response.aclose()
            raise
        for name, data in iter_events(first):
            if name == "error":
                # An error before any content: nothing reached the client, so another account may serve it.
                await response.aclose()
                kind = _error_kind(data)
                status = {"overloaded_error": 529, "rate_limit_error": 429}.get(kind, 500)
                attempt.status = status
                return Reply(status, [(b"content-type", b"application/json")], _envelope_from_event(data))
            if name == "message_start":
                break
        if not first and not cutter.pending:
            await response.aclose()
            raise _EmptyStream("upstream closed the stream before any event")
        return Opened(lease, attempt, response, first, cutter, chunks)

    def _give_up(self, model: str, exhausted: Exhausted, last: Reply | UpstreamError | None) -> Reply:
        if exhausted.reason is ExhaustedReason.NO_ACCOUNT:
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


def _error_kind(data: bytes) -> str:
    try:
        return str(orjson.loads(data).get("error", {}).get("type", "api_error"))
    except (orjson.JSONDecodeError, AttributeError):
        return "api_error"


def _envelope_from_event(data: bytes) -> bytes:
    return (
        data if data.startswith(b"{") else b'{"type":"error","error":{"type":"api_error","message":"upstream error"}}'
    )
