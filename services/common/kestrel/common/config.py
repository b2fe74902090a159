"""Kestrel's configuration: one YAML file, then ``KESTREL_*`` environment overrides.

``KESTREL_SERVER__PORT=9000`` overrides ``server.port``: the name after the prefix is the key
path, with ``__`` between levels. Values are read as YAML scalars, so ``true`` and ``8`` keep
their types. Credentials may be written as ``${ENV_NAME}`` to be taken from the environment
instead of the file. Problems are reported as ``ConfigError`` naming each key and what is wrong.
"""

from __future__ import annotations

import fnmatch
import hashlib
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator

ENV_PREFIX = "KESTREL_"
CLIENT_KEY_PREFIX = "kst-"
_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")


class ConfigError(ValueError):
    """The configuration cannot be used; the message names every offending key."""


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ServerConfig(_Model):
    host: str = "127.0.0.1"
    """Address to bind. Anything but loopback needs client keys configured."""
    port: int = Field(8080, ge=0, le=65535)


class AccountConfig(_Model):
    """One upstream account (an API key or an OAuth token on one provider)."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    provider: Literal["anthropic", "openai", "gemini"] = "anthropic"
    """The upstream's API family; ``preset`` picks a known service of that family."""
    preset: str = ""
    """A known service (``groq``, ``deepseek``, ``ollama``, ``zai`` …) giving the base URL and quirks."""
    base_url: str = ""
    """Empty: the preset's, else the provider's official endpoint."""
    api_key: SecretStr | None = None
    """Sent the provider's way: ``x-api-key`` (Anthropic), bearer (OpenAI), ``x-goog-api-key`` (Gemini)."""
    auth_token: SecretStr | None = None
    """Sent upstream as ``Authorization: Bearer``: OAuth and gateway tokens."""
    models: tuple[str, ...] = ()
    """Glob patterns of the model names this account serves; empty serves every model."""
    priority: int = 0
    """Lower values are preferred; accounts with equal priority share the load."""
    max_concurrency: int = Field(16, ge=1)
    model_map: dict[str, str] = Field(default_factory=dict)
    """Model names as clients send them (glob patterns allowed) → the name this upstream uses."""

    @model_validator(mode="after")
    def _one_credential(self) -> AccountConfig:
        if (self.api_key is None) == (self.auth_token is None):
            raise ValueError("set exactly one of api_key or auth_token")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return self

    def serves(self, model: str) -> bool:
        return not self.models or any(fnmatch.fnmatchcase(model, p) for p in self.models)

    def upstream_model(self, model: str) -> str:
        """The name to ask this upstream for: an exact ``model_map`` entry, else the first glob."""
        mapped = self.model_map.get(model)
        if mapped is not None:
            return mapped
        for pattern, target in self.model_map.items():
            if fnmatch.fnmatchcase(model, pattern):
                return target
        return model


class ModelCapsConfig(_Model):
    """What one upstream model accepts (``routing.models``); a key left out keeps the built-in value.

    Read by the edge's ``providers/capabilities.py``, which holds the built-in table and the
    meaning of each field; these only override or extend it.
    """

    max_output_tokens: int | None = Field(None, ge=1)
    """Largest ``max_tokens`` the model takes: a larger request is clamped to it."""
    thinking: Literal["none", "budget", "effort", "level"] | None = None
    """How thinking is asked for: ``none`` (never: dropped), ``budget`` (tokens), ``effort``
    (OpenAI ``reasoning_effort``) or ``level`` (Gemini ``thinkingLevel``)."""
    thinking_budget: tuple[int, int] | None = None
    """``[min, max]`` of a thinking budget; an enabled budget outside is clamped in."""
    can_disable_thinking: bool | None = None
    """False for models that always think."""
    efforts: tuple[str, ...] | None = None
    """Effort or level words the model takes, lowest first (``[low, medium, high]``)."""
    sampling: bool | None = None
    """Accepts ``temperature``/``top_p``/``top_k``; false drops them."""
    stop_sequences: bool | None = None
    """Accepts stop sequences; false drops them."""

    @model_validator(mode="after")
    def _ranges(self) -> ModelCapsConfig:
        if self.thinking_budget is not None:
            low, high = self.thinking_budget
            if low < 0 or high < low:
                raise ValueError(
                    f"thinking_budget: expected [min, max] with 0 <= min <= max, got {list(self.thinking_budget)}"
                )
        if self.efforts is not None and (not self.efforts or not all(e.strip() for e in self.efforts)):
            raise ValueError("efforts: expected a non-empty list of effort words, lowest first")
        return self


