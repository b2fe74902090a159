"""The OpenAI chat-completions dialect: read a client's request, write answers it can parse.

``_parse`` turns a ``/v1/chat/completions`` body into the canonical ``Request`` (errors name the
offending field and are rendered in OpenAI's envelope by ``render_error``). ``_render`` writes a
canonical ``Response`` as a ``chat.completion`` body and canonical stream events as
``chat.completion.chunk`` frames, plus error bodies and the ``/v1/models`` list.
"""

from __future__ import annotations

from kestrel.edge.dialects.openai._parse import EXTRA_FIELDS, parse_request
from kestrel.edge.dialects.openai._render import (
    DONE,
    OpenAIStreamRenderer,
    chat_id,
    error_object,
    finish_reason,
    render_error,
    render_models,
    render_response,
    render_usage,
)

__all__ = [
    "DONE",
    "EXTRA_FIELDS",
    "OpenAIStreamRenderer",
    "chat_id",
    "error_object",
    "finish_reason",
    "parse_request",
    "render_error",
    "render_models",
    "render_response",
    "render_usage",
]
