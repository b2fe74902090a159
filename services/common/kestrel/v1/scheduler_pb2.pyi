from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ExhaustedReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    EXHAUSTED_REASON_UNSPECIFIED: _ClassVar[ExhaustedReason]
    EXHAUSTED_REASON_NO_ACCOUNT: _ClassVar[ExhaustedReason]
    EXHAUSTED_REASON_ALL_BUSY: _ClassVar[ExhaustedReason]
    EXHAUSTED_REASON_ALL_TRIED: _ClassVar[ExhaustedReason]

class Outcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    OUTCOME_UNSPECIFIED: _ClassVar[Outcome]
    OUTCOME_SUCCESS: _ClassVar[Outcome]
    OUTCOME_RATE_LIMITED: _ClassVar[Outcome]
    OUTCOME_OVERLOADED: _ClassVar[Outcome]
    OUTCOME_SERVER_ERROR: _ClassVar[Outcome]
    OUTCOME_CONNECT_ERROR: _ClassVar[Outcome]
    OUTCOME_AUTH_ERROR: _ClassVar[Outcome]
    OUTCOME_CLIENT_ERROR: _ClassVar[Outcome]
    OUTCOME_CANCELLED: _ClassVar[Outcome]
EXHAUSTED_REASON_UNSPECIFIED: ExhaustedReason
EXHAUSTED_REASON_NO_ACCOUNT: ExhaustedReason
EXHAUSTED_REASON_ALL_BUSY: ExhaustedReason
EXHAUSTED_REASON_ALL_TRIED: ExhaustedReason
OUTCOME_UNSPECIFIED: Outcome
OUTCOME_SUCCESS: Outcome
OUTCOME_RATE_LIMITED: Outcome
OUTCOME_OVERLOADED: Outcome
OUTCOME_SERVER_ERROR: Outcome
OUTCOME_CONNECT_ERROR: Outcome
OUTCOME_AUTH_ERROR: Outcome
OUTCOME_CLIENT_ERROR: Outcome
OUTCOME_CANCELLED: Outcome

class AcquireRequest(_message.Message):
    __slots__ = ("request_id", "model", "session_id", "client_key_id", "exclude_accounts", "max_wait_ms")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    CLIENT_KEY_ID_FIELD_NUMBER: _ClassVar[int]
    EXCLUDE_ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    MAX_WAIT_MS_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    model: str
    session_id: str
    client_key_id: str
    exclude_accounts: _containers.RepeatedScalarFieldContainer[str]
    max_wait_ms: int
    def __init__(self, request_id: _Optional[str] = ..., model: _Optional[str] = ..., session_id: _Optional[str] = ..., client_key_id: _Optional[str] = ..., exclude_accounts: _Optional[_Iterable[str]] = ..., max_wait_ms: _Optional[int] = ...) -> None: ...

class Lease(_message.Message):
    __slots__ = ("lease_id", "account_id", "model", "sticky", "ttl_ms")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STICKY_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    account_id: str
    model: str
    sticky: bool
    ttl_ms: int
    def __init__(self, lease_id: _Optional[str] = ..., account_id: _Optional[str] = ..., model: _Optional[str] = ..., sticky: _Optional[bool] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class AccountState(_message.Message):
    __slots__ = ("account_id", "state", "free_in_ms")
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    FREE_IN_MS_FIELD_NUMBER: _ClassVar[int]
    account_id: str
    state: str
    free_in_ms: int
    def __init__(self, account_id: _Optional[str] = ..., state: _Optional[str] = ..., free_in_ms: _Optional[int] = ...) -> None: ...

class Exhausted(_message.Message):
    __slots__ = ("reason", "retry_after_ms", "accounts")
    REASON_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    ACCOUNTS_FIELD_NUMBER: _ClassVar[int]
    reason: ExhaustedReason
    retry_after_ms: int
    accounts: _containers.RepeatedCompositeFieldContainer[AccountState]
    def __init__(self, reason: _Optional[_Union[ExhaustedReason, str]] = ..., retry_after_ms: _Optional[int] = ..., accounts: _Optional[_Iterable[_Union[AccountState, _Mapping]]] = ...) -> None: ...

class AcquireResponse(_message.Message):
    __slots__ = ("lease", "exhausted")
    LEASE_FIELD_NUMBER: _ClassVar[int]
    EXHAUSTED_FIELD_NUMBER: _ClassVar[int]
    lease: Lease
    exhausted: Exhausted
    def __init__(self, lease: _Optional[_Union[Lease, _Mapping]] = ..., exhausted: _Optional[_Union[Exhausted, _Mapping]] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("lease_id", "account_id", "model")
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    account_id: str
    model: str
    def __init__(self, lease_id: _Optional[str] = ..., account_id: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("ok", "ttl_ms")
    OK_FIELD_NUMBER: _ClassVar[int]
    TTL_MS_FIELD_NUMBER: _ClassVar[int]
    ok: bool
    ttl_ms: int
    def __init__(self, ok: _Optional[bool] = ..., ttl_ms: _Optional[int] = ...) -> None: ...

class Usage(_message.Message):
    __slots__ = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_CREATION_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    CACHE_READ_INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int
    cache_read_input_tokens: int
    def __init__(self, input_tokens: _Optional[int] = ..., output_tokens: _Optional[int] = ..., cache_creation_input_tokens: _Optional[int] = ..., cache_read_input_tokens: _Optional[int] = ...) -> None: ...

class CompleteRequest(_message.Message):
    __slots__ = ("lease_id", "account_id", "model", "session_id", "outcome", "http_status", "retry_after_ms", "rate_limit_headers", "usage")
    class RateLimitHeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    LEASE_ID_FIELD_NUMBER: _ClassVar[int]
    ACCOUNT_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    HTTP_STATUS_FIELD_NUMBER: _ClassVar[int]
    RETRY_AFTER_MS_FIELD_NUMBER: _ClassVar[int]
    RATE_LIMIT_HEADERS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    lease_id: str
    account_id: str
    model: str
    session_id: str
    outcome: Outcome
    http_status: int
    retry_after_ms: int
    rate_limit_headers: _containers.ScalarMap[str, str]
    usage: Usage
    def __init__(self, lease_id: _Optional[str] = ..., account_id: _Optional[str] = ..., model: _Optional[str] = ..., session_id: _Optional[str] = ..., outcome: _Optional[_Union[Outcome, str]] = ..., http_status: _Optional[int] = ..., retry_after_ms: _Optional[int] = ..., rate_limit_headers: _Optional[_Mapping[str, str]] = ..., usage: _Optional[_Union[Usage, _Mapping]] = ...) -> None: ...

class CompleteResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