class RoutingConfig(_Model):
    """Which models a request may end up on, and what each upstream model accepts."""

    aliases: dict[str, str] = Field(default_factory=dict)
    """A name clients may send → the model it stands for (``fast: claude-haiku-4-5``)."""
    fallbacks: dict[str, tuple[str, ...]] = Field(default_factory=dict)
    """A model → the models to try, in order, when every account serving it is spent or failing."""
    models: dict[str, ModelCapsConfig] = Field(default_factory=dict)
    """Upstream model name (glob patterns allowed; the name after ``model_map``) → what it accepts,
    over the built-in table: a translated request is fitted to it (output cap, thinking, sampling)."""

    @model_validator(mode="after")
    def _no_empty_model_patterns(self) -> RoutingConfig:
        if any(not pattern.strip() for pattern in self.models):
            raise ValueError("models: a model name or glob must not be empty")
        return self

    @model_validator(mode="after")
    def _no_alias_cycles(self) -> RoutingConfig:
        for start in self.aliases:
            seen = {start}
            name = self.aliases[start]
            while name in self.aliases:
                if name in seen:
                    raise ValueError(f"aliases: {start!r} loops back to itself")
                seen.add(name)
                name = self.aliases[name]
        return self

    def resolve(self, model: str) -> str:
        while model in self.aliases:
            model = self.aliases[model]
        return model

    def chain(self, model: str) -> tuple[str, ...]:
        """The requested model (aliases resolved) followed by its fallbacks, each once."""
        first = self.resolve(model)
        chain = [first]
        for fallback in self.fallbacks.get(first, ()):
            resolved = self.resolve(fallback)
            if resolved not in chain:
                chain.append(resolved)
        return tuple(chain)


class ClientKeyConfig(_Model):
    """A client key issued by Kestrel. Only its SHA-256 is stored."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{1,64}$")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")


class AuthConfig(_Model):
    client_keys: tuple[ClientKeyConfig, ...] = ()

    @property
    def enabled(self) -> bool:
        return bool(self.client_keys)


class SchedulerConfig(_Model):
    max_wait_seconds: float = Field(10.0, ge=0)
    """How long a request may wait for an account when all are busy or cooling."""
    sticky_ttl_seconds: float = Field(3600.0, gt=0)
    lease_ttl_seconds: float = Field(600.0, gt=0)
    default_cooldown_seconds: float = Field(30.0, gt=0)
    """Cooldown after a 429 that carries neither retry-after nor a reset header."""
    backoff_base_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(60.0, gt=0)
    auth_cooldown_seconds: float = Field(300.0, gt=0)
    """How long an account whose credential was rejected (401/403) is left out."""
    soft_limit_fraction: float = Field(0.05, ge=0, le=1)
    """Accounts whose remaining quota is below this fraction are used last."""


class LoggerConfig(_Model):
    database: str = "~/.kestrel/kestrel.db"
    """SQLite file for ``kestrel up``."""
    queue_size: int = Field(10000, ge=1)
    batch_size: int = Field(200, ge=1)
    retention_days: float = Field(30.0, gt=0)
    """Request records older than this are pruned automatically."""
    claim_idle_seconds: float = Field(30.0, gt=0)
    """Cluster mode: events a logger read but did not acknowledge for this long (it died) are
    taken over by another logger."""


class EdgeConfig(_Model):
    max_body_bytes: int = Field(32 * 1024 * 1024, ge=1024)
    demote_non_streaming: bool = False
    """Serve non-streaming requests from an upstream stream, reassembled."""
    connect_timeout_seconds: float = Field(10.0, gt=0)
    read_timeout_seconds: float = Field(600.0, gt=0)
    """Longest silence tolerated from an upstream, streams included."""
    max_retry_after_seconds: int = Field(60, ge=1)
    """Cap on retry-after sent to clients: Claude Code stops retrying above 60."""
    signature_ttl_seconds: float = Field(86_400.0, gt=0)
    """How long the edge keeps a Gemini tool-call signature for a client that cannot carry it back
    (an OpenAI-dialect client): a conversation idle for longer sends the placeholder instead."""


class ClusterConfig(_Model):
    """Cluster mode: where the shared state, the event stream and the database live.

    ``REDIS_URL``, ``DATABASE_URL`` and ``KESTREL_SCHEDULER_ADDRESSES`` (comma-separated) from the
    environment fill these when the file leaves them empty.
    """

    redis_url: str = ""
    database_url: str = ""
    scheduler_addresses: tuple[str, ...] = ()
    """``host:port`` of every scheduler replica; the edge fails over between them."""
    scheduler_listen: str = "127.0.0.1:50051"
    """Where ``kestrel scheduler`` serves gRPC."""
    scheduler_metrics_listen: str = ""
    """``host:port`` where ``kestrel scheduler`` serves Prometheus ``/metrics``; empty: not served."""
    key_prefix: str = "kestrel:"
    """Prefix of every Redis key Kestrel writes, so several installations can share a Redis."""
    stream_maxlen: int = Field(1_000_000, ge=1000)
    """Approximate cap on the request-event stream; the logger normally keeps it short."""
    scheduler_timeout_seconds: float = Field(2.0, gt=0)
    """Deadline for a scheduler call, on top of the acquire's own bounded wait."""


