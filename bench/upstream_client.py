"""Upstream client CPU: HttpxTransport against FastTransport, on the same requests.

Starts the simulator (``kestrel sim``) as a subprocess, then drives each transport from this
process on uvloop (as the edge runs) at a fixed concurrency and reports this process's CPU time
per request (``time.process_time``, user + system). The simulator's CPU is in another process and
not counted, so the figures are the client's cost alone, loop overhead included.

    python -m bench.upstream_client [--requests 2000] [--concurrency 8] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import uvloop

from kestrel.common.config import EdgeConfig
from kestrel.common.serving import free_port
from kestrel.edge.http import FastTransport
from kestrel.edge.upstream import HttpxTransport, Upstream, UpstreamTransport

BODY = b'{"model":"m","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
STREAM_BODY = b'{"model":"m","max_tokens":16,"stream":true,"messages":[{"role":"user","content":"hi"}]}'
HEADERS = [
    (b"content-type", b"application/json"),
    (b"anthropic-version", b"2023-06-01"),
    (b"user-agent", b"claude-cli/2.0.0 (external, cli)"),
    (b"x-api-key", b"k"),
    (b"accept-encoding", b"identity"),
]


def wait_ready(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/v1/models", headers={"x-api-key": "k"}, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not start")


async def drive(
    transport: UpstreamTransport, upstream: Upstream, body: bytes, stream: bool, requests: int, concurrency: int
) -> None:
    """Send ``requests`` requests from ``concurrency`` workers, each read to its last byte."""
    queue = iter(range(requests))

    async def worker() -> None:
        for _ in queue:
            response = await transport.open(upstream, "POST", "/v1/messages", HEADERS, body)
            if stream:
                async for _chunk in response.iter_chunks():
                    pass
                await response.aclose()
            else:
                await response.read()
            if response.status_code != 200:
                raise RuntimeError(f"status {response.status_code}")

    await asyncio.gather(*(worker() for _ in range(concurrency)))


async def measure(
    make: Callable[[], UpstreamTransport],
    upstream: Upstream,
    body: bytes,
    stream: bool,
    requests: int,
    concurrency: int,
) -> tuple[float, float]:
    """CPU and wall milliseconds per request, after a warm-up that fills the pool."""
    transport = make()
    try:
        await drive(transport, upstream, body, stream, 200, concurrency)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await drive(transport, upstream, body, stream, requests, concurrency)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    finally:
        await transport.aclose()
    return cpu / requests * 1000, wall / requests * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3, help="best of N per case, to damp noise")
    args = parser.parse_args()
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    kestrel_bin = str(Path(sys.executable).with_name("kestrel"))
    sim = subprocess.Popen([kestrel_bin, "sim", "--port", str(port)], stderr=subprocess.DEVNULL)
    config = EdgeConfig()
    upstream = Upstream("bench", "anthropic", url, (b"x-api-key", b"k"))
    transports: dict[str, Callable[[], UpstreamTransport]] = {
        "httpx": lambda: HttpxTransport(config),
        "fast": lambda: FastTransport(config),
    }
    try:
        wait_ready(url)
        print(
            f"upstream client: {args.requests} requests per case, concurrency {args.concurrency}, "
            f"best of {args.rounds}, uvloop, this process's CPU only"
        )
        print(
            f"{'case':<12}{'httpx CPU/req':>15}{'fast CPU/req':>14}{'ratio':>8}{'httpx wall/req':>16}"
            f"{'fast wall/req':>15}"
        )
        for name, body, stream in (("non-stream", BODY, False), ("stream", STREAM_BODY, True)):
            best: dict[str, tuple[float, float]] = {}
            for _ in range(args.rounds):
                for label, make in transports.items():
                    cpu, wall = uvloop.run(measure(make, upstream, body, stream, args.requests, args.concurrency))
                    old = best.get(label)
                    best[label] = (min(cpu, old[0]), min(wall, old[1])) if old else (cpu, wall)
            (h_cpu, h_wall), (f_cpu, f_wall) = best["httpx"], best["fast"]
            print(f"{name:<12}{h_cpu:>13.3f}ms{f_cpu:>12.3f}ms{h_cpu / f_cpu:>7.1f}x{h_wall:>14.3f}ms{f_wall:>13.3f}ms")
    finally:
        sim.terminate()
        sim.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
