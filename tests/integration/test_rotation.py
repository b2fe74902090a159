"""Rotation across a pool of accounts: bursts, sticky sessions, exhaustion, faults."""

from __future__ import annotations

import asyncio
import math
import time
from pathlib import Path

import httpx
import orjson

from integration.harness import account, running_kestrel
from kestrel.edge.sse import iter_events
from kestrel.edge.testing.stream_validators import validate_anthropic_sse
from kestrel.sim.config import KeyLimits, SimConfig
from kestrel.sim.testing import running_sim

KEYS = ("sk-a", "sk-b", "sk-c")
BODY = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}


def sim_config(requests_per_window: int, window_s: float = 20.0) -> SimConfig:
    return SimConfig(
        keys={k: KeyLimits(requests_per_window=requests_per_window, window_s=window_s) for k in KEYS}, open=False
    )


async def burst(url: str, count: int, **kwargs: object) -> list[httpx.Response]:
    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        return await asyncio.gather(*(client.post("/v1/messages", json=BODY, **kwargs) for _ in range(count)))


def test_burst_within_capacity_never_shows_a_429_then_exhaustion_answers_429(tmp_path: Path) -> None:
    with (
        running_sim(sim_config(3)) as sim,
        running_kestrel(
            tmp_path, accounts=[account(sim.url, k) for k in KEYS], scheduler={"max_wait_seconds": 0.5}
        ) as kestrel,
    ):
        responses = asyncio.run(burst(kestrel.url, 9))
        assert [r.status_code for r in responses] == [200] * 9
        events = kestrel.events(9)
        assert {e.account_id for e in events} == set(KEYS)

        for _ in range(2):  # keep asking: every account is spent until its window resets
            started = time.time()
            exhausted = httpx.post(kestrel.url + "/v1/messages", json=BODY, timeout=30)
            assert exhausted.status_code == 429
            assert exhausted.json()["error"]["type"] == "rate_limit_error"
            retry_after = exhausted.headers["retry-after"]
            assert retry_after.isdigit()
            earliest_reset = min(sim.key_state(k)["window"]["reset_at"] for k in KEYS)
            assert started + int(retry_after) >= earliest_reset - 0.001
            assert all(k in exhausted.json()["error"]["message"] for k in KEYS)

        recorded = kestrel.event(exhausted.headers["x-kestrel-request-id"])
        assert recorded.status == 429 and recorded.error_type == "rate_limit_error"


def test_burst_larger_than_one_account_spills_over_with_retries_hidden(tmp_path: Path) -> None:
    with (
        running_sim(sim_config(4)) as sim,
        running_kestrel(tmp_path, accounts=[account(sim.url, k, priority=i) for i, k in enumerate(KEYS)]) as kestrel,
    ):
        sim.fault("429", key="sk-a", count=2, retry_after=5)
        responses = asyncio.run(burst(kestrel.url, 10))
        assert [r.status_code for r in responses] == [200] * 10
        events = kestrel.events(10)
        retried = [e for e in events if len(e.attempts) > 1]
        assert retried, "the 429s from sk-a were retried on other accounts"
        assert all(e.attempts[0].status == 429 and e.attempts[-1].status == 200 for e in retried)


def test_session_sticks_to_its_account_and_moves_only_when_it_cools(tmp_path: Path) -> None:
    with (
        running_sim(sim_config(100)) as sim,
        running_kestrel(tmp_path, accounts=[account(sim.url, k) for k in KEYS]) as kestrel,
    ):

        def send(session: str) -> str:
            response = httpx.post(
                kestrel.url + "/v1/messages", json=BODY, headers={"x-claude-code-session-id": session}
            )
            assert response.status_code == 200
            return kestrel.event(response.headers["x-kestrel-request-id"]).account_id

        homes = {s: {send(s) for _ in range(4)} for s in ("s1", "s2", "s3")}
        assert all(len(accounts) == 1 for accounts in homes.values())
        home = homes["s1"].pop()
        sim.fault("429", key=home, count=1, retry_after=30)
        moved = send("s1")
        assert moved != home
        assert {send("s1") for _ in range(3)} == {moved}


