from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.cli import main
from kestrel.common.config import ConfigError, hash_client_key, load_config

ACCOUNT = "accounts:\n  - id: a\n    base_url: http://127.0.0.1:1\n    api_key: ${KEY_A}\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "kestrel.yaml"
    path.write_text(text)
    return path


def test_defaults_without_a_file() -> None:
    config = load_config(None, {})
    assert (config.server.host, config.server.port) == ("127.0.0.1", 8080)
    assert config.accounts == ()


def test_credentials_come_from_the_environment_and_stay_secret(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, ACCOUNT), {"KEY_A": "sk-ant-secret"})
    assert config.accounts[0].api_key is not None
    assert config.accounts[0].api_key.get_secret_value() == "sk-ant-secret"
    assert "sk-ant-secret" not in repr(config) and "sk-ant-secret" not in str(config.model_dump())


def test_missing_environment_variable_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"accounts\[0\]\.api_key: environment variable KEY_A is not set"):
        load_config(write(tmp_path, ACCOUNT), {})


def test_environment_overrides_nested_keys_with_types(tmp_path: Path) -> None:
    env = {
        "KEY_A": "k",
        "KESTREL_SERVER__PORT": "9001",
        "KESTREL_EDGE__DEMOTE_NON_STREAMING": "true",
        "KESTREL_SCHEDULER__MAX_WAIT_SECONDS": "2.5",
        "UNRELATED": "x",
    }
    config = load_config(write(tmp_path, ACCOUNT), env)
    assert config.server.port == 9001
    assert config.edge.demote_non_streaming is True
    assert config.scheduler.max_wait_seconds == 2.5


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server:\n  port: 70000\n", r"server\.port: Input should be less than or equal to 65535 \(got 70000\)"),
        ("server:\n  prot: 1\n", r"server\.prot: unknown key"),
        ("accounts:\n  - id: a\n", r"accounts\[0\]: set exactly one of api_key or auth_token"),
        ("accounts:\n  - id: a\n    api_key: k\n    max_concurrency: 0\n", r"accounts\[0\]\.max_concurrency"),
        ("accounts:\n  - {id: a, api_key: k}\n  - {id: a, api_key: k}\n", "duplicate id 'a'"),
        ("accounts:\n  - {id: a, api_key: k, base_url: ftp://x}\n", "base_url must start with http"),
        ("- just\n- a list\n", "top level must be a mapping"),
        ("server: {port: [\n", "not valid YAML"),
    ],
)
def test_errors_name_the_key_and_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), {})


def test_secret_values_are_not_echoed_in_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, "accounts:\n  - id: a\n    api_key: [sk-secret-in-list]\n"), {})
    assert "sk-secret-in-list" not in str(info.value)


def test_non_loopback_bind_needs_client_keys(tmp_path: Path) -> None:
    open_config = load_config(write(tmp_path, "server: {host: 0.0.0.0}\n"), {})
    with pytest.raises(ConfigError, match=r"refusing to bind '0\.0\.0\.0' without client keys"):
        open_config.check_bind()
    keyed = load_config(
        write(tmp_path, f"server: {{host: 0.0.0.0}}\nauth: {{client_keys: [{{id: a, sha256: '{'0' * 64}'}}]}}\n"), {}
    )
    keyed.check_bind()
    load_config(None, {"KESTREL_SERVER__HOST": "::1"}).check_bind()


def test_keys_create_adds_only_the_hash(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, ACCOUNT.replace("${KEY_A}", "sk-x"))
    assert main(["keys", "create", "alice", "--add-to", str(path)]) == 0
    key = capsys.readouterr().out.strip()
    assert key.startswith("kst-") and key not in path.read_text()
    config = load_config(path, {})
    assert config.auth.client_keys[0].id == "alice"
    assert config.auth.client_keys[0].sha256 == hash_client_key(key)
    assert main(["keys", "create", "alice", "--add-to", str(path)]) == 2


def test_up_reports_config_errors_clearly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["up", "--config", str(write(tmp_path, "server: {port: -1}\n"))]) == 2
    assert "server.port" in capsys.readouterr().err


def test_cluster_settings_come_from_the_usual_environment_names() -> None:
    env = {
        "REDIS_URL": "redis://r:6379/0",
        "DATABASE_URL": "postgresql://p/db",
        "KESTREL_SCHEDULER_ADDRESSES": "s1:50051, s2:50051",
    }
    cluster = load_config(None, env).cluster
    assert cluster.redis_url == "redis://r:6379/0"
    assert cluster.database_url == "postgresql://p/db"
    assert cluster.scheduler_addresses == ("s1:50051", "s2:50051")
    assert (
        load_config(None, {**env, "KESTREL_CLUSTER__REDIS_URL": "redis://other"}).cluster.redis_url == "redis://other"
    )


