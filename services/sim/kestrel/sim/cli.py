"""``kestrel sim``: serve the simulator in the foreground.

Flags override the config file: ``--key`` adds or replaces a key (``KEY[:rpm[:itpm[:otpm]]]``,
per-minute budgets, empty or 0 for unlimited), ``--closed`` refuses keys that are not listed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

import uvicorn

from kestrel.common.serving import uvicorn_config
from kestrel.sim.app import create_app
from kestrel.sim.config import ConfigError, SimConfig, load_config, parse_key_spec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kestrel sim", description="Simulate Anthropic's, OpenAI's and Gemini's APIs for tests and demos."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--config", metavar="FILE", help="YAML sim config")
    parser.add_argument(
        "--key",
        action="append",
        default=[],
        metavar="KEY[:rpm[:itpm[:otpm]]]",
        help="an API key and its per-minute limits (repeatable)",
    )
    parser.add_argument("--closed", action="store_true", help="401 for keys not configured")
    parser.add_argument("--ttft-ms", type=float, help="delay before the first content event")
    parser.add_argument("--tokens-per-s", type=float, help="output pacing (0: no pacing)")
    parser.add_argument("--chunk-tokens", type=int, help="tokens per text delta")
    parser.add_argument("--min-cache-tokens", type=int, help="shortest cacheable prefix")
    parser.add_argument("--log-level", default="warning")
    return parser


def config_from_args(args: argparse.Namespace) -> SimConfig:
    """The file's config (or defaults) with the flags applied on top."""
    config = load_config(args.config) if args.config else SimConfig()
    changes: dict[str, object] = {}
    for flag, name in (
        ("ttft_ms", "ttft_ms"),
        ("tokens_per_s", "tokens_per_s"),
        ("chunk_tokens", "chunk_tokens"),
        ("min_cache_tokens", "min_cache_tokens"),
    ):
        value = getattr(args, flag)
        if value is not None:
            changes[name] = value
    if args.key:
        keys = dict(config.keys)
        keys.update(parse_key_spec(spec) for spec in args.key)
        changes["keys"] = keys
    if args.closed:
        changes["open"] = False
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        config = config_from_args(args)
    except (ConfigError, OSError) as exc:
        print(f"kestrel sim: {exc}", file=sys.stderr)
        return 2
    app = create_app(config)
    server = uvicorn.Server(uvicorn_config(app, args.host, args.port, log_level=args.log_level))
    server.run()
    return 0
