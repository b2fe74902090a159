import pytest
from hypothesis import given
from hypothesis import strategies as st

from kestrel.edge.http._request import INLINE_BODY_LIMIT, encode_request, encode_target

HOST_LINE = b" HTTP/1.1\r\nhost: api.example.com\r\n"


def test_head_has_host_given_headers_and_content_length_in_order() -> None:
    data = encode_request(
        b"POST", b"", b"/v1/messages", HOST_LINE, [(b"x-api-key", b"k"), (b"anthropic-version", b"2023-06-01")], b"{}"
    )
    assert data == (
        b"POST /v1/messages HTTP/1.1\r\nhost: api.example.com\r\n"
        b"x-api-key: k\r\nanthropic-version: 2023-06-01\r\ncontent-length: 2\r\n\r\n{}"
    )


def test_framing_headers_from_the_caller_are_dropped_whatever_their_case() -> None:
    headers = [
        (b"Host", b"evil"),
        (b"content-length", b"999"),
        (b"Transfer-Encoding", b"chunked"),
        (b"connection", b"upgrade"),
        (b"x-keep", b"yes"),
    ]
    data = encode_request(b"POST", b"", b"/", HOST_LINE, headers, b"abc")
    assert data == b"POST / HTTP/1.1\r\nhost: api.example.com\r\nx-keep: yes\r\ncontent-length: 3\r\n\r\nabc"


def test_bodiless_get_has_no_content_length_but_empty_post_does() -> None:
    assert encode_request(b"GET", b"", b"/v1/models", HOST_LINE, [], b"") == (
        b"GET /v1/models HTTP/1.1\r\nhost: api.example.com\r\n\r\n"
    )
    assert encode_request(b"POST", b"", b"/", HOST_LINE, [], b"").endswith(b"content-length: 0\r\n\r\n")


def test_path_prefix_goes_before_the_target() -> None:
    data = encode_request(b"GET", b"/proxy/anthropic", b"/v1/models?x=1", HOST_LINE, [], b"")
    assert data.startswith(b"GET /proxy/anthropic/v1/models?x=1 HTTP/1.1\r\n")


def test_large_bodies_are_left_for_a_second_write() -> None:
    body = b"x" * (INLINE_BODY_LIMIT + 1)
    data = encode_request(b"POST", b"", b"/", HOST_LINE, [], body)
    assert data.endswith(b"content-length: %d\r\n\r\n" % len(body))


@pytest.mark.parametrize("header", [(b"x-evil", b"a\r\nx-injected: 1"), (b"x-evil\n", b"v"), (b"x", b"a\nb")])
def test_line_breaks_in_headers_are_refused(header: tuple[bytes, bytes]) -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_request(b"POST", b"", b"/", HOST_LINE, [header], b"{}")


def test_line_breaks_in_the_body_are_fine() -> None:
    assert encode_request(b"POST", b"", b"/", HOST_LINE, [], b"a\r\n\r\nb\n").endswith(b"\r\n\r\na\r\n\r\nb\n")


def test_targets_are_requoted_like_httpx() -> None:
    assert encode_target("/v1/messages?beta=true") == b"/v1/messages?beta=true"
    assert encode_target("/a b/\u00e9%41?x=1 2") == b"/a%20b/%C3%A9%41?x=1%202"
    assert encode_target("/x\r\nhost: evil") == b"/x%0D%0Ahost:%20evil"


@given(st.text(max_size=40))
def test_any_target_encodes_to_a_single_token(target: str) -> None:
    encoded = encode_target("/" + target)
    assert encoded.isascii()
    assert not any(c in encoded for c in b" \r\n\t\x00")
