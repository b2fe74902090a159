"""The real Claude Code CLI (``@anthropic-ai/claude-code``) through Kestrel to the simulator.

Claude Code is installed with npm into a cache folder on first use. A recording pass-through sits
between Claude Code and Kestrel so the test can compare what Claude Code sent with what the
simulator received, byte for byte.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
from needs import need

from integration.capture import CaptureProxy
from integration.harness import KestrelHandle, account, running_kestrel
from kestrel.common.serving import serve_in_thread
from kestrel.edge.testing.stream_validators import validate_anthropic_sse
from kestrel.sim.testing import SimHandle, running_sim

VERSION = "2.1.197"
CACHE = Path(os.environ.get("KESTREL_TEST_CACHE", Path.home() / ".cache" / "kestrel-tests")) / "claude-code"
pytestmark = pytest.mark.claude_code


@pytest.fixture(scope="module")
def claude() -> Path:
    binary = CACHE / "node_modules" / ".bin" / "claude"
    if binary.exists():
        return binary
    if shutil.which("node") is None or shutil.which("npm") is None:
        need("Claude Code needs Node.js and npm, which are not on PATH")
    CACHE.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(CACHE), f"@anthropic-ai/claude-code@{VERSION}"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if result.returncode != 0 or not binary.exists():
        need(f"npm could not install @anthropic-ai/claude-code@{VERSION}: {result.stderr[-500:]}")
    return binary


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SimHandle, KestrelHandle, CaptureProxy, str]]:
    with (
        running_sim() as sim,
        running_kestrel(
            tmp_path_factory.mktemp("k"), accounts=[account(sim.url, "sk-one"), account(sim.url, "sk-two")]
        ) as kestrel,
    ):
        proxy = CaptureProxy(kestrel.url)
        with serve_in_thread(proxy) as front:
            yield sim, kestrel, proxy, front.url


def validate_streams(proxy: CaptureProxy) -> int:
    """The strict validator over every stream Claude Code read through ``proxy``; how many there were."""
    streams = [c for c in proxy.seen if c.path == "/v1/messages" and c.streamed]
    for captured in streams:
        validate_anthropic_sse(bytes(captured.answer))
    return len(streams)


def run_claude(
    claude: Path, base_url: str, prompt: str, workdir: Path, *extra: str, env_extra: dict[str, str] | None = None
) -> dict:
    home = workdir / "home"
    home.mkdir(exist_ok=True)
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "kestrel-client-key",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        **(env_extra or {}),
    }
    result = subprocess.run(
        [str(claude), "-p", prompt, "--output-format", "json", *extra],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, f"claude failed: {result.stdout[-2000:]} {result.stderr[-2000:]}"
    return json.loads(result.stdout)


def test_claude_code_print_mode_completes_and_bodies_arrive_byte_identical(
    claude: Path, stack: tuple[SimHandle, KestrelHandle, CaptureProxy, str], tmp_path: Path
) -> None:
    sim, kestrel, proxy, url = stack
    sim.reset()
    proxy.seen.clear()
    sim.script([{"content": [{"type": "text", "text": "Kestrels hover while hunting."}]}])
    out = run_claude(claude, url, "Tell me one fact about kestrels", tmp_path)
    assert out["is_error"] is False
    assert out["result"] == "Kestrels hover while hunting."

    sent = [c for c in proxy.seen if c.path == "/v1/messages"]
    received = [r for r in sim.requests() if r["path"] == "/v1/messages"]
    assert sent and len(sent) == len(received)
    for client_request, upstream_request in zip(sent, received, strict=True):
        assert upstream_request["body"].encode() == client_request.body
        body = orjson.loads(client_request.body)
        assert isinstance(body["system"], list) and len(body["system"]) >= 2
        assert any("cache_control" in block for block in body["system"])
        assert upstream_request["headers"]["anthropic-beta"] == client_request.headers["anthropic-beta"]
        assert upstream_request["headers"]["x-api-key"] in ("sk-one", "sk-two")

    events = kestrel.matching(lambda e: e.path == "/v1/messages" and e.session_id == out["session_id"], len(sent))
    assert len(events) == len(sent)
    assert events[-1].stream and events[-1].status == 200
    assert events[-1].cache_creation_input_tokens + events[-1].cache_read_input_tokens > 0
    assert validate_streams(proxy) > 0


def test_claude_code_runs_a_tool_and_answers_after_its_result(
    claude: Path, stack: tuple[SimHandle, KestrelHandle, CaptureProxy, str], tmp_path: Path
) -> None:
    sim, kestrel, proxy, url = stack
    sim.reset()
    proxy.seen.clear()
    note = tmp_path / "note.txt"
    note.write_text("the secret word is falcon\n")
    sim.script(
        [
            {"content": [{"type": "tool_use", "name": "Read", "input": {"file_path": str(note)}}]},
            {"content": [{"type": "text", "text": "The note says: falcon."}]},
        ]
    )
    out = run_claude(claude, url, "What does note.txt say?", tmp_path, "--allowedTools", "Read")
    assert out["result"] == "The note says: falcon."
    turns = [orjson.loads(r["body"]) for r in sim.requests() if r["path"] == "/v1/messages"]
    results = [
        block
        for message in turns[-1]["messages"]
        if isinstance(message["content"], list)
        for block in message["content"]
        if block.get("type") == "tool_result"
    ]
    assert results and "falcon" in json.dumps(results[-1]["content"])
    turns_recorded = kestrel.matching(lambda e: e.path == "/v1/messages" and e.session_id == out["session_id"], 2)
    assert len(turns_recorded) >= 2
    assert len({e.account_id for e in turns_recorded}) == 1, "both turns of the conversation stay on one account"
    assert validate_streams(proxy) >= 2


@pytest.mark.parametrize(
    ("provider", "model"),
    [
        ("openai", "sim-model"),
        ("gemini", "sim-model"),
        ("openai", "gpt-4o"),  # the capability table: output cap, no reasoning_effort
        ("gemini", "gemini-3-pro-preview"),  # thinkingLevel, signatures required on calls
    ],
)
def test_claude_code_over_a_translated_upstream_runs_a_tool_then_answers(
    claude: Path, provider: str, model: str, tmp_path: Path
) -> None:
    note = tmp_path / "note.txt"
    note.write_text("the secret word is merlin\n")
    account = {"id": provider, "provider": provider, "api_key": f"sk-{provider}", "model_map": {"*": model}}
    with (
        running_sim() as sim,
        running_kestrel(tmp_path, accounts=[{**account, "base_url": sim.url}]) as kestrel,
        serve_in_thread(proxy := CaptureProxy(kestrel.url)) as front,
    ):
        sim.script(
            [
                {"content": [{"type": "tool_use", "name": "Read", "input": {"file_path": str(note)}}]},
                {"content": [{"type": "text", "text": "The note says: merlin."}]},
            ]
        )
        out = run_claude(claude, front.url, "What does note.txt say?", tmp_path, "--allowedTools", "Read")
        assert out["is_error"] is False, out
        assert out["result"] == "The note says: merlin."
        assert validate_streams(proxy) >= 2
        upstream = [r for r in sim.requests() if r["path"] != "/v1/messages"]
        assert upstream, "the upstream was spoken to in its own API"
        last = orjson.loads(upstream[-1]["body"])
        assert "merlin" in json.dumps(last)
        if model == "gpt-4o":
            assert last["max_completion_tokens"] <= 16384 and "reasoning_effort" not in last
        if model.startswith("gemini-3"):
            thinking = last["generationConfig"]["thinkingConfig"]
            assert thinking["thinkingLevel"] in ("low", "high") and "thinkingBudget" not in thinking
            call = next(p for c in last["contents"] for p in c["parts"] if "functionCall" in p)
            assert call["thoughtSignature"] != "skip_thought_signature_validator", "the issued signature"
        events = kestrel.matching(lambda e: e.session_id == out["session_id"] and e.status == 200, 2)
        assert all(e.input_tokens > 0 and e.output_tokens > 0 for e in events)


def test_claude_code_falls_back_from_rate_limited_anthropic_accounts_to_openai(claude: Path, tmp_path: Path) -> None:
    model = "claude-sonnet-4-6"
    with running_sim() as sim:
        accounts = [
            {"id": "claude-a", "base_url": sim.url, "api_key": "sk-ca", "models": ["claude-*"]},
            {"id": "claude-b", "base_url": sim.url, "api_key": "sk-cb", "models": ["claude-*"]},
            {"id": "oai", "provider": "openai", "base_url": sim.url, "api_key": "sk-oai", "models": ["gpt-5"]},
        ]
        routing = {"fallbacks": {model: ["gpt-5"]}}
        with (
            running_kestrel(tmp_path, accounts=accounts, routing=routing, scheduler={"max_wait_seconds": 1}) as k,
            serve_in_thread(proxy := CaptureProxy(k.url)) as front,
        ):
            for key in ("sk-ca", "sk-cb"):
                sim.fault("429", key=key, count=20, retry_after=60)
            sim.script([{"content": [{"type": "text", "text": "Served by the fallback."}]}], key="sk-oai")
            out = run_claude(claude, front.url, "hello", tmp_path, env_extra={"ANTHROPIC_MODEL": model})
            assert out["is_error"] is False, out
            assert out["result"] == "Served by the fallback."
            assert validate_streams(proxy) >= 1
            served = k.matching(lambda e: e.session_id == out["session_id"] and e.status == 200)
            assert served and served[-1].account_id == "oai" and served[-1].stream
            assert {a.account_id for a in served[-1].attempts} >= {"oai"}
