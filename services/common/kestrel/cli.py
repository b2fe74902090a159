"""The ``kestrel`` command: one subcommand per role.

    kestrel up            edge + scheduler + logger in one process (embedded adapters)
    kestrel edge          cluster mode: the gateway (leases over gRPC, events to Redis)
    kestrel scheduler     cluster mode: the scheduler over gRPC, state in Redis
    kestrel logger        cluster mode: request events from Redis into Postgres
    kestrel migrate       create or upgrade the request-log schema (SQLite or Postgres)
    kestrel sim           the upstream simulator
    kestrel logs          recent requests as a table; `kestrel logs prune --older-than 30d`
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
        if command == "migrate":
            from kestrel.logger.cli import migrate_main

            return migrate_main(rest)
        if command in ("edge", "logger"):
            return _http_role(command, rest)
        if command == "scheduler":
            return _scheduler(rest)
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


def _http_role(role: str, argv: list[str]) -> int:
    """``kestrel edge`` / ``kestrel logger``: an ASGI app under uvicorn, drained on SIGTERM."""
    parser = argparse.ArgumentParser(prog=f"kestrel {role}", description=f"Run the {role} (cluster mode).")
    _config_arg(parser)
    parser.add_argument("--host", help="override server.host")
    parser.add_argument("--port", type=int, help="override server.port")
    parser.add_argument("--listen", help="host:port, instead of --host and --port")
    args = parser.parse_args(argv)
    config = _load(args.config)
    host, port = config.server.host, config.server.port
    if args.listen:
        host, _, text = args.listen.rpartition(":")
        port = int(text)
    host = args.host or host
    port = args.port if args.port is not None else port
    config = config.model_copy(update={"server": config.server.model_copy(update={"host": host, "port": port})})
    config.check_bind()
    _logging()
    if role == "edge":
        from kestrel.edge.cluster import build as build_edge

        app: object = build_edge(config)
    else:
        from kestrel.logger.main import build as build_logger

        app = build_logger(config)
    import uvicorn

    from kestrel.common.serving import uvicorn_config

    uvicorn.Server(uvicorn_config(app, host, port, timeout_graceful_shutdown=30)).run()
    return 0


def _scheduler(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="kestrel scheduler", description="Run the scheduler (cluster mode).")
    _config_arg(parser)
    parser.add_argument("--listen", help="host:port for gRPC (default cluster.scheduler_listen)")
    parser.add_argument(
        "--metrics-listen", default="", help="host:port for /metrics (default cluster.scheduler_metrics_listen)"
    )
    args = parser.parse_args(argv)
    config = _load(args.config)
    _logging()
    import asyncio

    from kestrel.scheduler.main import run

    asyncio.run(run(config, args.listen or config.cluster.scheduler_listen, metrics_listen=args.metrics_listen))
    return 0


def _logging() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")


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