def test_overloaded_and_failing_accounts_are_skipped_before_the_first_byte(tmp_path: Path) -> None:
    with (
        running_sim(sim_config(100)) as sim,
        running_kestrel(tmp_path, accounts=[account(sim.url, k, priority=i) for i, k in enumerate(KEYS)]) as kestrel,
    ):
        sim.fault("529", key="sk-a")
        sim.fault("500", key="sk-b")
        response = httpx.post(kestrel.url + "/v1/messages", json={**BODY, "stream": True}, timeout=30)
        assert response.status_code == 200
        validate_anthropic_sse(response.content)
        names = [name for name, _ in iter_events(response.content)]
        assert names[0] == "message_start" and names[-1] == "message_stop"
        event = kestrel.event(response.headers["x-kestrel-request-id"])
        assert [(a.account_id, a.status) for a in event.attempts] == [("sk-a", 529), ("sk-b", 500), ("sk-c", 200)]


def test_reset_mid_stream_ends_with_a_well_formed_error_event(tmp_path: Path) -> None:
    with running_sim(sim_config(100)) as sim, running_kestrel(tmp_path, accounts=[account(sim.url, "sk-a")]) as kestrel:
        sim.fault("reset", key="sk-a", after_events=4)
        started = time.monotonic()
        with httpx.stream("POST", kestrel.url + "/v1/messages", json={**BODY, "stream": True}, timeout=10) as response:
            assert response.status_code == 200
            raw = b"".join(response.iter_raw())
        assert time.monotonic() - started < 5
        assert raw.endswith(b"\n\n")
        assert validate_anthropic_sse(raw)[-1][0] == "error", "a valid stream, ended by its error event"
        events = list(iter_events(raw))
        assert events[0][0] == "message_start"
        assert events[-1][0] == "error"
        assert "message_stop" not in [name for name, _ in events]
        error = orjson.loads(events[-1][1])
        assert error["type"] == "error" and error["error"]["type"] == "api_error"
        for name, data in events:
            assert orjson.loads(data)["type"] == name
        recorded = kestrel.event(response.headers["x-kestrel-request-id"])
        assert recorded.attempts[-1].error == "stream_reset"
        assert "interrupted" in recorded.error_message
        assert math.isfinite(recorded.duration_ms)


def test_demoted_request_whose_stream_breaks_answers_a_clean_error(tmp_path: Path) -> None:
    with (
        running_sim(sim_config(100)) as sim,
        running_kestrel(tmp_path, accounts=[account(sim.url, "sk-a")], edge={"demote_non_streaming": True}) as kestrel,
    ):
        sim.fault("reset", key="sk-a", after_events=3)
        response = httpx.post(kestrel.url + "/v1/messages", json=BODY, timeout=10)
        assert response.status_code == 500
        assert response.json()["error"]["type"] == "api_error"
        assert "interrupted" in response.json()["error"]["message"]
        after = httpx.post(kestrel.url + "/v1/messages", json=BODY, timeout=10)
        assert after.status_code == 200 and after.json()["type"] == "message"


def test_client_leaving_mid_stream_frees_the_slot_and_is_recorded(tmp_path: Path) -> None:
    config = SimConfig(keys={"sk-a": KeyLimits()}, open=False, tokens_per_s=200)
    with (
        running_sim(config) as sim,
        running_kestrel(
            tmp_path, accounts=[account(sim.url, "sk-a", max_concurrency=1)], scheduler={"max_wait_seconds": 2}
        ) as kestrel,
    ):
        long_answer = {
            **BODY,
            "max_tokens": 400,
            "stream": True,
            "messages": [{"role": "user", "content": "[[sim:text " + "word " * 150 + "]]"}],
        }
        with httpx.stream("POST", kestrel.url + "/v1/messages", json=long_answer, timeout=10) as response:
            request_id = response.headers["x-kestrel-request-id"]
            for _ in response.iter_raw():
                break  # read the first event, then hang up
        event = kestrel.event(request_id, timeout=10)
        assert event.status == 499 and event.error_type == "client_disconnected"
        started = time.monotonic()
        after = httpx.post(kestrel.url + "/v1/messages", json=BODY, timeout=10)
        assert after.status_code == 200
        assert time.monotonic() - started < 1.5, "the single slot was released, not left to expire"
