"""A steady, bounded load on loopback edges, on a thread, while a test breaks things."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from dataclasses import dataclass, field

import httpx

BODY = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}


@dataclass
class Outcome:
    status: int
    request_id: str
    error: str = ""
    elapsed: float = 0.0
    sent_at: float = 0.0


@dataclass
class Load:
    """``rate`` requests per second spread over ``urls`` for ``seconds``; results in ``outcomes``."""

    urls: list[str]
    rate: float
    seconds: float
    body: dict = field(default_factory=lambda: dict(BODY))
    outcomes: list[Outcome] = field(default_factory=list)
    _thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)
        self._thread.start()
        return self

    def join(self) -> list[Outcome]:
        assert self._thread is not None
        self._thread.join(self.seconds + 120)
        assert not self._thread.is_alive(), "load did not finish"
        return self.outcomes

    async def _run(self) -> None:
        started = time.monotonic()
        count = int(self.rate * self.seconds)
        urls = itertools.cycle(self.urls)
        async with httpx.AsyncClient(timeout=60) as client:
            tasks = []
            for i in range(count):
                delay = started + i / self.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                tasks.append(asyncio.create_task(self._one(client, next(urls), started)))
            await asyncio.gather(*tasks)

    async def _one(self, client: httpx.AsyncClient, url: str, started: float) -> None:
        sent = time.monotonic()
        try:
            response = await client.post(url + "/v1/messages", json=self.body)
            self.outcomes.append(
                Outcome(
                    response.status_code,
                    response.headers.get("x-kestrel-request-id", ""),
                    "" if response.status_code == 200 else response.text[:200],
                    time.monotonic() - sent,
                    sent - started,
                )
            )
        except httpx.HTTPError as exc:
            self.outcomes.append(Outcome(0, "", repr(exc), time.monotonic() - sent, sent - started))
