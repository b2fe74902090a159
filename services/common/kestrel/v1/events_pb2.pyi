from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Attempt(_message.Message):
    __slots__ = ("account_id", "model", "status", "error", "duration_ms")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    model: str
    status: int
    error: str
    duration_ms: float
    def __init__(self, account_id: _Optional[str] = ..., model: _Optional[str] = ..., status: _Optional[int] = ..., error: _Optional[str] = ..., duration_ms: _Optional[float] = ...) -> None: ...

class RequestEvent(_message.Message):
    __slots__ = ("event_id", "request_id", "started_at_ms", "duration_ms", "ttfb_ms", "method", "path", "dialect", "client_key_id", "session_id", "requested_model", "served_model", "account_id", "status", "stream", "attempts", "input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "stop_reason", "error_type", "error_message", "user_agent")
    EVENT_ID_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    TTFB_MS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    DIALECT_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_MODEL_FIELD_NUMBER: _ClassVar[int]
    SERVED_MODEL_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STREAM_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STOP_REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_TYPE_FIELD_NUMBER: _ClassVar[int]
    ERROR_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USER_AGENT_FIELD_NUMBER: _ClassVar[int]
    event_id: str
    request_id: str
    started_at_ms: int
    duration_ms: float
    ttfb_ms: float
    method: str
    path: str
    dialect: str
    client_key_id: str
    session_id: str
    requested_model: str
    served_model: str
    account_id: str
    status: int
    stream: bool
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    stop_reason: str
    error_type: str
    error_message: str
    user_agent: str
    def __init__(self, event_id: _Optional[str] = ..., request_id: _Optional[str] = ..., started_at_ms: _Optional[int] = ..., duration_ms: _Optional[float] = ..., ttfb_ms: _Optional[float] = ..., method: _Optional[str] = ..., path: _Optional[str] = ..., dialect: _Optional[str] = ..., client_key_id: _Optional[str] = ..., session_id: _Optional[str] = ..., requested_model: _Optional[str] = ..., served_model: _Optional[str] = ..., account_id: _Optional[str] = ..., status: _Optional[int] = ..., stream: _Optional[bool] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_creation_input_tokens: _Optional[int] = ..., cache_read_input_tokens: _Optional[int] = ..., stop_reason: _Optional[str] = ..., error_type: _Optional[str] = ..., error_message: _Optional[str] = ..., user_agent: _Optional[str] = ...) -> None: ...
