"""``kestrel logs``, ``kestrel logs prune`` and ``kestrel migrate``: the request log by hand.

``kestrel logs`` reads the SQLite file named by ``logger.database`` in the configuration,
read-only, so it can run while ``kestrel up`` is writing. The newest requests are fetched and
printed oldest first, so the latest one is on the line just above the prompt, as with ``tail``.

``kestrel logs prune --older-than 30d`` removes old requests now, as the logger's retention task
does every few minutes. ``kestrel migrate`` brings the schema to this version (deploys run it
before starting new logger pods; the logger also migrates at start). Both act on the cluster's
Postgres when ``cluster.database_url`` or ``$DATABASE_URL`` names one, else on the SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import sys
from datetime import UTC, datetime
from pathlib import Path

from kestrel.common.config import ConfigError, KestrelConfig, load_config
from kestrel.common.events import RequestEvent

from . import migrations
from .render import render_json_lines, render_table
from .retention import DAY_S, parse_duration
from .sink.base import PruneResult
from .sink.sqlite import SQLiteSink

CONFIG_ENV = "KESTREL_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    """The ``logs`` arguments; the ``kestrel`` command can mount this as a subcommand."""
    parser = argparse.ArgumentParser(
        prog="kestrel logs",
        description="Show the most recent requests through the gateway.",
        epilog="kestrel logs prune --older-than 30d: delete old requests (see --help there)",
    )
    parser.add_argument("-c", "--config", help=f"configuration file (default: ${CONFIG_ENV})")
    parser.add_argument("-n", "--limit", type=_non_negative, default=20, help="how many requests (default 20)")
    parser.add_argument("--account", help="only requests served by this account id")
    parser.add_argument("--model", help="only requests for this model, requested or served")
    parser.add_argument("--status", type=int, help="only requests answered with this status")
    parser.add_argument("--key", help="only requests made with this client key id")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    _database_arg(parser)
    return parser


def main(argv: list[str] | None = None, *, config_path: str | None = None) -> int:
    """Run ``kestrel logs``; returns the exit status.

    The configuration file is, in order: ``--config``, ``config_path`` (what the ``kestrel``
    command resolved), ``$KESTREL_CONFIG``, or none (built-in defaults plus ``KESTREL_*``).
    ``kestrel logs prune ...`` is handed to ``prune_main``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["prune"]:
        return prune_main(argv[1:], config_path=config_path)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error already printed by argparse
        return exc.code if isinstance(exc.code, int) else 2
    path = args.config or config_path or os.environ.get(CONFIG_ENV) or None
    try:
        config = load_config(path)
    except ConfigError as exc:
        print(f"kestrel logs: {exc}", file=sys.stderr)
        return 2
    target = _database(config, args.database)
    if not migrations.is_postgres(target) and not Path(target).exists():
        print(
            f"kestrel logs: no request log at {target} yet (kestrel up creates it)",
            file=sys.stderr,
        )
        return 1
    try:
        events = asyncio.run(_fetch(target, args))
    except _database_errors(target) as exc:
        print(f"kestrel logs: cannot read {_describe(target)}: {exc}", file=sys.stderr)
        return 1
    events.reverse()
    if args.json:
        text = render_json_lines(events)
    else:
        text = render_table(events, width=shutil.get_terminal_size((160, 24)).columns)
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `kestrel logs | head` closed the pipe early: not an error worth a traceback.
        # Pointing stdout at devnull stops the interpreter's flush at exit from failing again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


async def _fetch(target: str, args: argparse.Namespace) -> list[RequestEvent]:
    """Recent requests from SQLite (``kestrel up``) or Postgres (cluster mode)."""
    filters = {"client_key_id": args.key, "account_id": args.account, "model": args.model, "status": args.status}
    if migrations.is_postgres(target):
        from .sink.postgres import PostgresSink

        async with await PostgresSink.open(target, migrate=False, readers=1) as postgres:
            return await postgres.recent(args.limit, **filters)
    async with await SQLiteSink.open(target, readonly=True) as sqlite:
        return await sqlite.recent(args.limit, **filters)


