"""Scheduler cost per attempt: acquire + complete, in memory, through Redis, and with two replicas.

Each row drives ``LeaseClient``s (one per replica) with the same closed loop: ``--concurrency``
callers (1: the latency of one attempt alone; 50: a busy scheduler), each repeating acquire →
complete(SUCCESS, with rate-limit headers and a session id), until ``--ops`` attempts are done or
``--seconds`` have passed. It prints latency per attempt (p50, p99) and attempts per second, with
ratios against the in-memory baseline at the same concurrency from this very run, so the machine's
speed cancels out. The accounts have more slots than there are callers: the figures are the cost
of the state store, not of waiting for a slot.

Rows (``TARGETS``; add one, e.g. "via gRPC", by naming a factory that yields the replicas' clients):

- memory: one ``SchedulerService`` on a ``MemoryStore``, the ``kestrel up`` path.
- redis: one ``SchedulerService`` on a ``RedisStore`` (5 round trips per attempt: snapshot,
  try_acquire, release, apply, bind_session).
- redis x2: two services on two clients in one process, callers split between them; they share
  one CPU, so this row shows the cost of contention in Redis, not scaling.
- redis x2 procs: the same two replicas in two processes, as in a cluster.

    python -m bench.scheduler [--ops 20000] [--seconds 5] [--concurrency 1 50] [--redis-url URL]

Redis comes from ``--redis-url`` or ``REDIS_URL`` (default ``redis://127.0.0.1:6379/0``); every
key goes under a unique prefix, deleted afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import redis
import redis.asyncio as aioredis
from pydantic import SecretStr

from kestrel.common.config import AccountConfig, SchedulerConfig
from kestrel.scheduler import (
    Completion,
    Lease,
    LeaseClient,
    LeaseRequest,
    MemoryStore,
    Outcome,
    RedisStore,
    SchedulerService,
)

MODEL = "claude-sonnet-4-5"
SESSIONS = 20
HEADERS = {
    "anthropic-ratelimit-tokens-limit": "400000",
    "anthropic-ratelimit-tokens-remaining": "380000",
    "anthropic-ratelimit-tokens-reset": "2030-01-01T00:00:00Z",
}


@dataclass(frozen=True)
class Setup:
    """What every row shares: the accounts, and where Redis is."""

    redis_url: str
    prefix: str
    accounts: int
    slots: int

    def account_configs(self) -> list[AccountConfig]:
        return [
            AccountConfig(id=f"acct-{n}", api_key=SecretStr("sk-bench"), max_concurrency=self.slots)
            for n in range(self.accounts)
        ]


Replicas = Callable[[Setup], contextlib.AbstractAsyncContextManager[list[LeaseClient]]]


@contextlib.asynccontextmanager
async def memory(setup: Setup) -> AsyncIterator[list[LeaseClient]]:
    yield [SchedulerService(setup.account_configs(), SchedulerConfig(), MemoryStore())]


@contextlib.asynccontextmanager
async def redis_replicas(setup: Setup, count: int) -> AsyncIterator[list[LeaseClient]]:
    clients = [aioredis.Redis.from_url(setup.redis_url, max_connections=200) for _ in range(count)]
    services = [
        SchedulerService(setup.account_configs(), SchedulerConfig(), RedisStore(client, setup.prefix))
        for client in clients
    ]
    try:
        yield list(services)
    finally:
        for service in services:
            await service.aclose()
        for client in clients:
            await client.aclose()


@contextlib.asynccontextmanager
async def redis_one(setup: Setup) -> AsyncIterator[list[LeaseClient]]:
    async with redis_replicas(setup, 1) as services:
        yield services


@contextlib.asynccontextmanager
async def redis_two(setup: Setup) -> AsyncIterator[list[LeaseClient]]:
    async with redis_replicas(setup, 2) as services:
        yield services


@dataclass(frozen=True)
class Target:
    name: str
    replicas: Replicas
    size: int = 1
    """How many replicas in all; a row needs at least one caller per replica."""
    processes: int = 1
    """Run this many copies of ``replicas``, one per process, splitting the callers and ops."""
    redis: bool = True
    """Whether to report the Redis server's CPU per attempt for this row."""


TARGETS = {
    target.name: target
    for target in (
        Target("memory", memory, redis=False),
        Target("redis", redis_one),
        Target("redis x2", redis_two, size=2),
        Target("redis x2 procs", redis_one, size=2, processes=2),
    )
}


@dataclass
class Run:
    latencies: list[float]
    """Seconds per attempt, acquire + complete."""
    started: float
    ended: float
    """Wall clock (time.time), comparable across processes."""
    cpu: float
    """CPU seconds (user + system) the driving process(es) spent, replicas and callers together."""
    exhausted: int = 0


