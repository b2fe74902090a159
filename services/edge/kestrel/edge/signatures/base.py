"""The seam every signature store implements (memory for one process, Redis for a cluster)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol


class SignatureStore(Protocol):
    """Tool-call id → the upstream's signature for that call.

    Best effort by contract: a request must neither wait long on nor fail because of this store.
    ``remember`` returns at once; ``recall`` answers what it finds, and ``{}`` when the backend
    is unreachable (the encoder then falls back to the placeholder).
    """

    def remember(self, signatures: Mapping[str, str]) -> None: ...

    async def recall(self, call_ids: Sequence[str]) -> dict[str, str]: ...

    async def aclose(self) -> None: ...
