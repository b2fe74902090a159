"""Which codec and which endpoint serve an account: the one place that maps config to providers."""

from __future__ import annotations

from kestrel.common.config import AccountConfig, RoutingConfig
from kestrel.edge.providers.anthropic import AnthropicCodec
from kestrel.edge.providers.base import Codec
from kestrel.edge.providers.capabilities import BUILTIN_CATALOG, ModelCatalog
from kestrel.edge.providers.openai import OpenAICodec
from kestrel.edge.providers.presets import PRESETS

ANTHROPIC_COMPATIBLE = {
    "anthropic": "https://api.anthropic.com",
    "zai": "https://api.z.ai/api/anthropic",
}
"""Services that speak Anthropic's Messages API, by preset name (Z.AI serves GLM models there)."""

GEMINI = "https://generativelanguage.googleapis.com"


def catalog_for(routing: RoutingConfig) -> ModelCatalog:
    """The model capability table: built-in entries under the config's ``routing.models``."""
    return ModelCatalog.from_config(routing.models) if routing.models else BUILTIN_CATALOG


def codec_for(account: AccountConfig, catalog: ModelCatalog | None = None) -> Codec:
    """The account's codec; ``catalog`` (default: the built-in table) says what each model takes."""
    catalog = catalog if catalog is not None else BUILTIN_CATALOG
    if account.provider == "openai":
        return OpenAICodec(PRESETS[account.preset or "openai"], catalog)
    if account.provider == "gemini":
        from kestrel.edge.providers.gemini import GeminiCodec

        return GeminiCodec(catalog)
    return AnthropicCodec(catalog=catalog)


def base_url_for(account: AccountConfig) -> str:
    if account.base_url:
        return account.base_url.rstrip("/")
    if account.provider == "openai":
        return PRESETS[account.preset or "openai"].base_url.rstrip("/")
    if account.provider == "gemini":
        return GEMINI
    return ANTHROPIC_COMPATIBLE[account.preset or "anthropic"]


def check(account: AccountConfig) -> None:
    """Refuse an unknown preset at start-up rather than at the first request."""
    known = PRESETS if account.provider == "openai" else ANTHROPIC_COMPATIBLE if account.provider == "anthropic" else {}
    if account.preset and account.preset not in known:
        raise ValueError(
            f"accounts[{account.id}].preset: unknown {account.provider} preset {account.preset!r}"
            f" (known: {', '.join(sorted(known))})"
        )
