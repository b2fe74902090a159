"""Sending to upstream accounts: one pooled HTTP client, accounts prepared once.

This is the boundary where httpx errors become Kestrel's own (``UpstreamError``), so the attempt
loop and the relay never see an httpx exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx

from kestrel.common.config import AccountConfig, EdgeConfig
from kestrel.edge.providers.registry import base_url_for, check


class UpstreamError(Exception):
    """The upstream could not be used; ``kind`` is recorded on the attempt."""

    kind = "upstream_error"


class ConnectFailed(UpstreamError):
    kind = "connect_error"


class TimedOut(UpstreamError):
    kind = "timeout"


class StreamBroken(UpstreamError):
    kind = "stream_reset"


@dataclass(frozen=True, slots=True)
class Upstream:
    """An account ready to send to: URL base and credential header built once."""

    account_id: str
    provider: str
    base_url: str
    credential: tuple[bytes, bytes]


def prepare_upstreams(accounts: Sequence[AccountConfig]) -> dict[str, Upstream]:
    """Each account's base URL and credential header, built once."""
    prepared = {}
    for account in accounts:
        check(account)
        prepared[account.id] = Upstream(account.id, account.provider, base_url_for(account), _credential(account))
    return prepared


def _credential(account: AccountConfig) -> tuple[bytes, bytes]:
    if account.auth_token is not None:
        return (b"authorization", b"Bearer " + account.auth_token.get_secret_value().encode())
    assert account.api_key is not None
    key = account.api_key.get_secret_value().encode()
    if account.provider == "openai":
        return (b"authorization", b"Bearer " + key)
    if account.provider == "gemini":
        return (b"x-goog-api-key", key)
    return (b"x-api-key", key)


class UpstreamResponse(Protocol):
    """A response whose headers are in; the body is read with ``read`` or ``iter_chunks``."""

    status_code: int
    raw_headers: list[tuple[bytes, bytes]]
    """Header names lower-cased, values as received."""

    async def read(self) -> bytes:
        """The whole body; raises ``UpstreamError`` subclasses; closes the response."""
        ...

    def iter_chunks(self) -> AsyncIterator[bytes]:
        """Body chunks as they arrive (chunked encoding removed); raises ``UpstreamError``."""
        ...

    async def aclose(self) -> None:
        """Release the connection (back to the pool only when the body was read to the end)."""
        ...


class UpstreamTransport(Protocol):
    """Sends one request to an upstream account; the seam between the edge and HTTP clients."""

    async def open(
        self, upstream: Upstream, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


class _HttpxResponse:
    __slots__ = ("_response", "raw_headers", "status_code")

    def __init__(self, response: httpx.Response) -> None:
        self._response = response
        self.status_code = response.status_code
        self.raw_headers = [(k.lower(), v) for k, v in response.headers.raw]

    async def read(self) -> bytes:
        return await read_all(self._response)

    def iter_chunks(self) -> AsyncIterator[bytes]:
        return iter_body(self._response)

    async def aclose(self) -> None:
        await self._response.aclose()


class HttpxTransport:
    """The upstream transport on httpx: one connection pool shared by every account and request."""

    def __init__(self, config: EdgeConfig, transport: httpx.AsyncBaseTransport | None = None) -> None:
        timeout = httpx.Timeout(
            connect=config.connect_timeout_seconds,
            read=config.read_timeout_seconds,
            write=config.read_timeout_seconds,
            pool=config.connect_timeout_seconds,
        )
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=256, keepalive_expiry=60)
        self._client = httpx.AsyncClient(timeout=timeout, limits=limits, transport=transport, trust_env=False)

    async def open(
        self, upstream: Upstream, method: str, target: str, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> UpstreamResponse:
        """Send the request and return once the response headers are in."""
        request = self._client.build_request(method, upstream.base_url + target, headers=headers, content=body)
        try:
            return _HttpxResponse(await self._client.send(request, stream=True))
        except httpx.TimeoutException as exc:
            raise TimedOut(f"{upstream.account_id}: upstream timed out ({type(exc).__name__})") from None
        except httpx.TransportError as exc:
            raise ConnectFailed(f"{upstream.account_id}: cannot reach upstream ({type(exc).__name__})") from None

    async def aclose(self) -> None:
        await self._client.aclose()


async def read_all(response: httpx.Response) -> bytes:
    try:
        return await response.aread()
    except httpx.TimeoutException:
        raise TimedOut("upstream timed out while sending the body") from None
    except httpx.TransportError as exc:
        raise StreamBroken(f"upstream connection lost ({type(exc).__name__})") from None
    finally:
        await response.aclose()


async def iter_body(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.aiter_raw():
            yield chunk
    except httpx.TimeoutException:
        raise TimedOut("upstream went silent mid-stream") from None
    except httpx.TransportError as exc:
        raise StreamBroken(f"upstream connection lost mid-stream ({type(exc).__name__})") from None
