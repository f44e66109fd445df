"""The request-head meter both HTTP protocols use: where a head ends, and when it is too big."""

from __future__ import annotations

import asyncio
import json

import pytest
from starlette.types import Message

from gateway.serving.limits import HttpLimits, RefusedError, RequestHeadMeter, overloaded

LIMITS = HttpLimits(
    max_request_line=100,
    max_header_count=5,
    max_header_bytes=1024,
    header_timeout=1,
    max_connections=10,
    body_timeout=10,
    body_min_rate=240,
    body_rate_grace=5,
)


def _measure(*chunks: bytes) -> tuple[RequestHeadMeter, RefusedError | None]:
    meter = RequestHeadMeter(LIMITS)
    refusal = None
    for chunk in chunks:
        refusal = refusal or meter.measure(chunk)
    return meter, refusal


@pytest.mark.parametrize(
    "chunks",
    [
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",),
        (b"GET / HTTP/1.1\r\nHost: a\r\n\r", b"\n"),
        (b"GET / HTTP/1.1\r\nHost: a\r", b"\n", b"\r\n"),
        # A bare LF ends lines too (RFC 9112, section 2.2), as h11 accepts.
        (b"GET / HTTP/1.1\nHost: a\n\n",),
    ],
)
def test_the_head_ends_at_the_blank_line_even_split_across_reads(chunks: tuple[bytes, ...]) -> None:
    meter, refusal = _measure(*chunks)
    assert refusal is None
    assert meter.complete


def test_body_bytes_after_the_head_are_not_counted() -> None:
    meter, refusal = _measure(b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n" + b"x" * 5000)
    assert refusal is None
    assert meter.bytes_seen == len(b"POST / HTTP/1.1\r\nContent-Length: 5000\r\n\r\n")


def test_a_long_request_line_is_refused_before_it_ends() -> None:
    _, refusal = _measure(b"GET /" + b"a" * 200)
    assert refusal is not None
    assert refusal.status == 414


def test_headers_over_the_byte_limit_are_refused_while_they_arrive() -> None:
    _, refusal = _measure(b"GET / HTTP/1.1\r\n", *[b"X-Filler: " + b"a" * 100 + b"\r\n"] * 20)
    assert refusal is not None
    assert refusal.status == 431


def test_reset_measures_the_next_head_from_its_first_byte() -> None:
    head = b"GET / HTTP/1.1\r\nCookie: " + b"a" * 900 + b"\r\n\r\n"
    # Unfinished, the first head's bytes count; without the reset the next head would add to them.
    meter, refusal = _measure(head[:-4])
    assert refusal is None
    meter.reset()
    assert meter.measure(head) is None


def test_a_refusal_is_a_problem_response_that_closes_the_connection() -> None:
    response = RefusedError.too_many_headers(LIMITS).response_bytes()
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n")
    assert b"content-type: application/problem+json" in head
    assert b"connection: close" in head
    assert f"content-length: {len(body)}".encode() in head


def test_a_folded_header_line_is_refused_400() -> None:
    _, refusal = _measure(b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n chunked\r\n\r\n")
    assert refusal is not None
    assert refusal.status == 400


def test_a_refusal_carries_a_request_id_in_its_header_and_its_problem() -> None:
    for incoming, expected in [(b"req-7", "req-7"), (b"bad id\r\n", None), (None, None)]:
        head, _, body = RefusedError.headers_too_large(LIMITS).response_bytes(incoming).partition(b"\r\n\r\n")
        request_id = json.loads(body)["request_id"]
        assert f"x-request-id: {request_id}".encode() in head
        # A malformed or missing incoming id is replaced, as the edge replaces it.
        assert request_id == expected if expected is not None else len(request_id) == 32


def test_the_overload_answer_carries_the_request_id() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    scope = {"type": "http", "headers": [(b"x-request-id", b"load-1")]}
    asyncio.run(overloaded(scope, receive, send))
    start, body = sent
    assert start["status"] == 503
    assert (b"x-request-id", b"load-1") in start["headers"]
    assert json.loads(body["body"])["request_id"] == "load-1"
