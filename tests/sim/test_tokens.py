"""The token rule: ceil(chars / 4) per segment, summed."""

from __future__ import annotations

import orjson

from kestrel.sim._request import parse_messages
from kestrel.sim._tokens import IMAGE_CHARS, block_chars, output_block_tokens, tokens_for_chars


def test_ceil_of_a_quarter() -> None:
    assert [tokens_for_chars(n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_block_characters() -> None:
    assert block_chars("abc") == 3
    assert block_chars({"type": "text", "text": "abcd", "cache_control": {"type": "ephemeral"}}) == 4
    assert block_chars({"type": "tool_use", "id": "t", "name": "Read", "input": {"a": 1}}) == 4 + 7
    assert (
        block_chars(
            {
                "type": "tool_result",
                "tool_use_id": "t",
                "content": [{"type": "text", "text": "12345"}, {"type": "text", "text": "678"}],
            }
        )
        == 8
    )
    assert block_chars({"type": "image", "source": {"type": "base64", "data": "x" * 10**6}}) == IMAGE_CHARS
    assert block_chars({"type": "thinking", "thinking": "hmm", "signature": "s" * 100}) == 3


def test_prompt_total_is_the_sum_of_segments() -> None:
    body = {
        "model": "m",
        "max_tokens": 1,
        "system": "12345",  # 2 tokens
        "tools": [{"name": "ab", "description": "cd", "input_schema": {}}],  # 6 chars: 2 tokens
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "1"}, {"type": "text", "text": "2"}]},
        ],  # 1 + 1
    }
    prompt = parse_messages(orjson.dumps(body)).prompt
    assert prompt.cumulative == [2, 4, 5, 6] and prompt.total_tokens == 6


def test_output_tokens() -> None:
    assert output_block_tokens({"type": "text", "text": "x" * 9}) == 3
    assert (
        output_block_tokens({"type": "tool_use", "id": "t", "name": "Bash", "input": {"c": "ls"}}) == 4
    )  # 4 + 10 chars
