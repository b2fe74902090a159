"""The Redis and Postgres fixtures give working, isolated servers."""

from __future__ import annotations

import psycopg
import redis


def test_redis_fixture_answers_and_isolates_keys(redis_url: str, redis_prefix: str) -> None:
    client = redis.Redis.from_url(redis_url)
    client.set(redis_prefix + "probe", "1")
    assert client.get(redis_prefix + "probe") == b"1"


def test_database_fixture_is_a_database_of_this_run(database_url: str) -> None:
    with psycopg.connect(database_url) as conn:
        name = conn.execute("select current_database()").fetchone()
        assert name is not None and name[0].startswith("kestrel_test_"), "a database created for this run"
