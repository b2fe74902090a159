"""Keep the raw bytes an SDK reads, so tests that use an SDK's stream helper can validate them too.

The official SDKs parse a stream as it arrives and keep nothing of the bytes. ``RawTap`` is an
``httpx2`` transport (the SDKs' HTTP client) that tees every answer body into a buffer while the SDK
reads it, untouched, so the strict stream validators of ``kestrel.edge.testing`` can run on exactly
what the SDK accepted.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx2
import orjson


@dataclass
class Tapped:
    request_body: bytes
    content_type: str
    raw: bytearray = field(default_factory=bytearray)

    @property
    def streamed(self) -> bool:
        return self.content_type.startswith("text/event-stream")

    def include_usage(self) -> bool:
        """Whether an OpenAI client asked for the usage chunk (``stream_options.include_usage``)."""
        options = orjson.loads(self.request_body).get("stream_options") or {}
        return options.get("include_usage") is True


class _Tee(httpx2.SyncByteStream):
    def __init__(self, inner: httpx2.SyncByteStream, into: bytearray) -> None:
        self._inner = inner
        self._into = into

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._inner:
            self._into.extend(chunk)
            yield chunk

    def close(self) -> None:
        self._inner.close()


class RawTap(httpx2.BaseTransport):
    """Pass as ``http_client=httpx2.Client(transport=RawTap())``; read ``streams()`` afterwards."""

    def __init__(self) -> None:
        self._inner = httpx2.HTTPTransport()
        self.seen: list[Tapped] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self._inner.handle_request(request)
        tapped = Tapped(request.read(), response.headers.get("content-type", ""))
        self.seen.append(tapped)
        assert isinstance(response.stream, httpx2.SyncByteStream)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tee(response.stream, tapped.raw),
            extensions=response.extensions,
            request=request,
        )

    def streams(self) -> list[Tapped]:
        """The streamed answers read so far, oldest first."""
        return [t for t in self.seen if t.streamed]

    def close(self) -> None:
        self._inner.close()
