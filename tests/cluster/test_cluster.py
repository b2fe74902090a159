"""Kestrel with 2 edges, 2 schedulers and 2 loggers on one Redis and one Postgres, on loopback."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator

import httpx
import psycopg
import pytest

from cluster.harness import Cluster, cluster
from kestrel.edge.testing.stream_validators import validate_anthropic_sse
from kestrel.sim.config import KeyLimits, SimConfig
from kestrel.sim.testing import SimHandle, running_sim

KEYS = ("sk-a", "sk-b", "sk-c")
GEMINI_KEY = "sk-gemini"
BODY = {"model": "claude-sonnet-4-6", "max_tokens": 16, "messages": [{"role": "user", "content": "hello"}]}


@pytest.fixture(scope="module")
def sim() -> Iterator[SimHandle]:
    keys = {k: KeyLimits() for k in (*KEYS, GEMINI_KEY)}
    with running_sim(SimConfig(keys=keys, open=False, tokens_per_s=400)) as handle:
        yield handle


@pytest.fixture(scope="module")
def kestrel(
    sim: SimHandle, tmp_path_factory: pytest.TempPathFactory, redis_url: str, database_url: str
) -> Iterator[Cluster]:
    prefix = f"kestrel-cluster-test:{tmp_path_factory.getbasetemp().name}:"
    accounts = [
        {"id": k, "base_url": sim.url, "api_key": k, "max_concurrency": 2, "models": ["claude-*"]} for k in KEYS
    ]
    accounts.append(
        {"id": "gemini", "provider": "gemini", "base_url": sim.url, "api_key": GEMINI_KEY, "models": ["gemini-*"]}
    )
    with cluster(
        tmp_path_factory.mktemp("cluster"),
        redis_url=redis_url,
        prefix=prefix,
        database_url=database_url,
        accounts=accounts,
        extra={"scheduler": {"max_wait_seconds": 20}},
    ) as group:
        yield group


def edges(group: Cluster) -> list[str]:
    return [p.url for p in group.procs.values() if p.role == "edge"]


def rows(database_url: str, request_ids: list[str]) -> list[tuple[str, str, int]]:
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "select request_id, account_id, status from requests where request_id = any(%s)", (request_ids,)
        ).fetchall()


def wait_rows(database_url: str, request_ids: list[str], timeout: float = 20) -> list[tuple[str, str, int]]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        found = rows(database_url, request_ids)
        if len(found) >= len(request_ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.2)


async def spread(urls: list[str], count: int, body: dict, headers: dict | None = None) -> list[httpx.Response]:
    async with httpx.AsyncClient(timeout=60) as client:
        targets = itertools.islice(itertools.cycle(urls), count)
        return await asyncio.gather(
            *(client.post(url + "/v1/messages", json=body, headers=headers or {}) for url in targets)
        )


def test_burst_over_both_edges_respects_max_concurrency_and_is_recorded_once(
    kestrel: Cluster, sim: SimHandle, database_url: str
) -> None:
    sim.reset()
    long_stream = {
        **BODY,
        "max_tokens": 200,
        "stream": True,
        "messages": [{"role": "user", "content": "[[sim:text " + "word " * 60 + "]]"}],
    }
    responses = asyncio.run(spread(edges(kestrel), 24, long_stream))
    assert [r.status_code for r in responses] == [200] * 24
    for response in responses:
        validate_anthropic_sse(response.content)
    for key in KEYS:
        assert sim.key_state(key)["peak_in_flight"] <= 2, f"{key} exceeded max_concurrency across replicas"
    assert sum(sim.key_state(k)["peak_in_flight"] for k in KEYS) >= 4
    ids = [r.headers["x-kestrel-request-id"] for r in responses]
    recorded = wait_rows(database_url, ids)
    assert sorted(r[0] for r in recorded) == sorted(ids), "every request exactly once in Postgres"


def test_cooldown_from_one_replica_is_seen_by_the_other(kestrel: Cluster, sim: SimHandle, database_url: str) -> None:
    sim.reset()
    first, second = edges(kestrel)
    body = {**BODY, "model": "claude-cooling-test"}  # cooldowns are per model: keep other tests clear
    sim.fault("429", key="sk-a", count=1, retry_after=30)
    for key in ("sk-b", "sk-c"):
        sim.fault("429", key=key, count=1, retry_after=30)
    # Through edge 1: every account answers 429 once, so all three cool down for 30 s.
    cooled = httpx.post(first + "/v1/messages", json=body, timeout=30)
    assert cooled.status_code == 429
    # Through edge 2 (and whichever scheduler it reaches): the cooldowns are known, nothing is tried.
    blocked = httpx.post(second + "/v1/messages", json=body, timeout=30)
    assert blocked.status_code == 429
    assert 25 <= int(blocked.headers["retry-after"]) <= 30
    assert len([r for r in sim.requests() if r["path"] == "/v1/messages"]) == 3
    recorded = wait_rows(database_url, [blocked.headers["x-kestrel-request-id"]])
    assert recorded and recorded[0][2] == 429


def test_session_sticks_whichever_edge_and_scheduler_serve_it(
    kestrel: Cluster, sim: SimHandle, database_url: str
) -> None:
    sim.reset()
    urls = edges(kestrel)
    homes = {}
    for session in ("conv-1", "conv-2", "conv-3"):
        ids = []
        for url in urls * 3:  # alternate edges; each edge alternates scheduler replicas
            response = httpx.post(url + "/v1/messages", json=BODY, headers={"x-claude-code-session-id": session})
            assert response.status_code == 200
            ids.append(response.headers["x-kestrel-request-id"])
        accounts = {row[1] for row in wait_rows(database_url, ids)}
        assert len(accounts) == 1, f"{session} moved between accounts: {accounts}"
        homes[session] = accounts.pop()
    assert len(set(homes.values())) > 1, "different sessions spread over the pool"


def test_a_gemini_signature_kept_by_one_edge_is_restored_by_the_other(kestrel: Cluster, sim: SimHandle) -> None:
    """An OpenAI client cannot carry Gemini's signature; the next turn may reach another replica."""
    sim.reset()
    sim.script(
        [
            {"content": [{"type": "tool_use", "name": "read_file", "input": {"path": "main.py"}}]},
            {"content": [{"type": "text", "text": "It defines main()."}]},
        ]
    )
    first, second = edges(kestrel)
    tool = {"type": "function", "function": {"name": "read_file", "parameters": {"type": "object"}}}
    body = {"model": "gemini-2.5-pro", "reasoning_effort": "low", "tools": [tool], "stream": True}
    messages: list[dict] = [{"role": "user", "content": "what is in main.py?"}]
    turn = httpx.post(first + "/v1/chat/completions", json={**body, "messages": messages}, timeout=30)
    assert turn.status_code == 200, turn.text
    chunks = [json.loads(line[6:]) for line in turn.text.splitlines() if line.startswith("data: {")]
    calls = [c for chunk in chunks for choice in chunk["choices"] for c in choice["delta"].get("tool_calls", [])]
    call_id = calls[0]["id"]
    messages += [
        {"role": "assistant", "tool_calls": [{"id": call_id, "type": "function", "function": calls[0]["function"]}]},
        {"role": "tool", "tool_call_id": call_id, "content": "def main(): ..."},
    ]
    answer = httpx.post(second + "/v1/chat/completions", json={**body, "stream": False, "messages": messages})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"] == "It defines main()."
    sent = json.loads(sim.requests()[-1]["body"])
    call_part = next(p for c in sent["contents"] for p in c["parts"] if "functionCall" in p)
    assert call_part["thoughtSignature"] not in ("", "skip_thought_signature_validator")


def test_edges_and_loggers_expose_prometheus_metrics(kestrel: Cluster) -> None:
    from prometheus_client.parser import text_string_to_metric_families

    expected_by_role = {
        "edge": "kestrel_requests",
        "logger": "kestrel_logger_events_written",
        "scheduler": "kestrel_scheduler_leases",
    }
    for proc in kestrel.procs.values():
        port = proc.metrics_port if proc.role == "scheduler" else proc.port
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
        names = {family.name for family in text_string_to_metric_families(text)}
        expected = expected_by_role[proc.role]
        assert expected in names, f"{proc.name}: {sorted(names)}"


def test_kestrel_logs_reads_the_cluster_database(kestrel: Cluster, database_url: str) -> None:
    import subprocess

    from cluster.harness import KESTREL

    response = httpx.post(edges(kestrel)[0] + "/v1/messages", json=BODY)
    request_id = response.headers["x-kestrel-request-id"]
    wait_rows(database_url, [request_id])
    out = subprocess.run(
        [KESTREL, "logs", "--json", "-n", "500", "--config", str(kestrel.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        env=kestrel.env,
    )
    assert out.returncode == 0, out.stderr
    assert request_id in out.stdout
