"""Identifiers the sim mints: request, message and tool-use ids, and thinking signatures.

Ids look like Anthropic's (``msg_01`` + 22 base62 characters) so gateways that pattern-match or
log them see realistic values. They come from one ``random.Random`` seeded from the OS: ids
only need to be unique, and this is several times cheaper than ``secrets`` on the hot path.

Signatures are deterministic (an HMAC of the thinking text under a per-process secret):
the same request streamed or not gets the same signature, and with ``verify_signatures`` the sim
can tell whether a thinking block it minted came back unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import random

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_rng = random.Random(os.urandom(16))
_SECRET = os.urandom(32)


def _suffix() -> str:
    return "01" + "".join(_rng.choices(_ALPHABET, k=22))


def request_id() -> str:
    """A ``request-id`` header value."""
    return "req_" + _suffix()


def message_id() -> str:
    return "msg_" + _suffix()


def tool_use_id(prefix: str = "toolu_") -> str:
    return prefix + _suffix()


def opaque_id(length: int = 24) -> str:
    """Base62 characters only, for ids that carry no prefix (Gemini's ``responseId``)."""
    return "".join(_rng.choices(_ALPHABET, k=length))


def mint_signature(thinking: str) -> str:
    """The signature the sim puts on a thinking block (base64, like the real opaque value)."""
    mac = hmac.new(_SECRET, thinking.encode(), hashlib.sha256).digest()
    return base64.b64encode(b"Esim" + mac).decode()


def signature_valid(thinking: str, signature: str) -> bool:
    """True when this process minted ``signature`` for exactly this ``thinking`` text."""
    return hmac.compare_digest(signature.encode(), mint_signature(thinking).encode())