def test_routing_chains_resolve_aliases_and_skip_repeats() -> None:
    from kestrel.common.config import config_from_dict

    config = config_from_dict(
        {
            "routing": {
                "aliases": {"fast": "claude-haiku-4-5", "best": "claude-opus-4-8"},
                "fallbacks": {"claude-opus-4-8": ["claude-sonnet-4-6", "fast", "claude-opus-4-8"]},
            }
        }
    )
    assert config.routing.chain("best") == ("claude-opus-4-8", "claude-sonnet-4-6", "claude-haiku-4-5")
    assert config.routing.chain("other") == ("other",)


def test_alias_loops_are_refused() -> None:
    from kestrel.common.config import config_from_dict

    with pytest.raises(ConfigError, match="loops back"):
        config_from_dict({"routing": {"aliases": {"a": "b", "b": "a"}}})


def test_account_model_map_exact_then_glob() -> None:
    from kestrel.common.config import config_from_dict

    account = config_from_dict(
        {
            "accounts": [
                {
                    "id": "z",
                    "provider": "anthropic",
                    "preset": "zai",
                    "api_key": "k",
                    "model_map": {"claude-haiku-4-5": "glm-4.5-air", "claude-*": "glm-4.6"},
                }
            ]
        }
    ).accounts[0]
    assert account.upstream_model("claude-haiku-4-5") == "glm-4.5-air"
    assert account.upstream_model("claude-opus-4-8") == "glm-4.6"
    assert account.upstream_model("gpt-5") == "gpt-5"


MODELS_YAML = """\
routing:
  models:
    "gpt-4o*": {max_output_tokens: 16384, thinking: none}
    my-local-model: {max_output_tokens: 4096, thinking: none, sampling: true}
    "gemini-2.5-pro*": {thinking: budget, thinking_budget: [128, 32768], can_disable_thinking: false}
    grok-3-mini: {thinking: effort, efforts: [low, high], stop_sequences: false}
"""


def test_routing_models_are_read_with_only_the_keys_written(tmp_path: Path) -> None:
    models = load_config(write(tmp_path, MODELS_YAML), {}).routing.models
    assert set(models) == {"gpt-4o*", "my-local-model", "gemini-2.5-pro*", "grok-3-mini"}
    assert models["my-local-model"].model_dump(exclude_none=True) == {
        "max_output_tokens": 4096,
        "thinking": "none",
        "sampling": True,
    }
    assert models["gemini-2.5-pro*"].thinking_budget == (128, 32768)
    assert models["gemini-2.5-pro*"].can_disable_thinking is False
    assert models["grok-3-mini"].efforts == ("low", "high")
    assert load_config(None, {}).routing.models == {}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("routing:\n  models:\n    gpt-4o: {max_tokens: 1}\n", r"routing\.models\.gpt-4o\.max_tokens: unknown key"),
        (
            "routing:\n  models:\n    gpt-4o: {thinking: maybe}\n",
            r"routing\.models\.gpt-4o\.thinking: Input should be 'none', 'budget', 'effort' or 'level' \(got 'maybe'\)",
        ),
        (
            "routing:\n  models:\n    m: {max_output_tokens: 0}\n",
            r"routing\.models\.m\.max_output_tokens: Input should be greater than or equal to 1 \(got 0\)",
        ),
        (
            "routing:\n  models:\n    m: {max_output_tokens: lots}\n",
            r"routing\.models\.m\.max_output_tokens: .*integer",
        ),
        (
            "routing:\n  models:\n    m: {thinking_budget: [500, 100]}\n",
            r"routing\.models\.m: thinking_budget: expected",
        ),
        ("routing:\n  models:\n    m: {thinking_budget: [1, 2, 3]}\n", r"routing\.models\.m\.thinking_budget"),
        ("routing:\n  models:\n    m: {efforts: []}\n", r"routing\.models\.m: efforts: expected a non-empty list"),
        (
            "routing:\n  models:\n    m: {sampling: perhaps}\n",
            r"routing\.models\.m\.sampling: Input should be a valid boolean",
        ),
        ("routing:\n  models:\n    m: 4096\n", r"routing\.models\.m: Input should be a valid dictionary"),
        ("routing:\n  models:\n    '': {thinking: none}\n", r"routing: models: a model name or glob must not be empty"),
    ],
)
def test_bad_routing_models_name_the_model_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), {})
