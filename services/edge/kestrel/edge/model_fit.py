"""Whether a passthrough body still suits the model routing sent it to, read from the bytes.

Passthrough forwards the client's body untouched but for ``model``. When routing changed the
model (``model_map``, an alias, a fallback) the body was written for another one: Claude Code's
``max_tokens: 32000`` is a 400 on a model capped at 8192, ``reasoning_effort`` a 400 on gpt-4o.
Such a request goes through translation instead, where the codec fits it to the model
(``providers/capabilities.py``). Telling the two apart must not cost a parse of a large body, so
this looks only for the few top-level settings a model can refuse. A false alarm (say a tool
schema with a ``"temperature"`` property) costs a translation, never a wrong request.
"""

from __future__ import annotations

import re

from kestrel.edge.providers.capabilities import UNKNOWN, ModelCaps

_MAX_TOKENS = {
    "anthropic": re.compile(rb'"max_tokens"\s*:\s*(\d+)'),
    "openai": re.compile(rb'"max(?:_completion)?_tokens"\s*:\s*(\d+)'),
}
_THINKING = {
    "anthropic": re.compile(rb'"thinking"\s*:\s*\{'),
    "openai": re.compile(rb'"reasoning(?:_effort)?"\s*:'),
}
_ADAPTIVE = re.compile(rb'"type"\s*:\s*"adaptive"|"output_config"\s*:')
_SAMPLING = re.compile(rb'"(?:temperature|top_p|top_k)"\s*:')
_STOP = re.compile(rb'"stop(?:_sequences)?"\s*:')


def fits_as_is(dialect: str, body: bytes, caps: ModelCaps) -> bool:
    """False when ``body`` (in ``dialect``) may ask ``caps``' model for something it refuses."""
    if caps == UNKNOWN or dialect not in _MAX_TOKENS:
        return True
    cap = caps.max_output_tokens
    if cap is not None and any(int(m.group(1)) > cap for m in _MAX_TOKENS[dialect].finditer(body)):
        return False
    if caps.thinking == "none" and _THINKING[dialect].search(body):
        return False
    if dialect == "anthropic" and caps.thinking == "budget" and _ADAPTIVE.search(body):
        return False
    if not caps.sampling and _SAMPLING.search(body):
        return False
    return caps.stop_sequences or not _STOP.search(body)
