"""Config from YAML, mappings and CLI flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from kestrel.sim.cli import build_parser, config_from_args
from kestrel.sim.config import (
    DEFAULT_MODELS,
    ConfigError,
    KeyLimits,
    SimConfig,
    config_from_mapping,
    load_config,
    parse_key_spec,
)


def test_defaults() -> None:
    config = SimConfig()
    assert config.open and config.ttft_ms == 0 and config.tokens_per_s == 0
    assert config.min_cache_tokens == 1024
    assert "claude-sonnet-4-6" in [m.id for m in config.models]


def test_yaml_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text(
        "open: false\n"
        "ttft_ms: 120\n"
        "keys:\n"
        "  sk-a: {requests_per_window: 50, window_s: 30}\n"
        "  sk-b:\n"
        "models:\n"
        "  - {id: claude-x, display_name: Claude X}\n"
        "  - claude-y\n"
    )
    config = load_config(path)
    assert not config.open and config.ttft_ms == 120
    assert config.keys == {"sk-a": KeyLimits(50, 0, 0, 30), "sk-b": KeyLimits()}
    assert [(m.id, m.display_name) for m in config.models] == [("claude-x", "Claude X"), ("claude-y", "claude-y")]


def test_empty_yaml_gives_defaults(tmp_path: Path) -> None:
    path = tmp_path / "empty.yaml"
    path.write_text("")
    assert load_config(path).models == DEFAULT_MODELS


@pytest.mark.parametrize(
    "data",
    [
        {"opne": True},
        {"keys": {"k": {"rpm": 5}}},
        {"keys": {"k": {"requests_per_window": -1}}},
        {"chunk_tokens": 0},
        {"models": [{"display_name": "no id"}]},
    ],
)
def test_bad_config_is_refused(data: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        config_from_mapping(data)


def test_key_spec() -> None:
    assert parse_key_spec("sk-a") == ("sk-a", KeyLimits())
    assert parse_key_spec("sk-a:50") == ("sk-a", KeyLimits(50, 0, 0))
    assert parse_key_spec("sk-a:50::8000") == ("sk-a", KeyLimits(50, 0, 8000))
    for bad in ("", ":5", "k:x", "k:1:2:3:4"):
        with pytest.raises(ConfigError):
            parse_key_spec(bad)


def test_cli_flags_override_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sim.yaml"
    path.write_text("ttft_ms: 5\nkeys: {sk-a: {requests_per_window: 1}}\n")
    args = build_parser().parse_args(
        [
            "--config",
            str(path),
            "--key",
            "sk-a:9:100",
            "--key",
            "sk-b",
            "--closed",
            "--tokens-per-s",
            "50",
            "--port",
            "9999",
        ]
    )
    config = config_from_args(args)
    assert args.port == 9999 and args.host == "127.0.0.1"
    assert config.ttft_ms == 5 and config.tokens_per_s == 50 and not config.open
    assert config.keys == {"sk-a": KeyLimits(9, 100, 0), "sk-b": KeyLimits()}
