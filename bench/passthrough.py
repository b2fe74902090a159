"""Passthrough overhead: the same requests straight to the simulator, then through Kestrel.

Runs the simulator and ``kestrel up`` as separate processes on loopback, drives each path with
the same client at a fixed concurrency, and prints latency added (p50, p99) and Kestrel's CPU per
request (from /proc, user + system), streaming and not. Figures are ratios against the direct
baseline from this very run, so the machine's speed cancels out.

    python -m bench.passthrough [--requests 2000] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import yaml

from kestrel.common.serving import free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SMALL = {"model": "claude-sonnet-4-6", "max_tokens": 32, "messages": [{"role": "user", "content": "hello there"}]}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def wait_ready(url: str, path: str = "/", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + path, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def drive(url: str, body: dict, requests: int, concurrency: int) -> list[float]:
    """Return per-request latencies (seconds) to the last byte."""
    latencies: list[float] = []
    queue = iter(range(requests))
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30, headers={"x-api-key": "bench-key"}) as client:

        async def worker() -> None:
            for _ in queue:
                started = time.perf_counter()
                async with client.stream("POST", "/v1/messages", json=body) as response:
                    async for _ in response.aiter_raw():
                        pass
                    if response.status_code != 200:
                        raise RuntimeError(f"status {response.status_code}")
                latencies.append(time.perf_counter() - started)

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8])
    args = parser.parse_args()
    kestrel_bin = str(Path(sys.executable).with_name("kestrel"))
    tmp = Path(tempfile.mkdtemp(prefix="kestrel-bench-"))
    sim_port, k_port = free_port(), free_port()
    sim_url, k_url = f"http://127.0.0.1:{sim_port}", f"http://127.0.0.1:{k_port}"
    config = {
        "server": {"port": k_port},
        "accounts": [{"id": "bench", "base_url": sim_url, "api_key": "bench-key", "max_concurrency": 1000}],
        "logger": {"database": str(tmp / "bench.db")},
    }
    (tmp / "kestrel.yaml").write_text(yaml.safe_dump(config))
    procs = [
        subprocess.Popen([kestrel_bin, "sim", "--port", str(sim_port)], stderr=subprocess.DEVNULL),
        subprocess.Popen([kestrel_bin, "up", "--config", str(tmp / "kestrel.yaml")], stderr=subprocess.DEVNULL),
    ]
    try:
        wait_ready(sim_url, "/v1/models")
        wait_ready(k_url, "/livez")
        print(f"passthrough: {args.requests} requests per case, loopback, Kestrel CPU = user+system of its process")
        print(
            f"{'case':<12}{'conc':>5}{'direct p50':>12}{'p99':>9}{'kestrel p50':>13}{'p99':>9}"
            f"{'added p50':>11}{'added p99':>11}{'CPU/req':>10}{'rps ratio':>11}"
        )
        for name, body in (("non-stream", SMALL), ("stream", {**SMALL, "stream": True})):
            for concurrency in args.concurrency:
                asyncio.run(drive(sim_url, body, 200, concurrency))  # warm up both paths
                asyncio.run(drive(k_url, body, 200, concurrency))
                t0 = time.perf_counter()
                direct = asyncio.run(drive(sim_url, body, args.requests, concurrency))
                direct_wall = time.perf_counter() - t0
                cpu0 = cpu_seconds(procs[1].pid)
                t0 = time.perf_counter()
                proxied = asyncio.run(drive(k_url, body, args.requests, concurrency))
                proxied_wall = time.perf_counter() - t0
                cpu_ms = (cpu_seconds(procs[1].pid) - cpu0) / args.requests * 1000
                print(
                    f"{name:<12}{concurrency:>5}{pct(direct, 0.5):>10.2f}ms{pct(direct, 0.99):>7.2f}ms"
                    f"{pct(proxied, 0.5):>11.2f}ms{pct(proxied, 0.99):>7.2f}ms"
                    f"{pct(proxied, 0.5) - pct(direct, 0.5):>9.2f}ms{pct(proxied, 0.99) - pct(direct, 0.99):>9.2f}ms"
                    f"{cpu_ms:>8.3f}ms{direct_wall / proxied_wall:>10.2f}x"
                )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(10)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