class KestrelConfig(_Model):
    server: ServerConfig = ServerConfig()
    auth: AuthConfig = AuthConfig()
    accounts: tuple[AccountConfig, ...] = ()
    scheduler: SchedulerConfig = SchedulerConfig()
    logger: LoggerConfig = LoggerConfig()
    edge: EdgeConfig = EdgeConfig()
    cluster: ClusterConfig = ClusterConfig()
    routing: RoutingConfig = RoutingConfig()

    @model_validator(mode="after")
    def _unique_ids(self) -> KestrelConfig:
        for kind, items in (("accounts", self.accounts), ("auth.client_keys", self.auth.client_keys)):
            seen: set[str] = set()
            for item in items:
                if item.id in seen:
                    raise ValueError(f"{kind}: duplicate id {item.id!r}")
                seen.add(item.id)
        return self

    def check_bind(self) -> None:
        """Refuse to listen beyond loopback with no client authentication."""
        if self.auth.enabled or is_loopback(self.server.host):
            return
        raise ConfigError(
            f"server.host: refusing to bind {self.server.host!r} without client keys; "
            "add auth.client_keys (kestrel keys create NAME) or bind 127.0.0.1"
        )


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def hash_client_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_client_key() -> str:
    return CLIENT_KEY_PREFIX + secrets.token_urlsafe(32)


def load_config(path: str | Path | None = None, environ: Mapping[str, str] | None = None) -> KestrelConfig:
    """Read the YAML file (if any), apply ``KESTREL_*`` overrides, resolve ``${VAR}``, validate."""
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    if path is not None:
        try:
            text = Path(path).expanduser().read_text()
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read ({exc.strerror})") from exc
        try:
            loaded = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
        data = loaded or {}
    _apply_env_overrides(data, env)
    _apply_cluster_env(data, env)
    errors: list[str] = []
    data = _resolve_env_refs(data, env, "", errors)
    if errors:
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(errors))
    try:
        return KestrelConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def config_from_dict(data: Mapping[str, Any]) -> KestrelConfig:
    """Validate an in-memory configuration (tests, the demo)."""
    try:
        return KestrelConfig.model_validate(dict(data))
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _apply_env_overrides(data: dict[str, Any], env: Mapping[str, str]) -> None:
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or name == ENV_PREFIX + "CONFIG":
            continue
        keys = [k.lower() for k in name[len(ENV_PREFIX) :].split("__") if k]
        if not keys or keys[0] not in KestrelConfig.model_fields:
            continue
        node = data
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
                node[key] = child
            node = child
        try:
            node[keys[-1]] = yaml.safe_load(raw) if raw else raw
        except yaml.YAMLError:
            node[keys[-1]] = raw


def _apply_cluster_env(data: dict[str, Any], env: Mapping[str, str]) -> None:
    cluster = data.get("cluster")
    if cluster is not None and not isinstance(cluster, dict):
        return
    cluster = cluster or {}
    for key, name in (("redis_url", "REDIS_URL"), ("database_url", "DATABASE_URL")):
        if not cluster.get(key) and env.get(name):
            cluster[key] = env[name]
    if not cluster.get("scheduler_addresses") and env.get("KESTREL_SCHEDULER_ADDRESSES"):
        cluster["scheduler_addresses"] = [a.strip() for a in env["KESTREL_SCHEDULER_ADDRESSES"].split(",") if a.strip()]
    if cluster:
        data["cluster"] = cluster


def _resolve_env_refs(node: Any, env: Mapping[str, str], where: str, errors: list[str]) -> Any:
    if isinstance(node, dict):
        return {k: _resolve_env_refs(v, env, f"{where}.{k}" if where else str(k), errors) for k, v in node.items()}
    if isinstance(node, list):
        return [_resolve_env_refs(v, env, f"{where}[{i}]", errors) for i, v in enumerate(node)]
    if isinstance(node, str):
        match = _ENV_REF.match(node)
        if match:
            value = env.get(match.group(1))
            if value is None:
                errors.append(f"{where}: environment variable {match.group(1)} is not set")
                return None
            return value
    return node


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        got = err.get("input")
        detail = (
            "" if err["type"] in ("extra_forbidden", "missing") or isinstance(got, dict | list) else f" (got {got!r})"
        )
        if "api_key" in loc or "auth_token" in loc:
            detail = ""
        lines.append(f"{loc or '<root>'}: {msg}{detail}")
    return "invalid configuration:\n  " + "\n  ".join(lines)
