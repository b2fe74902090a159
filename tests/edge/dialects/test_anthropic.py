import orjson
import pytest

from kestrel.edge.dialects.anthropic import parse_messages, replace_model, session_id
from kestrel.edge.errors import InvalidRequest


def body(**fields: object) -> bytes:
    return orjson.dumps({"model": "claude-x", "max_tokens": 5, "messages": [], **fields})


def test_parse_reads_model_stream_and_session() -> None:
    parsed = parse_messages(body(stream=True), {"x-claude-code-session-id": "s1"})
    assert (parsed.model, parsed.stream, parsed.session_id) == ("claude-x", True, "s1")


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{nope", "not valid JSON"),
        (b"", "empty"),
        (b"[]", "JSON object"),
        (orjson.dumps({"max_tokens": 1, "messages": []}), "model: Field required"),
        (orjson.dumps({"model": "m", "messages": []}), "max_tokens: Field required"),
        (orjson.dumps({"model": "m", "max_tokens": 1}), "messages: Field required"),
        (orjson.dumps({"model": "m", "max_tokens": "1", "messages": []}), "max_tokens"),
        (orjson.dumps({"model": "m", "max_tokens": 1, "messages": [], "stream": "yes"}), "stream"),
    ],
)
def test_parse_rejects_bad_input_with_a_clear_message(raw: bytes, message: str) -> None:
    with pytest.raises(InvalidRequest, match=message):
        parse_messages(raw, {})


def test_count_tokens_needs_no_max_tokens() -> None:
    assert parse_messages(orjson.dumps({"model": "m", "messages": []}), {}, count_tokens=True).model == "m"


@pytest.mark.parametrize(
    ("user_id", "expected"),
    [
        ('{"device_id":"d","account_uuid":"a","session_id":"abc-1"}', "abc-1"),
        ("user_1f2e_account_9a_session_5c9d-77", "5c9d-77"),
        ("someone", ""),
    ],
)
def test_session_from_metadata_user_id(user_id: str, expected: str) -> None:
    assert session_id({"metadata": {"user_id": user_id}}, {}) == expected


def test_session_header_wins_then_fallback_header() -> None:
    data = {"metadata": {"user_id": "user_x_session_from-body"}}
    assert session_id(data, {"x-claude-code-session-id": "h"}) == "h"
    assert session_id({}, {"x-session-id": "fallback"}) == "fallback"


def test_replace_model_keeps_every_other_byte() -> None:
    raw = b'{"messages":[{"role":"user","content":"\\u00e9 \\"model\\": \\"x\\""}],  "model" : "old", "max_tokens":1}'
    out = replace_model(raw, "new")
    assert out == raw.replace(b'"model" : "old"', b'"model":"new"')


def test_replace_model_skips_nested_model_keys() -> None:
    raw = (
        b'{"messages":[{"role":"assistant","content":[{"type":"tool_use","id":"t","name":"Task",'
        b'"input":{"model":"haiku"}}]}],"model":"claude-a","max_tokens":3}'
    )
    out = replace_model(raw, "claude-b")
    assert orjson.loads(out)["model"] == "claude-b"
    assert orjson.loads(out)["messages"][0]["content"][0]["input"]["model"] == "haiku"
    assert out.replace(b"claude-b", b"claude-a") == raw
