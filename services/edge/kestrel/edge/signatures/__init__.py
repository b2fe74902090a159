"""Thought signatures the gateway keeps for clients that cannot carry them back.

Gemini signs each function call it makes (``thoughtSignature``) and, on Gemini 3, refuses the next
turn when the call comes back without it. An Anthropic-dialect client carries the signature home
inside a thinking block, but an OpenAI-dialect client has nowhere to put it: chat completions has
no field for it, so the call returns bare and the encoder can only send Google's placeholder,
which Gemini accepts at the cost of the model losing its reasoning context.

So the edge keeps what it relays: every signed call decoded from a Gemini answer is remembered
under its tool-call id (``keep.SigningDecoder``, ``keep.signed_calls``), and before a request is
encoded for Gemini, calls that come back unsigned get their signature again (``keep.restore``).
The store is per process for ``kestrel up`` (``MemorySignatureStore``) and Redis for a cluster
(``RedisSignatureStore``), so whichever edge replica serves the next turn finds it.
"""

from kestrel.edge.signatures.base import SignatureStore
from kestrel.edge.signatures.memory import MemorySignatureStore

__all__ = ["MemorySignatureStore", "SignatureStore"]
