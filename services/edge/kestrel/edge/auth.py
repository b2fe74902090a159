"""Client authentication with keys Kestrel issued: ``x-api-key`` or ``Authorization: Bearer``.

Only SHA-256 digests are configured; the presented key is hashed and looked up, so the key
itself is never stored, logged or recorded.
"""

from __future__ import annotations

import hashlib

from kestrel.common.config import AuthConfig
from kestrel.edge.errors import AuthenticationFailed


class ClientAuth:
    def __init__(self, config: AuthConfig) -> None:
        self._by_digest = {key.sha256: key.id for key in config.client_keys}
        self.enabled = config.enabled

    def authenticate(self, headers: dict[str, str]) -> str:
        """Return the client key id; ``""`` when authentication is off."""
        if not self.enabled:
            return ""
        presented = headers.get("x-api-key")
        if not presented:
            bearer = headers.get("authorization", "")
            if bearer[:7].lower() == "bearer ":
                presented = bearer[7:].strip()
        if not presented:
            raise AuthenticationFailed("missing client key: send it as x-api-key or Authorization: Bearer")
        digest = hashlib.sha256(presented.encode()).hexdigest()
        key_id = self._by_digest.get(digest)
        if key_id is None:
            raise AuthenticationFailed("invalid client key")
        return key_id
