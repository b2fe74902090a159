"""Server-sent events without I/O: cut a byte stream at event boundaries, read events back.

The relay forwards upstream bytes untouched but only ever in whole events, so that a failure
mid-stream can be followed by a well-formed ``event: error`` instead of half a line.
"""

from __future__ import annotations

from collections.abc import Iterator


class FrameCutter:
    """Feed raw chunks, get back the bytes that end on an event boundary."""

    __slots__ = ("_pending",)

    def __init__(self) -> None:
        self._pending = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._pending + chunk if self._pending else chunk
        cut = data.rfind(b"\n\n")
        cut = cut + 2 if cut >= 0 else 0
        crlf = data.rfind(b"\r\n\r\n")
        if crlf >= 0 and crlf + 4 > cut:
            cut = crlf + 4
        if cut == len(data):
            self._pending = b""
            return data
        self._pending = data[cut:]
        return data[:cut]

    @property
    def pending(self) -> bytes:
        """Bytes of an event not finished yet."""
        return self._pending


def iter_events(frames: bytes) -> Iterator[tuple[str, bytes]]:
    """Yield ``(event name, data)`` for each complete event in ``frames``.

    Multiple ``data:`` lines are joined with newlines; comments and other fields are skipped.
    """
    for block in frames.replace(b"\r\n", b"\n").split(b"\n\n"):
        if not block:
            continue
        name = ""
        data: list[bytes] = []
        for line in block.split(b"\n"):
            if line.startswith(b"data:"):
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line.startswith(b"event:"):
                name = (line[7:] if line[6:7] == b" " else line[6:]).decode()
        if name or data:
            yield name, b"\n".join(data)
