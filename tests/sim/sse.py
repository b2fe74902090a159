"""A strict reader for the sim's SSE bytes, used by the stream tests."""

from __future__ import annotations

from typing import Any

import orjson


def parse_frames(raw: bytes) -> list[tuple[str, dict[str, Any]]]:
    """Split a complete SSE body into ``(event, data)``; every frame must be exactly
    ``event: X\\ndata: {json with type X}\\n\\n``."""
    assert raw.endswith(b"\n\n"), raw[-40:]
    frames = []
    for chunk in raw[:-2].split(b"\n\n"):
        event_line, data_line = chunk.split(b"\n")
        assert event_line.startswith(b"event: ") and data_line.startswith(b"data: "), chunk
        event = event_line[len(b"event: ") :].decode()
        data = orjson.loads(data_line[len(b"data: ") :])
        assert data["type"] == event, chunk
        frames.append((event, data))
    return frames


def check_order(frames: list[tuple[str, dict[str, Any]]]) -> None:
    """Assert PROTOCOLS.md A5's order: start, ping, dense blocks, message_delta, stop."""
    events = [event for event, _ in frames]
    assert events[0] == "message_start" and events[1] == "ping", events[:2]
    assert events[-2:] == ["message_delta", "message_stop"], events[-2:]
    start = frames[0][1]["message"]
    assert start["content"] == [] and start["stop_reason"] is None
    assert start["usage"]["output_tokens"] == 1
    expected_index = 0
    open_block: dict[str, Any] | None = None
    deltas = 0
    for event, data in frames[2:-2]:
        if event == "content_block_start":
            assert open_block is None and data["index"] == expected_index
            open_block, deltas = data["content_block"], 0
        elif event == "content_block_delta":
            assert open_block is not None and data["index"] == expected_index
            deltas += 1
        elif event == "content_block_stop":
            assert open_block is not None and data["index"] == expected_index
            if open_block["type"] != "redacted_thinking":
                assert deltas >= 1
            open_block = None
            expected_index += 1
        else:
            raise AssertionError(f"unexpected {event} between blocks")
    assert open_block is None
    assert frames[-2][1]["delta"]["stop_reason"] is not None
