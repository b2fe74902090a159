"""Translation cost, per request and per streamed chunk, against passthrough, in one run.

No sockets: the same recorded request and the same upstream stream go through what the edge runs
for each direction (``pipes.PassthroughPipe`` / ``pipes.TranslatedPipe`` and the request codecs),
and CPU time is measured with ``time.process_time``. Ratios compare each direction with
passthrough of the same stream measured in this run.

    python -m bench.translate [--rounds 2000]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

from kestrel.edge.assemble import assemble
from kestrel.edge.canonical import (
    BlockStart,
    BlockStop,
    MessageDelta,
    MessageStart,
    MessageStop,
    StopReason,
    Text,
    TextDelta,
    ToolInputDelta,
    ToolUse,
    Usage,
)
from kestrel.edge.dialects.anthropic import parse_messages
from kestrel.edge.dialects.anthropic_render import AnthropicStreamRenderer
from kestrel.edge.dialects.clients import ANTHROPIC, OPENAI
from kestrel.edge.dialects.openai import OpenAIStreamRenderer
from kestrel.edge.formats import anthropic as anthropic_format
from kestrel.edge.pipes import PassthroughPipe, TranslatedPipe
from kestrel.edge.providers.anthropic import AnthropicCodec
from kestrel.edge.providers.capabilities import BUILTIN_CATALOG
from kestrel.edge.providers.gemini import GeminiCodec
from kestrel.edge.providers.openai import OpenAICodec
from kestrel.edge.testing.gemini_wire import stream_sse

ROOT = Path(__file__).resolve().parents[1]
BODY = (ROOT / "tests/edge/formats/recordings/claude_code_request.json").read_bytes()


def answer_events(deltas: int) -> list:
    events = [MessageStart("msg_1", "m", Usage(input_tokens=2000)), BlockStart(0, Text(""))]
    events += [TextDelta(0, "word " * 3) for _ in range(deltas)]
    events += [BlockStop(0), BlockStart(1, ToolUse("toolu_1", "Read", {}))]
    events += [ToolInputDelta(1, '{"file_path": '), ToolInputDelta(1, '"/tmp/x.py"}'), BlockStop(1)]
    events += [MessageDelta(StopReason.TOOL_USE, None, Usage(input_tokens=2000, output_tokens=80)), MessageStop()]
    return events


def frames_of(raw: bytes) -> list[bytes]:
    """One chunk per SSE event, as a fast upstream usually delivers them."""
    return [part + b"\n\n" for part in raw.replace(b"\r\n", b"\n").split(b"\n\n") if part]


def per_call(fn: Callable[[], object], rounds: int) -> float:
    fn()
    started = time.process_time()
    for _ in range(rounds):
        fn()
    return (time.process_time() - started) / rounds * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    args = parser.parse_args()
    events = answer_events(40)
    anthropic_stream = frames_of(AnthropicStreamRenderer(model="m").render_all(events))
    openai_stream = frames_of(OpenAIStreamRenderer("m", True).render_all(events))
    request = anthropic_format.parse_request(BODY)
    gemini_stream = frames_of(stream_sse(assemble(events), fragment=12))
    # Codecs as the gateway builds them: once, with the model capability table.
    to_openai, to_anthropic = OpenAICodec(catalog=BUILTIN_CATALOG), AnthropicCodec(catalog=BUILTIN_CATALOG)
    to_gemini = GeminiCodec(BUILTIN_CATALOG)
    openai_body = to_openai.encode(request, "gpt-5").body

    def relay(make: Callable[[], object], chunks: list[bytes]) -> Callable[[], None]:
        def run() -> None:
            pipe = make()
            for chunk in chunks:
                pipe.feed(chunk)  # type: ignore[attr-defined]
            pipe.finish()  # type: ignore[attr-defined]

        return run

    streams = {
        "passthrough (anthropic)": (
            relay(lambda: PassthroughPipe("anthropic", ANTHROPIC.error_frame), anthropic_stream),
            len(anthropic_stream),
        ),
        "anthropic client <- openai upstream": (
            relay(
                lambda: TranslatedPipe(to_openai.stream_decoder(request), ANTHROPIC.stream_renderer(request, "m")),
                openai_stream,
            ),
            len(openai_stream),
        ),
        "openai client <- anthropic upstream": (
            relay(
                lambda: TranslatedPipe(to_anthropic.stream_decoder(request), OPENAI.stream_renderer(request, "m")),
                anthropic_stream,
            ),
            len(anthropic_stream),
        ),
    }
    streams["anthropic client <- gemini upstream"] = (
        relay(
            lambda: TranslatedPipe(to_gemini.stream_decoder(request), ANTHROPIC.stream_renderer(request, "m")),
            gemini_stream,
        ),
        len(gemini_stream),
    )
    requests = {
        "passthrough (parse routing fields)": lambda: parse_messages(BODY, {}),
        "anthropic client -> openai upstream": lambda: to_openai.encode(anthropic_format.parse_request(BODY), "gpt-5"),
        "openai client -> anthropic upstream": lambda: to_anthropic.encode(
            OPENAI.parse(openai_body), "claude-sonnet-4-5"
        ),
        "anthropic client -> gemini upstream": lambda: to_gemini.encode(
            anthropic_format.parse_request(BODY), "gemini-2.5-pro"
        ),
    }
    print(f"translate: Claude Code-like request of {len(BODY)} bytes; a stream of {len(events)} events")
    print(f"{'request direction':<40}{'us/request':>12}{'vs passthrough':>16}")
    base = None
    for name, fn in requests.items():
        cost = per_call(fn, args.rounds // 4)
        base = base or cost
        print(f"{name:<40}{cost:>12.1f}{cost / base:>15.1f}x")
    print(f"{'stream direction':<40}{'us/stream':>12}{'us/chunk':>10}{'vs passthrough':>16}")
    base = None
    for name, (fn, chunks) in streams.items():
        cost = per_call(fn, args.rounds)
        base = base or cost / chunks
        print(f"{name:<40}{cost:>12.1f}{cost / chunks:>10.2f}{(cost / chunks) / base:>15.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
