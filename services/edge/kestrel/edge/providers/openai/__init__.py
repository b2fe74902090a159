"""OpenAI chat completions as an upstream: encode a canonical request, decode answers and streams.

Every OpenAI-compatible service goes through this one codec; what differs between them is a
``Preset`` (``presets.py``), never a name test here. Three things are easy to get wrong and are
handled with care (see PEERS.md): tool-argument fragments are passed through as the upstream sent
them (never parsed and re-serialised), a tool call whose upstream ``finish_reason`` says ``stop``
still ends as ``tool_use``, and usage is never missing or zero when there was a prompt (an estimate
stands in until the upstream reports).

How the parts fit: ``_encode`` writes the request body (C2 of PROTOCOLS.md), ``_decode`` reads whole
bodies and error answers (C1, C3), ``_stream`` is the sans-I/O chunk state machine (C4). Tool names
longer than the service allows are shortened deterministically (``prefix_<8 hex>`` of a SHA-256 of
the full name) and restored on the way back, so the mapping can be rebuilt from the request alone;
the codec also remembers what it shortened, for ``decode_response(body)`` without a request.
"""

from __future__ import annotations

import time

import orjson

from kestrel.edge.canonical import Request, Response
from kestrel.edge.providers.base import Encoded, UpstreamFailure
from kestrel.edge.providers.capabilities import UNKNOWN, ModelCatalog, fit_to_model
from kestrel.edge.providers.openai._decode import (
    decode_response_body,
    decode_usage,
    error_fields,
    error_kind,
    reset_wait,
    stop_reason,
)
from kestrel.edge.providers.openai._encode import (
    encode_body,
    estimate_input_tokens,
    reasoning_effort,
    shortened_names,
    wire_tool_name,
)
from kestrel.edge.providers.openai._stream import OpenAIStreamDecoder, State
from kestrel.edge.providers.presets import OPENAI, Preset
from kestrel.scheduler.ratelimits import retry_after_seconds

__all__ = [
    "OpenAICodec",
    "OpenAIStreamDecoder",
    "State",
    "decode_response_body",
    "decode_usage",
    "encode_body",
    "error_kind",
    "estimate_input_tokens",
    "reasoning_effort",
    "shortened_names",
    "stop_reason",
    "wire_tool_name",
]

_HEADERS = ((b"content-type", b"application/json"),)


class OpenAICodec:
    """The ``Codec`` for one OpenAI-compatible service, described by its ``Preset``."""

    kind = "openai"
    _REMEMBERED = 4096

    def __init__(self, preset: Preset = OPENAI, catalog: ModelCatalog | None = None) -> None:
        self.preset = preset
        self.catalog = catalog
        """What each model accepts (``capabilities``); None knows nothing: every model is encoded
        by the preset alone. ``codec_for`` always gives one."""
        self._shortened: dict[str, str] = {}
        """Wire name → original for every name this codec shortened (a pure function, so one table
        serves every request; it is cleared when it grows past ``_REMEMBERED``)."""

    def encode(self, request: Request, model: str) -> Encoded:
        shortened = shortened_names(request, self.preset.tool_name_max)
        if len(self._shortened) + len(shortened) > self._REMEMBERED:
            self._shortened.clear()
        self._shortened.update(shortened)
        caps = self.catalog.caps(model) if self.catalog is not None else UNKNOWN
        body = encode_body(fit_to_model(request, caps), model, self.preset, caps)
        return Encoded(self.preset.path, _HEADERS, orjson.dumps(body))

    def decode_response(self, body: bytes, request: Request | None = None) -> Response:
        """``request`` (when given) rebuilds the tool-name mapping; else what ``encode`` remembered."""
        names = shortened_names(request, self.preset.tool_name_max) if request is not None else self._shortened
        return decode_response_body(body, names)

    def stream_decoder(self, request: Request) -> OpenAIStreamDecoder:
        return OpenAIStreamDecoder(request, self.preset)

    def decode_error(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> UpstreamFailure:
        lowered = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in headers}
        message, etype, code = error_fields(body)
        retry = retry_after_seconds(lowered, time.time())
        if not retry and status == 429:
            retry = reset_wait(lowered)
        kind = error_kind(status, etype, code)
        return UpstreamFailure(status, kind, message or f"upstream answered {status}", retry)
