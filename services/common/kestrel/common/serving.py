"""Run an ASGI app with uvicorn, in the foreground or on a background thread.

The background form serves tests, benchmarks and the demo upstream of ``kestrel up``: a real
socket on loopback, a port chosen by the OS, and a clean stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import uvicorn


def uvicorn_config(app: Any, host: str, port: int, **kwargs: Any) -> uvicorn.Config:
    """One place for the server settings every Kestrel role uses."""
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=kwargs.pop("log_level", "warning"),
        access_log=False,
        proxy_headers=kwargs.pop("proxy_headers", False),
        lifespan=kwargs.pop("lifespan", "on"),
        timeout_keep_alive=kwargs.pop("timeout_keep_alive", 75),
        **kwargs,
    )


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """A uvicorn server on its own thread and event loop."""

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._server = uvicorn.Server(uvicorn_config(app, self.host, self.port, **kwargs))
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._thread = threading.Thread(target=self._run, name=f"serve:{self.port}", daemon=True)
        self.loop: asyncio.AbstractEventLoop | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _run(self) -> None:
        self.loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._server.serve())

    def start(self, timeout: float = 10.0) -> BackgroundServer:
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        self._thread.join(timeout)


@contextlib.contextmanager
def serve_in_thread(app: Any, host: str = "127.0.0.1", port: int = 0, **kwargs: Any) -> Iterator[BackgroundServer]:
    server = BackgroundServer(app, host, port, **kwargs).start()
    try:
        yield server
    finally:
        server.stop()
