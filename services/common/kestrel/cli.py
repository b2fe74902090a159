"""The ``kestrel`` command: one subcommand per role.

    kestrel up            edge + scheduler + logger in one process (embedded adapters)
    kestrel sim           the upstream simulator
    kestrel logs          recent requests as a table
    kestrel keys create   issue a client key (only its SHA-256 is stored)

Role modules are imported lazily so each subcommand starts with only what it needs.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from kestrel.common.config import ConfigError, KestrelConfig, hash_client_key, load_config, new_client_key


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        return 0
    command, rest = args[0], args[1:]
    try:
        if command == "up":
            return _up(rest)
        if command == "sim":
            from kestrel.sim.cli import main as sim_main

            return sim_main(rest)
        if command == "logs":
            from kestrel.logger.cli import main as logs_main

            return logs_main(rest)
        if command == "keys":
            return _keys(rest)
    except ConfigError as exc:
        print(f"kestrel: {exc}", file=sys.stderr)
        return 2
    print(f"kestrel: unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", default=os.environ.get("KESTREL_CONFIG"), help="YAML config file (env KESTREL_CONFIG)"
    )


def _load(path: str | None) -> KestrelConfig:
    if path is None and Path("kestrel.yaml").exists():
        path = "kestrel.yaml"
    return load_config(path)


def _up(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kestrel up", description="Run Kestrel in one process.")
    _config_arg(parser)
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")
    args = parser.parse_args(argv)
    config = _load(args.config)
    server = config.server.model_copy(
        update={k: v for k, v in (("host", args.host), ("port", args.port)) if v is not None}
    )
    config = config.model_copy(update={"server": server})
    from kestrel.up import run

    return run(config)


def _keys(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kestrel keys", description="Manage client keys.")
    sub = parser.add_subparsers(dest="action", required=True)
    create = sub.add_parser("create", help="issue a new client key")
    create.add_argument("name", help="key id, e.g. alice or ci-bot")
    create.add_argument("--add-to", metavar="FILE", help="append the hashed key to this YAML config file")
    args = parser.parse_args(argv)
    key = new_client_key()
    entry = {"id": args.name, "sha256": hash_client_key(key)}
    if args.add_to:
        path = Path(args.add_to)
        data = (yaml.safe_load(path.read_text()) if path.exists() else None) or {}
        keys = data.setdefault("auth", {}).setdefault("client_keys", [])
        if any(k.get("id") == args.name for k in keys):
            print(f"kestrel: {path} already has a client key named {args.name!r}", file=sys.stderr)
            return 2
        keys.append(entry)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        load_config(path)
        print(f"added client key {args.name!r} to {path}", file=sys.stderr)
    else:
        print("add to your config under auth.client_keys:", file=sys.stderr)
        print(yaml.safe_dump({"auth": {"client_keys": [entry]}}, sort_keys=False), file=sys.stderr)
    print("the key (shown once, Kestrel keeps only its hash):", file=sys.stderr)
    print(key)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
