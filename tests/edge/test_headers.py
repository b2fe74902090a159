import time
from email.utils import formatdate

from kestrel.edge.headers import client_response_headers, upstream_request_headers


def test_client_credentials_are_replaced_and_betas_kept_verbatim() -> None:
    client = [
        (b"host", b"kestrel"),
        (b"x-api-key", b"kst-secret"),
        (b"authorization", b"Bearer kst-secret"),
        (b"anthropic-beta", b"claude-code-20250219,oauth-2025-04-20,unknown-future-beta"),
        (b"anthropic-version", b"2023-06-01"),
        (b"accept-encoding", b"gzip"),
    ]
    out = upstream_request_headers(client, (b"x-api-key", b"sk-account"))
    assert (b"anthropic-beta", b"claude-code-20250219,oauth-2025-04-20,unknown-future-beta") in out
    assert (b"anthropic-version", b"2023-06-01") in out
    assert [v for k, v in out if k == b"x-api-key"] == [b"sk-account"]
    assert not [k for k, _ in out if k in (b"authorization", b"host")]
    assert (b"accept-encoding", b"identity") in out


def test_retry_after_becomes_integer_seconds() -> None:
    date = formatdate(time.time() + 30, usegmt=True)
    for value, expected in [(b"2.2", b"3"), (date.encode(), None), (b"120", b"60"), (b"0", b"1")]:
        out = dict(client_response_headers([(b"retry-after", value)], max_retry_after=60))
        got = out[b"retry-after"]
        assert got.isdigit()
        if expected is not None:
            assert got == expected
        else:
            assert 29 <= int(got) <= 31
