"""Request framing on a real Gunicorn group, on both parsers: every request whose length two
HTTP implementations could read differently (the root of request smuggling) is refused with
a 4xx and the connection closed, so that nothing after it can run as a hidden request.

Each case is followed, on the same connection, by a request of its own; a server that read
the hostile request's length wrongly would answer that one (or one hidden in the body) too.
Where a parser accepts a case that RFC 9112 allows and that has only one reading, the test
asserts that reading instead.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.serving.conftest import GatewayGroup
from tests.serving.rawhttp import Exchange, exchange

FOLLOWING = b"GET /v3/hello HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
CHUNKED_END = b"0\r\n\r\n"


def _upload(*headers: bytes, body: bytes = b"") -> bytes:
    lines = b"".join(header + b"\r\n" for header in headers)
    return b"POST /v3/upload HTTP/1.1\r\nHost: 127.0.0.1\r\n" + lines + b"\r\n" + body


SMUGGLING_BODY = CHUNKED_END + FOLLOWING
CASES: dict[str, bytes] = {
    "Content-Length then Transfer-Encoding": _upload(
        b"Content-Length: %d" % len(SMUGGLING_BODY), b"Transfer-Encoding: chunked", body=SMUGGLING_BODY
    ),
    "Transfer-Encoding then Content-Length": _upload(
        b"Transfer-Encoding: chunked", b"Content-Length: 3", body=SMUGGLING_BODY
    ),
    "two differing Content-Lengths": _upload(b"Content-Length: 5", b"Content-Length: 6", body=b"hello!"),
    "two equal Content-Lengths": _upload(b"Content-Length: 5", b"Content-Length: 5", body=b"hello"),
    "a Content-Length list": _upload(b"Content-Length: 5, 5", body=b"hello"),
    "a Content-Length with a plus sign": _upload(b"Content-Length: +5", body=b"hello"),
    "a negative Content-Length": _upload(b"Content-Length: -5", body=b"hello"),
    "a Content-Length with a space inside": _upload(b"Content-Length: 1 5", body=b"hello"),
    "a hexadecimal Content-Length": _upload(b"Content-Length: 0x5", body=b"hello"),
    "Transfer-Encoding: chunked, identity": _upload(
        b"Transfer-Encoding: chunked, identity", body=CHUNKED_END
    ),
    "Transfer-Encoding: identity": _upload(b"Transfer-Encoding: identity", body=CHUNKED_END),
    "Transfer-Encoding: xchunked": _upload(b"Transfer-Encoding: xchunked", body=CHUNKED_END),
    "Transfer-Encoding: chunked twice": _upload(
        b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked", body=CHUNKED_END
    ),
    "Transfer-Encoding: chunked, chunked": _upload(b"Transfer-Encoding: chunked, chunked", body=CHUNKED_END),
    "Transfer-Encoding folded (obs-fold)": _upload(b"Transfer-Encoding:", b" chunked", body=SMUGGLING_BODY),
    "Transfer-Encoding folded into another header": _upload(
        b"X-Other: a", b" Transfer-Encoding: chunked", body=CHUNKED_END
    ),
    "a space before the colon of Transfer-Encoding": _upload(
        b"Transfer-Encoding : chunked", body=CHUNKED_END
    ),
    "a space before the colon of Content-Length": _upload(b"Content-Length : 5", body=b"hello"),
    "a negative chunk size": _upload(b"Transfer-Encoding: chunked", body=b"-5\r\nhello\r\n" + CHUNKED_END),
    "a chunk size over 64 bits": _upload(
        b"Transfer-Encoding: chunked", body=b"10000000000000005\r\nhello\r\n" + CHUNKED_END
    ),
    "a chunk size that is not hexadecimal": _upload(
        b"Transfer-Encoding: chunked", body=b"zz\r\nhello\r\n" + CHUNKED_END
    ),
    "a chunk without its CRLF": _upload(b"Transfer-Encoding: chunked", body=b"5\r\nhelloXX" + CHUNKED_END),
    "bare LF line endings": b"POST /v3/upload HTTP/1.1\nHost: 127.0.0.1\nContent-Length: 5\n\nhello",
    "a bare CR inside the headers": _upload(b"X-A: 1\rContent-Length: 5", body=b"hello"),
    "a NUL in a header value": _upload(b"X-A: a\x00b", b"Content-Length: 5", body=b"hello"),
    "Transfer-Encoding in HTTP/1.0": _upload(b"Transfer-Encoding: chunked", body=CHUNKED_END).replace(
        b"HTTP/1.1", b"HTTP/1.0", 1
    ),
}


def refused(answer: Exchange) -> bool:
    return len(answer.answers) == 1 and 400 <= answer.answers[0][0] < 500 and answer.closed


def read_as_one_five_byte_body(answer: Exchange) -> bool:
    """Accepted with its one possible reading: a 5-byte body, then the next request."""
    statuses = [status for status, _ in answer.answers]
    return statuses == [200, 200] and answer.answers[0][1] == b'{"received":5}' and answer.closed


def answered_and_closed(answer: Exchange) -> bool:
    """RFC 9112, section 6.1: an HTTP/1.0 Transfer-Encoding makes the framing faulty; the
    message may be processed, but the connection closes after it."""
    return len(answer.answers) == 1 and answer.closed


def timed_out(answer: Exchange) -> bool:
    """A chunk size too large for 64 bits, read as the huge number it is (not wrapped): the
    body never arrives, so the body timeout answers 408; nothing after it runs."""
    return [status for status, _ in answer.answers] == [408] and answer.closed


Expectation = Callable[[Exchange], bool]
# What each parser does instead of refusing, where RFC 9112 allows it and it is safe.
ACCEPTED: dict[str, dict[str, Expectation]] = {
    "httptools": {"Transfer-Encoding in HTTP/1.0": answered_and_closed},
    "h11": {
        # RFC 9110, section 8.6: equal Content-Length values may be merged into one.
        "two equal Content-Lengths": read_as_one_five_byte_body,
        "a Content-Length list": read_as_one_five_byte_body,
        # RFC 9112, section 2.2: a bare LF may end a line.
        "bare LF line endings": read_as_one_five_byte_body,
        "a chunk size over 64 bits": timed_out,
        "Transfer-Encoding in HTTP/1.0": answered_and_closed,
    },
}


@pytest.mark.parametrize("parser", ["httptools", "h11"])
def test_ambiguous_or_malformed_framing_is_refused_and_nothing_is_smuggled(
    gateway_group: GatewayGroup, parser: str
) -> None:
    with gateway_group(workers=1, http=parser, body_timeout="1") as server:
        answers = {name: exchange(server.port, request + FOLLOWING) for name, request in CASES.items()}
        still_serving = exchange(server.port, FOLLOWING)

    failures = [
        f"{name}: {answer}"
        for name, answer in answers.items()
        if not ACCEPTED[parser].get(name, refused)(answer)
    ]
    assert not failures, "\n".join(failures)
    assert [status for status, _ in still_serving.answers] == [200]
    refusals = [answer.answers[0] for answer in answers.values() if refused(answer)]
    assert all(b'"request_id":"' in body for _, body in refusals), "a refusal's problem has no request id"
