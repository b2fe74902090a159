"""Signed state the gateway keeps for clients that cannot carry it back to the upstream.

Gemini signs each function call (``thoughtSignature``) and Anthropic signs thinking; both want it
back on the next turn (Gemini 3 refuses calls without it; Anthropic refuses a tool loop whose last
turn does not start with its thinking). An Anthropic-dialect client carries it home in thinking
blocks, but an OpenAI-dialect client has no field for either, so without help the next turn goes
out with Google's placeholder, or with thinking switched off.

So the edge keeps what it relays: ``keep`` says, per upstream, what to remember from an answer and
what to put back into the next request; the store behind ``SignatureStore`` is per process for
``kestrel up`` (``MemorySignatureStore``) and Redis for a cluster (``redis.RedisSignatureStore``),
so whichever edge replica serves the next turn finds it.
"""

from kestrel.edge.signatures.base import SignatureStore
from kestrel.edge.signatures.memory import MemorySignatureStore

__all__ = ["MemorySignatureStore", "SignatureStore"]
