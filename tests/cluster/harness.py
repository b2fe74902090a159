"""Kestrel as a cluster of real processes on loopback: schedulers, edges and loggers.

Every process reads the same YAML file (accounts, the Redis key prefix of this test, the
database) as the pods of a deployment would; each gets its own port. Processes can be killed
(SIGKILL or SIGTERM) and started again, which is what the fault tests do.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from kestrel.common.serving import free_port

KESTREL = str(Path(sys.executable).with_name("kestrel"))


@dataclass
class Proc:
    role: str
    name: str
    args: list[str]
    log: Path
    port: int = 0
    popen: subprocess.Popen[bytes] | None = None
    metrics_port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"


@dataclass
class Cluster:
    folder: Path
    config_path: Path
    env: dict[str, str]
    procs: dict[str, Proc] = field(default_factory=dict)

    def add(self, role: str, name: str, port: int = 0) -> Proc:
        proc = Proc(role, name, [KESTREL, role, "--config", str(self.config_path)], self.folder / f"{name}.log", port)
        if port:
            proc.args += ["--port", str(port)] if role == "edge" else ["--listen", f"127.0.0.1:{port}"]
        if role == "scheduler":
            proc.metrics_port = free_port()
            proc.args += ["--metrics-listen", f"127.0.0.1:{proc.metrics_port}"]
        self.procs[name] = proc
        return proc

    def start(self, name: str) -> Proc:
        proc = self.procs[name]
        log = proc.log.open("ab")
        proc.popen = subprocess.Popen(proc.args, stdout=log, stderr=subprocess.STDOUT, env=self.env)
        return proc

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        proc = self.procs[name]
        assert proc.popen is not None
        if proc.popen.poll() is None:
            proc.popen.send_signal(sig)
        return proc.popen.wait(timeout)

    def wait_http(self, name: str, path: str = "/readyz", timeout: float = 30) -> None:
        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.popen is not None
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.popen.returncode}:\n{self.tail(name)}")
            try:
                if httpx.get(proc.url + path, timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not ready after {timeout}s:\n{self.tail(name)}")

    def wait_grpc(self, name: str, timeout: float = 30) -> None:
        import grpc
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        proc = self.procs[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert proc.popen is not None
            if proc.popen.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.popen.returncode}:\n{self.tail(name)}")
            with grpc.insecure_channel(proc.address) as channel:
                try:
                    reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=1)
                    if reply.status == health_pb2.HealthCheckResponse.SERVING:
                        return
                except grpc.RpcError:
                    pass
            time.sleep(0.1)
        raise RuntimeError(f"{name} not serving after {timeout}s:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 40) -> str:
        path = self.procs[name].log
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:]) if path.exists() else ""

    def close(self) -> None:
        for proc in self.procs.values():
            if proc.popen is not None and proc.popen.poll() is None:
                proc.popen.kill()
                proc.popen.wait(10)


@contextlib.contextmanager
def cluster(
    folder: Path,
    *,
    redis_url: str,
    prefix: str,
    database_url: str,
    accounts: list[dict[str, Any]],
    schedulers: int = 2,
    edges: int = 2,
    loggers: int = 2,
    extra: dict[str, Any] | None = None,
) -> Iterator[Cluster]:
    """Start the processes, wait until each is ready, stop them all afterwards."""
    scheduler_ports = [free_port() for _ in range(schedulers)]
    config = {
        "accounts": accounts,
        "cluster": {
            "redis_url": redis_url,
            "database_url": database_url,
            "key_prefix": prefix,
            "scheduler_addresses": [f"127.0.0.1:{p}" for p in scheduler_ports],
        },
        **(extra or {}),
    }
    config_path = folder / "kestrel.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KESTREL_", "REDIS_URL", "DATABASE_URL"))}
    env["PYTHONUNBUFFERED"] = "1"
    group = Cluster(folder, config_path, env)
    try:
        for i, port in enumerate(scheduler_ports):
            group.add("scheduler", f"scheduler-{i + 1}", port)
        for i in range(loggers):
            group.add("logger", f"logger-{i + 1}", free_port())
        for i in range(edges):
            group.add("edge", f"edge-{i + 1}", free_port())
        for name, proc in group.procs.items():
            if proc.role == "scheduler":
                group.start(name)
        for name, proc in group.procs.items():
            if proc.role == "scheduler":
                group.wait_grpc(name)
        for name, proc in group.procs.items():
            if proc.role != "scheduler":
                group.start(name)
        for name, proc in group.procs.items():
            if proc.role != "scheduler":
                group.wait_http(name)
        yield group
    finally:
        group.close()