def build_prune_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kestrel logs prune", description="Delete requests older than a given age.")
    parser.add_argument("-c", "--config", help=f"configuration file (default: ${CONFIG_ENV})")
    parser.add_argument(
        "--older-than",
        type=_duration,
        help="age such as 30d, 12h or 90m (default: logger.retention_days)",
    )
    _database_arg(parser)
    return parser


def prune_main(argv: list[str] | None = None, *, config_path: str | None = None) -> int:
    """Run ``kestrel logs prune``; returns the exit status."""
    parsed = _parse(build_prune_parser(), argv, config_path)
    if isinstance(parsed, int):
        return parsed
    args, config = parsed
    target = _database(config, args.database)
    older_than_s = args.older_than or config.logger.retention_days * DAY_S
    if not migrations.is_postgres(target) and not Path(target).exists():
        print(f"kestrel logs prune: no request log at {target}", file=sys.stderr)
        return 1
    try:
        result = asyncio.run(_prune(target, older_than_s))
    except _database_errors(target) as exc:
        print(f"kestrel logs prune: {_describe(target)}: {exc}", file=sys.stderr)
        return 1
    cutoff = datetime.fromtimestamp(result.cutoff_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    summary = f"rows deleted: {result.deleted}"
    if migrations.is_postgres(target):
        summary += f", partitions dropped: {len(result.dropped_partitions)}"
    print(f"pruned requests that started before {cutoff} UTC from {_describe(target)}: {summary}")
    return 0


def build_migrate_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kestrel migrate",
        description="Bring the request-log schema to this version of Kestrel.",
    )
    parser.add_argument("-c", "--config", help=f"configuration file (default: ${CONFIG_ENV})")
    _database_arg(parser)
    return parser


def migrate_main(argv: list[str] | None = None, *, config_path: str | None = None) -> int:
    """Run ``kestrel migrate``; returns the exit status (1 for a database newer than the code).

    Safe to run from several places at once: the migrations take a lock and apply once.
    """
    parsed = _parse(build_migrate_parser(), argv, config_path)
    if isinstance(parsed, int):
        return parsed
    args, config = parsed
    target = _database(config, args.database)
    try:
        applied = asyncio.run(migrations.migrate(target))
    except migrations.SchemaTooNew as exc:
        print(f"kestrel migrate: {exc}", file=sys.stderr)
        return 1
    except _database_errors(target) as exc:
        print(f"kestrel migrate: {_describe(target)}: {exc}", file=sys.stderr)
        return 1
    for migration in applied:
        print(f"applied {migration.version}: {migration.description}")
    print(f"{_describe(target)} is at schema version {migrations.LATEST_VERSION}")
    return 0


def _parse(
    parser: argparse.ArgumentParser, argv: list[str] | None, config_path: str | None
) -> tuple[argparse.Namespace, KestrelConfig] | int:
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 2
    try:
        config = load_config(args.config or config_path or os.environ.get(CONFIG_ENV) or None)
    except ConfigError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 2
    return args, config


def _database_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--database",
        help="a postgresql:// URL or a SQLite file (default: cluster.database_url or "
        "$DATABASE_URL, else logger.database)",
    )


def _database(config: KestrelConfig, override: str | None) -> str:
    """The Postgres URL of cluster mode when there is one, else the local SQLite file."""
    target = override or config.cluster.database_url or config.logger.database
    return target if migrations.is_postgres(target) else str(Path(target).expanduser())


def _describe(target: str) -> str:
    """Where ``target`` points, without the password a URL may carry."""
    if not migrations.is_postgres(target):
        return target
    import psycopg

    info = psycopg.conninfo.conninfo_to_dict(target)
    return f"postgres database {info.get('dbname', '?')} on {info.get('host', 'localhost')}"


def _database_errors(target: str) -> tuple[type[BaseException], ...]:
    if migrations.is_postgres(target):
        import psycopg

        return (psycopg.Error, OSError)
    return (sqlite3.Error, OSError)


async def _prune(target: str, older_than_s: float) -> PruneResult:
    if migrations.is_postgres(target):
        from .sink.postgres import PostgresSink

        async with await PostgresSink.open(target) as postgres:
            return await postgres.prune(older_than_s)
    async with await SQLiteSink.open(target) as sqlite:
        return await sqlite.prune(older_than_s)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value
