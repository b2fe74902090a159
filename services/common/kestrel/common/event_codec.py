"""``RequestEvent`` to protobuf bytes and back: the wire form of the request-event stream.

In cluster mode the edge writes these bytes into a Redis stream and the logger reads them, so
edge and logger pods of different versions must understand each other during a rolling deploy.
Protobuf gives that for free (a field added to ``proto/kestrel/v1/events.proto`` is skipped by an
older reader and defaulted for an older writer), which JSON or pickle would not.

The mapping is field-for-field by name: every field of the dataclass has a proto field of the
same name (``tests/common/test_proto_contract.py`` checks it), and the field lists here are
derived from the dataclasses, so adding a field to both sides needs no change in this module.

Round trips are exact for every value the proto types can hold, ``-0.0``, NaN and infinities
included. Two kinds of value cannot cross and are handled at ``encode``:

- integers outside their proto type (a negative ``status``, tokens past 2**64): ``EventEncodeError``
  naming the field, because storing a different number would be a silent lie;
- strings with lone surrogates (a JSON ``"\\udcff"`` in an upstream error message): proto strings
  are UTF-8, so such a character becomes U+FFFD. Refusing the whole event over one character of a
  log line would lose far more than it protects.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from google.protobuf import unknown_fields
from google.protobuf.message import DecodeError

from kestrel.common.events import Attempt, RequestEvent
from kestrel.v1 import events_pb2

__all__ = ["EventDecodeError", "EventEncodeError", "decode", "encode"]

_EVENT_SCALARS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(RequestEvent) if f.name != "attempts")
_ATTEMPT_FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Attempt))
_KNOWN_NUMBERS = frozenset(f.number for f in events_pb2.RequestEvent.DESCRIPTOR.fields)


class EventEncodeError(ValueError):
    """The event holds a value its proto field cannot represent; the message names the field."""


class EventDecodeError(ValueError):
    """The bytes are not a ``RequestEvent`` this code can store (garbage, or no ``event_id``)."""


def encode(event: RequestEvent) -> bytes:
    """Serialise ``event``; raises ``EventEncodeError`` for a value its proto type cannot hold."""
    try:
        return _message(event, _as_is).SerializeToString()
    except UnicodeEncodeError:
        # Rare path: only a lone surrogate gets here, so the common case pays nothing for it.
        return _message(event, _utf8_safe).SerializeToString()
    except (ValueError, TypeError, AttributeError) as exc:
        raise EventEncodeError(_describe_encode_failure(event, exc)) from exc


def decode(data: bytes | bytearray | memoryview) -> RequestEvent:
    """Parse bytes written by ``encode`` (by this or any compatible version of Kestrel).

    Protobuf parsing is permissive: many byte strings parse as a message of unknown fields. Two
    checks turn that into a useful verdict. A field number this schema defines, arriving with the
    wrong wire type, means the bytes were never a ``RequestEvent``; fields with numbers unknown
    here are a newer writer's additions and are skipped. And an event without ``event_id``
    cannot be stored idempotently, so it is refused rather than collapsed onto other such events.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EventDecodeError(f"expected bytes, got {type(data).__name__}")
    try:
        message = events_pb2.RequestEvent.FromString(bytes(data))
    except DecodeError as exc:
        raise EventDecodeError(f"not a protobuf RequestEvent ({len(data)} bytes): {exc}") from exc
    clashes = sorted({f.field_number for f in unknown_fields.UnknownFieldSet(message)} & _KNOWN_NUMBERS)
    if clashes:
        raise EventDecodeError(f"not a RequestEvent: fields {clashes} have the wrong wire type")
    if not message.event_id:
        raise EventDecodeError("the event has no event_id")
    values = {name: getattr(message, name) for name in _EVENT_SCALARS}
    attempts = [Attempt(**{name: getattr(a, name) for name in _ATTEMPT_FIELDS}) for a in message.attempts]
    return RequestEvent(attempts=attempts, **values)


def _message(event: RequestEvent, fix: Callable[[object], object]) -> events_pb2.RequestEvent:
    scalars = {name: fix(getattr(event, name)) for name in _EVENT_SCALARS}
    attempts = [events_pb2.Attempt(**{name: fix(getattr(a, name)) for name in _ATTEMPT_FIELDS}) for a in event.attempts]
    return events_pb2.RequestEvent(attempts=attempts, **scalars)


def _as_is(value: object) -> object:
    return value


def _utf8_safe(value: object) -> object:
    """Lone surrogates become U+FFFD; a surrogate pair split in two code points is rejoined."""
    if isinstance(value, str):
        return value.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    return value


def _describe_encode_failure(event: RequestEvent, exc: Exception) -> str:
    """Find the offending field by setting fields one at a time; only runs on the error path."""
    probe = events_pb2.RequestEvent()
    for name in _EVENT_SCALARS:
        try:
            setattr(probe, name, getattr(event, name))
        except (ValueError, TypeError, AttributeError) as field_exc:
            return f"{name} does not fit its proto field: {field_exc}"
    for i, attempt in enumerate(event.attempts):
        target = probe.attempts.add()
        for name in _ATTEMPT_FIELDS:
            try:
                setattr(target, name, getattr(attempt, name))
            except (ValueError, TypeError, AttributeError) as field_exc:
                return f"attempts[{i}].{name} does not fit its proto field: {field_exc}"
    return f"the event cannot be encoded: {exc}"