async def drive(clients: list[LeaseClient], ops: int, seconds: float, concurrency: int) -> Run:
    """``concurrency`` callers spread over ``clients``, until ``ops`` attempts or ``seconds``."""
    latencies: list[float] = []
    exhausted = 0
    remaining = iter(range(ops))
    started, cpu = time.time(), time.process_time()
    deadline = time.perf_counter() + seconds

    async def caller(n: int) -> None:
        nonlocal exhausted
        client, session = clients[n % len(clients)], f"session-{n % SESSIONS}"
        for op in remaining:
            if time.perf_counter() > deadline:
                return
            t0 = time.perf_counter()
            lease = await client.acquire(LeaseRequest(f"req-{n}-{op}", MODEL, session_id=session))
            if not isinstance(lease, Lease):
                exhausted += 1
                continue
            completion = Completion(Outcome.SUCCESS, 200, rate_limit_headers=HEADERS, session_id=session)
            await client.complete(lease, completion)
            latencies.append(time.perf_counter() - t0)

    await asyncio.gather(*(caller(n) for n in range(concurrency)))
    return Run(latencies, started, time.time(), time.process_time() - cpu, exhausted)


async def run_target(
    name: str, setup: Setup, ops: int, seconds: float, concurrency: int, start_at: float = 0.0
) -> Run:
    async with TARGETS[name].replicas(setup) as clients:
        await drive(clients, min(ops, 500), 1.0, concurrency)  # warm up: connections, scripts, caches
        if start_at:
            await asyncio.sleep(max(start_at - time.time(), 0.0))
        return await drive(clients, ops, seconds, concurrency)


def run_in_process(name: str, setup: Setup, ops: int, seconds: float, concurrency: int, start_at: float) -> Run:
    return asyncio.run(run_target(name, setup, ops, seconds, concurrency, start_at))


def measure(name: str, setup: Setup, ops: int, seconds: float, concurrency: int) -> Run:
    processes = TARGETS[name].processes
    if processes == 1:
        return asyncio.run(run_target(name, setup, ops, seconds, concurrency))
    context = multiprocessing.get_context("spawn")
    start_at = time.time() + 3.0  # after every process has started and warmed up
    share = (name, setup, ops // processes, seconds, concurrency // processes, start_at)
    with context.Pool(processes) as pool:
        runs = pool.starmap(run_in_process, [share] * processes)
    return Run(
        [latency for run in runs for latency in run.latencies],
        min(run.started for run in runs),
        max(run.ended for run in runs),
        sum(run.cpu for run in runs),
        sum(run.exhausted for run in runs),
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def redis_cpu(url: str) -> float:
    """CPU seconds the Redis server has used so far (every client's work, not only ours)."""
    client = redis.Redis.from_url(url)
    try:
        info = client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    finally:
        client.close()


def delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=20000, help="attempts per row (all replicas together)")
    parser.add_argument("--seconds", type=float, default=5.0, help="stop a row after this long")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--accounts", type=int, default=8)
    parser.add_argument("--slots", type=int, default=16, help="max_concurrency of each account")
    parser.add_argument("--redis-url", default=os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--only", nargs="+", choices=sorted(TARGETS), help="run these rows only")
    args = parser.parse_args()
    setup = Setup(args.redis_url, f"kestrel-bench:{uuid.uuid4().hex[:12]}:", args.accounts, args.slots)
    names = args.only or list(TARGETS)
    if "memory" not in names:
        names.insert(0, "memory")
    print(
        f"scheduler: acquire + complete, up to {args.ops} attempts or {args.seconds:g} s per row, "
        f"{args.accounts} accounts x {args.slots} slots, {args.redis_url}"
    )
    print("CPU columns are per attempt: the driving process(es), and the Redis server (shared: noisy)")
    print(
        f"{'row':<16}{'callers':>8}{'attempts':>9}{'p50':>9}{'p99':>9}{'per s':>9}{'CPU':>8}{'Redis':>8}"
        f"{'p50 ratio':>11}{'p99 ratio':>11}{'rate ratio':>12}"
    )
    try:
        for concurrency in args.concurrency:
            baseline: tuple[float, float, float] | None = None
            for name in names:
                target = TARGETS[name]
                if target.size > concurrency:
                    continue
                server_cpu = redis_cpu(args.redis_url) if target.redis else 0.0
                run = measure(name, setup, args.ops, args.seconds, concurrency)
                done = max(len(run.latencies), 1)
                server = f"{(redis_cpu(args.redis_url) - server_cpu) / done * 1e6:>6.0f}us" if target.redis else " " * 8
                p50, p99 = pct(run.latencies, 0.5), pct(run.latencies, 0.99)
                rate = len(run.latencies) / (run.ended - run.started)
                baseline = baseline or (p50, p99, rate)
                note = f"  ({run.exhausted} exhausted)" if run.exhausted else ""
                print(
                    f"{name:<16}{concurrency:>8}{len(run.latencies):>9}{p50:>7.2f}ms{p99:>7.2f}ms{rate:>9.0f}"
                    f"{run.cpu / done * 1e6:>6.0f}us{server}"
                    f"{p50 / baseline[0]:>10.1f}x{p99 / baseline[1]:>10.1f}x{rate / baseline[2]:>11.2f}x{note}"
                )
    finally:
        delete_prefix(args.redis_url, setup.prefix)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
