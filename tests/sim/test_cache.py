"""The prompt cache's arithmetic, on parsed requests and a hand-moved clock."""

from __future__ import annotations

from typing import Any

import orjson

from kestrel.sim._cache import PromptCache
from kestrel.sim._request import Prompt, parse_messages

CC = {"type": "ephemeral"}
CC_1H = {"type": "ephemeral", "ttl": "1h"}


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def prompt(system: list[dict[str, Any]], messages: list[dict[str, Any]], **extra: Any) -> Prompt:
    body = {"model": "m", "max_tokens": 10, "system": system, "messages": messages, **extra}
    return parse_messages(orjson.dumps(body)).prompt


def text(n_tokens: int, cache: dict[str, str] | None = None, fill: str = "a") -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": fill * (4 * n_tokens)}
    if cache:
        block["cache_control"] = cache
    return block


def user(*blocks: dict[str, Any]) -> dict[str, Any]:
    return {"role": "user", "content": list(blocks)}


def test_first_request_writes_second_reads() -> None:
    cache = PromptCache(min_cache_tokens=1024, clock=Clock())
    p = prompt([text(2000, CC)], [user(text(10))])
    first = cache.plan("k", p)
    assert (first.cache_read_input_tokens, first.cache_creation_input_tokens, first.input_tokens) == (0, 2000, 10)
    assert first.ephemeral_5m_input_tokens == 2000 and first.ephemeral_1h_input_tokens == 0
    cache.commit("k", first)
    second = cache.plan("k", p)
    assert (second.cache_read_input_tokens, second.cache_creation_input_tokens, second.input_tokens) == (2000, 0, 10)


def test_plan_alone_changes_nothing() -> None:
    cache = PromptCache(min_cache_tokens=0, clock=Clock())
    p = prompt([text(50, CC)], [user(text(1))])
    cache.plan("k", p)
    assert cache.plan("k", p).cache_read_input_tokens == 0


def test_short_prefixes_are_not_cached() -> None:
    cache = PromptCache(min_cache_tokens=1024, clock=Clock())
    p = prompt([text(1000, CC)], [user(text(10))])
    plan = cache.plan("k", p)
    assert plan.cache_creation_input_tokens == 0 and plan.input_tokens == 1010
    cache.commit("k", plan)
    assert cache.plan("k", p).cache_read_input_tokens == 0


def test_moving_breakpoint_reads_the_previous_turn_by_lookback() -> None:
    cache = PromptCache(min_cache_tokens=1024, clock=Clock())
    system = [text(1500, CC)]
    turn1 = [user(text(100, CC, "q"))]
    cache.commit("k", cache.plan("k", prompt(system, turn1)))
    turn2 = [
        user(text(100, None, "q")),
        {"role": "assistant", "content": [text(50, None, "r")]},
        user(text(30, CC, "s")),
    ]
    plan = cache.plan("k", prompt(system, turn2))
    assert plan.cache_read_input_tokens == 1600
    assert plan.cache_creation_input_tokens == 80 and plan.input_tokens == 0


def test_changed_earlier_segment_misses() -> None:
    cache = PromptCache(min_cache_tokens=1024, clock=Clock())
    cache.commit("k", cache.plan("k", prompt([text(1500, CC)], [user(text(10))])))
    changed = prompt([text(1500, CC, "b")], [user(text(10))])
    assert cache.plan("k", changed).cache_read_input_tokens == 0


def test_string_content_and_text_block_share_a_prefix() -> None:
    cache = PromptCache(min_cache_tokens=0, clock=Clock())
    body = "x" * 400
    as_block = prompt([], [user({"type": "text", "text": body, "cache_control": CC})])
    cache.commit("k", cache.plan("k", as_block))
    as_string = prompt([], [{"role": "user", "content": body}], cache_control=CC)
    assert cache.plan("k", as_string).cache_read_input_tokens == 100


def test_entries_expire_and_reads_refresh_them() -> None:
    clock = Clock()
    cache = PromptCache(min_cache_tokens=0, clock=clock)
    p = prompt([text(100, CC)], [user(text(1))])
    cache.commit("k", cache.plan("k", p))
    clock.now += 299
    hit = cache.plan("k", p)
    assert hit.cache_read_input_tokens == 100
    cache.commit("k", hit)  # refreshed: 5 more minutes from now
    clock.now += 299
    assert cache.plan("k", p).cache_read_input_tokens == 100
    clock.now += 301
    assert cache.plan("k", p).cache_read_input_tokens == 0


def test_one_hour_and_five_minute_stretches() -> None:
    cache = PromptCache(min_cache_tokens=0, clock=Clock())
    p = prompt([text(100, CC_1H)], [user(text(40, CC)), user(text(3))])
    plan = cache.plan("k", p)
    assert plan.ephemeral_1h_input_tokens == 100 and plan.ephemeral_5m_input_tokens == 40
    assert plan.cache_creation_input_tokens == 140 and plan.input_tokens == 3


def test_cache_is_per_key_and_per_model() -> None:
    cache = PromptCache(min_cache_tokens=0, clock=Clock())
    p = prompt([text(100, CC)], [user(text(1))])
    cache.commit("a", cache.plan("a", p))
    assert cache.plan("b", p).cache_read_input_tokens == 0
    other_model = parse_messages(
        orjson.dumps(
            {
                "model": "other",
                "max_tokens": 10,
                "system": [text(100, CC)],
                "messages": [user(text(1))],
            }
        )
    ).prompt
    assert cache.plan("a", other_model).cache_read_input_tokens == 0


def test_tools_are_part_of_the_prefix() -> None:
    cache = PromptCache(min_cache_tokens=0, clock=Clock())
    tools = [{"name": "Read", "description": "d" * 40, "input_schema": {"type": "object"}, "cache_control": CC}]
    p = prompt([text(100, CC)], [user(text(1))], tools=tools)
    cache.commit("k", cache.plan("k", p))
    assert cache.plan("k", p).cache_read_input_tokens == p.cumulative[1]
    reordered = prompt([text(100, CC)], [user(text(1))], tools=[{**tools[0], "name": "Open"}])
    assert cache.plan("k", reordered).cache_read_input_tokens == 0
