"""Bad input: the right status, Anthropic's error envelope, no crash, and still recorded."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from integration.harness import KestrelHandle, account, running_kestrel
from kestrel.common.config import hash_client_key
from kestrel.sim.testing import SimHandle, running_sim

KEY = "kst-test-key-alice"


@pytest.fixture(scope="module")
def kestrel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[KestrelHandle, SimHandle]]:
    with (
        running_sim() as sim,
        running_kestrel(
            tmp_path_factory.mktemp("k"),
            accounts=[account(sim.url, "sk-one")],
            auth={"client_keys": [{"id": "alice", "sha256": hash_client_key(KEY)}]},
            edge={"max_body_bytes": 64 * 1024},
        ) as handle,
    ):
        yield handle, sim


GOOD = {"model": "claude-sonnet-4-6", "max_tokens": 8, "messages": [{"role": "user", "content": "hi"}]}


@pytest.mark.parametrize(
    ("method", "path", "headers", "body", "status", "kind", "words"),
    [
        (
            "POST",
            "/v1/messages",
            {"x-api-key": KEY},
            b'{"model": "claude',
            400,
            "invalid_request_error",
            "not valid JSON",
        ),
        (
            "POST",
            "/v1/messages",
            {"x-api-key": KEY},
            b'{"max_tokens":1,"messages":[]}',
            400,
            "invalid_request_error",
            "model: Field required",
        ),
        (
            "POST",
            "/v1/messages",
            {"x-api-key": KEY},
            b'{"model":"m","messages":[]}',
            400,
            "invalid_request_error",
            "max_tokens: Field required",
        ),
        ("POST", "/v1/nope", {"x-api-key": KEY}, b"{}", 404, "not_found_error", "no such endpoint"),
        ("GET", "/v1/messages", {"x-api-key": KEY}, b"", 405, "invalid_request_error", "use POST"),
        ("POST", "/v1/messages", {}, None, 401, "authentication_error", "missing client key"),
        ("POST", "/v1/messages", {"x-api-key": "kst-wrong"}, None, 401, "authentication_error", "invalid client key"),
        ("POST", "/v1/messages", {"authorization": "Bearer kst-wrong"}, None, 401, "authentication_error", "invalid"),
        (
            "POST",
            "/v1/messages",
            {"x-api-key": KEY},
            b'{"pad":"' + b"x" * 70_000 + b'"}',
            413,
            "request_too_large",
            "limit",
        ),
    ],
)
def test_bad_input_is_answered_in_anthropic_envelope_and_recorded(
    kestrel: tuple[KestrelHandle, SimHandle],
    method: str,
    path: str,
    headers: dict[str, str],
    body: bytes | None,
    status: int,
    kind: str,
    words: str,
) -> None:
    handle, _ = kestrel
    content = httpx.Request("POST", "/").content if body is None else body
    response = httpx.request(method, handle.url + path, headers=headers, content=content or None, timeout=10)
    assert response.status_code == status
    payload = response.json()
    assert payload["type"] == "error"
    assert payload["error"]["type"] == kind
    assert words in payload["error"]["message"]
    request_id = response.headers["x-kestrel-request-id"]
    assert payload["request_id"] == request_id
    event = handle.event(request_id)
    assert event.status == status and event.error_type == kind and event.path == path


def test_secrets_never_reach_the_record_or_the_error(kestrel: tuple[KestrelHandle, SimHandle]) -> None:
    handle, _ = kestrel
    response = httpx.post(handle.url + "/v1/messages", headers={"x-api-key": "kst-leaked-secret"}, json=GOOD)
    assert "kst-leaked-secret" not in response.text
    event = handle.event(response.headers["x-kestrel-request-id"])
    assert "kst-leaked-secret" not in repr(event.to_dict())
    ok = httpx.post(handle.url + "/v1/messages", headers={"x-api-key": KEY}, json=GOOD)
    assert ok.status_code == 200
    recorded = handle.event(ok.headers["x-kestrel-request-id"])
    assert recorded.client_key_id == "alice"
    assert KEY not in repr(recorded.to_dict()) and "sk-one" not in ok.text


def test_upstream_error_bodies_pass_through_unchanged(kestrel: tuple[KestrelHandle, SimHandle]) -> None:
    handle, _sim = kestrel
    bad = {**GOOD, "thinking": {"type": "enabled", "budget_tokens": 4096}}  # budget above max_tokens
    response = httpx.post(handle.url + "/v1/messages", headers={"x-api-key": KEY}, json=bad)
    assert response.status_code == 400
    assert response.json()["request_id"].startswith("req_0")  # the simulator's id: its body, unchanged
    assert "budget_tokens" in response.json()["error"]["message"]


def test_probes_are_answered(kestrel: tuple[KestrelHandle, SimHandle]) -> None:
    handle, _ = kestrel
    assert httpx.head(handle.url + "/").status_code == 200
    assert httpx.head(handle.url + "/api/hello").status_code == 200
    assert httpx.get(handle.url + "/livez").json() == {"status": "ok"}
