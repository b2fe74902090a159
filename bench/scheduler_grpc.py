"""What gRPC costs the edge per attempt: acquire + complete in process, then via a gRPC server.

Both rows use one ``SchedulerService`` on a ``MemoryStore``, so the difference is the transport:
encoding, HTTP/2 on loopback and a second event loop. Each row is a closed loop of
``--concurrency`` callers (1: one attempt alone; 50: a busy edge), each repeating acquire →
complete(SUCCESS, with rate-limit headers and a session id) until ``--ops`` attempts are done or
``--seconds`` have passed. It prints latency per attempt (p50, p99), attempts per second, and
ratios against the in-process row at the same concurrency from this very run, so the machine's
speed cancels out, and CPU per attempt (user + system) of the edge side (this process) and of the
scheduler process. Accounts have more slots than there are callers: nobody waits for a slot.

Rows:

- in-process: the edge calls ``SchedulerService`` directly (``kestrel up``).
- grpc: ``GrpcLeaseClient`` → ``grpc_server`` in a separate process, as in a cluster (both
  processes on this machine; the edge's loop and the scheduler's loop each get their own core).

    python -m bench.scheduler_grpc [--ops 20000] [--seconds 5] [--concurrency 1 50]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pydantic import SecretStr

from kestrel.common.config import AccountConfig, SchedulerConfig
from kestrel.edge.clients import GrpcLeaseClient
from kestrel.scheduler import Completion, Lease, LeaseClient, LeaseRequest, MemoryStore, Outcome, SchedulerService

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
MODEL = "claude-sonnet-4-5"
SESSIONS = 20
ACCOUNTS = 8
SLOTS = 64
HEADERS = {
    "anthropic-ratelimit-tokens-limit": "400000",
    "anthropic-ratelimit-tokens-remaining": "380000",
    "anthropic-ratelimit-tokens-reset": "2030-01-01T00:00:00Z",
}


def service() -> SchedulerService:
    accounts = [
        AccountConfig(id=f"acct-{n}", api_key=SecretStr("sk-bench"), max_concurrency=SLOTS) for n in range(ACCOUNTS)
    ]
    return SchedulerService(accounts, SchedulerConfig(), MemoryStore())


async def drive(client: LeaseClient, ops: int, seconds: float, concurrency: int) -> tuple[list[float], float]:
    """Per-attempt latencies (seconds) and the wall time of the whole run."""
    latencies: list[float] = []
    numbers = itertools.count()
    deadline = time.monotonic() + seconds

    async def caller() -> None:
        for n in numbers:
            if n >= ops or time.monotonic() > deadline:
                return
            session = f"s{n % SESSIONS}"
            started = time.perf_counter()
            lease = await client.acquire(LeaseRequest(f"r{n}", MODEL, session_id=session, max_wait_s=1.0))
            if not isinstance(lease, Lease):
                raise RuntimeError(f"no lease: {lease}")
            done = Completion(Outcome.SUCCESS, 200, rate_limit_headers=HEADERS, session_id=session)
            await client.complete(lease, done)
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(caller() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


@dataclass(frozen=True)
class Row:
    p50_ms: float
    p99_ms: float
    rate: float
    edge_cpu_ms: float
    """CPU per attempt of this process (for in-process: the edge and the scheduler together)."""
    scheduler_cpu_ms: float | None = None
    """CPU per attempt of the scheduler process, when there is one."""


async def measure(client: LeaseClient, args: argparse.Namespace, concurrency: int, server_pid: int | None) -> Row:
    """One row, after a warm-up."""
    await drive(client, 500, args.seconds, concurrency)
    cpu, server_cpu = time.process_time(), cpu_seconds(server_pid) if server_pid else 0.0
    latencies, wall = await drive(client, args.ops, args.seconds, concurrency)
    edge_cpu = (time.process_time() - cpu) / len(latencies) * 1000
    scheduler_cpu = (cpu_seconds(server_pid) - server_cpu) / len(latencies) * 1000 if server_pid else None
    return Row(pct(latencies, 0.5), pct(latencies, 0.99), len(latencies) / wall, edge_cpu, scheduler_cpu)


async def in_process(args: argparse.Namespace, concurrency: int) -> Row:
    scheduler = service()
    try:
        return await measure(scheduler, args, concurrency, None)
    finally:
        await scheduler.aclose()


async def via_grpc(address: str, server_pid: int, args: argparse.Namespace, concurrency: int) -> Row:
    client = GrpcLeaseClient([address], timeout_s=2.0)
    try:
        return await measure(client, args, concurrency, server_pid)
    finally:
        await client.aclose()


async def serve_until_terminated() -> None:
    """The server process: print the port, serve until SIGTERM, drain."""
    from kestrel.scheduler.grpc_server import serve

    scheduler = service()
    server = await serve(scheduler, "127.0.0.1:0")
    print(server.port, flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(grace_s=1)
    await scheduler.aclose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ops", type=int, default=20000)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 50])
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        asyncio.run(serve_until_terminated())
        return 0
    server = subprocess.Popen(
        [sys.executable, "-m", "bench.scheduler_grpc", "--serve"], stdout=subprocess.PIPE, text=True
    )
    try:
        assert server.stdout is not None
        address = f"127.0.0.1:{int(server.stdout.readline())}"
        print(f"scheduler via gRPC: up to {args.ops} attempts or {args.seconds:g} s per row, MemoryStore, loopback")
        print(
            f"{'row':<12}{'conc':>5}{'p50':>10}{'p99':>10}{'attempts/s':>12}{'edge CPU':>10}{'sched CPU':>11}"
            f"{'p50 ratio':>11}{'p99 ratio':>11}{'rate ratio':>12}"
        )
        for concurrency in args.concurrency:
            base = asyncio.run(in_process(args, concurrency))
            remote = asyncio.run(via_grpc(address, server.pid, args, concurrency))
            for name, row in (("in-process", base), ("grpc", remote)):
                sched = "-" if row.scheduler_cpu_ms is None else f"{row.scheduler_cpu_ms:.3f}ms"
                print(
                    f"{name:<12}{concurrency:>5}{row.p50_ms:>8.3f}ms{row.p99_ms:>8.3f}ms{row.rate:>12.0f}"
                    f"{row.edge_cpu_ms:>8.3f}ms{sched:>11}{row.p50_ms / base.p50_ms:>10.1f}x"
                    f"{row.p99_ms / base.p99_ms:>10.1f}x{row.rate / base.rate:>11.2f}x"
                )
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
