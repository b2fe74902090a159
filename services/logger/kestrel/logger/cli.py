"""``kestrel logs``: print the most recent requests from the local request log.

Reads the SQLite file named by ``logger.database`` in the configuration, read-only, so it can
run while ``kestrel up`` is writing. The newest requests are fetched and printed oldest first,
so the latest one is on the line just above the prompt, as with ``tail``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import sys
from pathlib import Path

from kestrel.common.config import ConfigError, load_config
from kestrel.common.events import RequestEvent

from .render import render_json_lines, render_table
from .sink.sqlite import SQLiteSink

CONFIG_ENV = "KESTREL_CONFIG"


def build_parser() -> argparse.ArgumentParser:
    """The ``logs`` arguments; the ``kestrel`` command can mount this as a subcommand."""
    parser = argparse.ArgumentParser(
        prog="kestrel logs", description="Show the most recent requests through the gateway."
    )
    parser.add_argument("--config", help=f"configuration file (default: ${CONFIG_ENV})")
    parser.add_argument(
        "-n", "--limit", type=_non_negative, default=20, help="how many requests (default 20)"
    )
    parser.add_argument("--account", help="only requests served by this account id")
    parser.add_argument("--model", help="only requests for this model, requested or served")
    parser.add_argument("--status", type=int, help="only requests answered with this status")
    parser.add_argument("--key", help="only requests made with this client key id")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    return parser


def main(argv: list[str] | None = None, *, config_path: str | None = None) -> int:
    """Run ``kestrel logs``; returns the exit status.

    The configuration file is, in order: ``--config``, ``config_path`` (what the ``kestrel``
    command resolved), ``$KESTREL_CONFIG``, or none (built-in defaults plus ``KESTREL_*``).
    """
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
    database = Path(config.logger.database).expanduser()
    if not database.exists():
        print(
            f"kestrel logs: no request log at {database} yet (kestrel up creates it)",
            file=sys.stderr,
        )
        return 1
    try:
        events = asyncio.run(_fetch(database, args))
    except sqlite3.Error as exc:
        print(f"kestrel logs: cannot read {database}: {exc}", file=sys.stderr)
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


async def _fetch(database: Path, args: argparse.Namespace) -> list[RequestEvent]:
    async with await SQLiteSink.open(database, readonly=True) as sink:
        return await sink.recent(
            args.limit,
            client_key_id=args.key,
            account_id=args.account,
            model=args.model,
            status=args.status,
        )


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value
