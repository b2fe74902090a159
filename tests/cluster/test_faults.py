"""Faults under load, each with nothing lost: a logger, Postgres, a scheduler, Redis."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from cluster.harness import Cluster, cluster
from cluster.load import Load
from cluster.servers import own_postgres, own_redis
from kestrel.sim.config import KeyLimits, SimConfig
from kestrel.sim.testing import SimHandle, running_sim

KEYS = ("sk-a", "sk-b")


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    with running_sim(SimConfig(keys={k: KeyLimits() for k in KEYS}, open=False)) as handle:
        yield handle


def accounts(sim: SimHandle) -> list[dict]:
    return [{"id": k, "base_url": sim.url, "api_key": k, "max_concurrency": 50} for k in KEYS]


def edge_urls(group: Cluster) -> list[str]:
    return [p.url for p in group.procs.values() if p.role == "edge"]


def recorded(database_url: str, request_ids: list[str], timeout: float = 60) -> dict[str, int]:
    """How many rows each request has in Postgres, once every one has at least one (or time is up)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with psycopg.connect(database_url, connect_timeout=3) as conn:
                counts = dict(
                    conn.execute(
                        "select request_id, count(*) from requests where request_id = any(%s) group by request_id",
                        (request_ids,),
                    ).fetchall()
                )
        except psycopg.OperationalError:
            counts = {}
        if len(counts) >= len(request_ids) or time.monotonic() > deadline:
            return counts
        time.sleep(0.5)


def assert_each_recorded_once(database_url: str, request_ids: list[str]) -> None:
    counts = recorded(database_url, request_ids)
    missing = set(request_ids) - set(counts)
    assert not missing, f"{len(missing)} of {len(request_ids)} requests never reached Postgres"
    assert all(n == 1 for n in counts.values()), "a request was recorded more than once"


def test_logger_killed_mid_batch_loses_nothing(
    sim: SimHandle, tmp_path: Path, redis_url: str, redis_prefix: str, database_url: str
) -> None:
    with cluster(
        tmp_path,
        redis_url=redis_url,
        prefix=redis_prefix,
        database_url=database_url,
        accounts=accounts(sim),
        extra={"logger": {"claim_idle_seconds": 2, "batch_size": 50}},
    ) as group:
        load = Load(edge_urls(group), rate=60, seconds=6).start()
        time.sleep(2)
        group.stop("logger-1", signal.SIGKILL)
        outcomes = load.join()
        assert [o.status for o in outcomes] == [200] * len(outcomes)
        assert_each_recorded_once(database_url, [o.request_id for o in outcomes])


def test_scheduler_killed_under_load_requests_continue_on_the_other(
    sim: SimHandle, tmp_path: Path, redis_url: str, redis_prefix: str, database_url: str
) -> None:
    with cluster(
        tmp_path, redis_url=redis_url, prefix=redis_prefix, database_url=database_url, accounts=accounts(sim)
    ) as group:
        load = Load(edge_urls(group), rate=50, seconds=6).start()
        time.sleep(2)
        group.stop("scheduler-1", signal.SIGKILL)
        outcomes = load.join()
        failed = [o for o in outcomes if o.status != 200]
        assert not failed, f"{len(failed)} requests failed after a scheduler died: {failed[:3]}"
        assert max(o.elapsed for o in outcomes) < 10
        assert_each_recorded_once(database_url, [o.request_id for o in outcomes])


def test_postgres_down_for_30_seconds_loses_nothing(
    sim: SimHandle, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    with (
        own_postgres() as postgres,
        cluster(
            tmp_path,
            redis_url=redis_url,
            prefix=redis_prefix,
            database_url=postgres.url,
            accounts=accounts(sim),
            edges=1,
            schedulers=1,
        ) as group,
    ):
        load = Load(edge_urls(group), rate=10, seconds=40).start()
        time.sleep(3)
        postgres.stop()
        time.sleep(30)
        postgres.start()
        outcomes = load.join()
        assert [o.status for o in outcomes] == [200] * len(outcomes), "requests never wait on the database"
        assert_each_recorded_once(postgres.url, [o.request_id for o in outcomes])
        for name in ("logger-1", "logger-2"):
            assert group.procs[name].popen is not None and group.procs[name].popen.poll() is None


def test_redis_restart_degrades_to_503_then_recovers_without_losing_events(
    sim: SimHandle, tmp_path: Path, database_url: str
) -> None:
    """While Redis is down the schedulers cannot lease: edges answer 503 at once (no hang) and keep
    events in their bounded buffers. Redis comes back empty (no persistence): cooldowns, sticky
    bindings and leases start afresh, the logger recreates its consumer group, the edges send what
    they buffered, and requests succeed again."""
    with (
        own_redis(tmp_path) as redis_server,
        cluster(
            tmp_path, redis_url=redis_server.url, prefix="kestrel:", database_url=database_url, accounts=accounts(sim)
        ) as group,
    ):
        load = Load(edge_urls(group), rate=20, seconds=12).start()
        time.sleep(3)
        redis_server.kill()
        time.sleep(2)
        redis_server.start()
        outcomes = load.join()
        assert all(o.status in (200, 503) for o in outcomes), {o.status for o in outcomes}
        assert max(o.elapsed for o in outcomes) < 10, "nothing hangs while Redis is away"
        outage = [o for o in outcomes if o.status == 503]
        assert all("overloaded_error" in o.error for o in outage)
        late = [o for o in outcomes if o.sent_at > 9]
        assert late and all(o.status == 200 for o in late), "requests succeed again after Redis is back"
        assert_each_recorded_once(database_url, [o.request_id for o in outcomes if o.sent_at > 5.5])
