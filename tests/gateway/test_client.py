"""The peer-service client retries an idempotent request once when a kept-alive connection drops."""

from __future__ import annotations

import httpx
import pytest

from gateway.client import _RetryDroppedIdempotentSync


def _flaky(failures: int) -> tuple[httpx.MockTransport, list[str]]:
    calls: list[str] = []

    def handle(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) <= failures:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            )
        return httpx.Response(200, json={"ok": True})

    return httpx.MockTransport(handle), calls


def test_an_idempotent_request_is_sent_once_more() -> None:
    transport, calls = _flaky(failures=1)
    with httpx.Client(transport=_RetryDroppedIdempotentSync(transport), base_url="https://peer") as client:
        assert client.get("/items").status_code == 200
    assert calls == ["GET", "GET"]


def test_a_second_drop_is_not_hidden() -> None:
    transport, calls = _flaky(failures=2)
    with (
        httpx.Client(transport=_RetryDroppedIdempotentSync(transport), base_url="https://peer") as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.delete("/items/1")
    assert calls == ["DELETE", "DELETE"]


def test_a_post_is_never_repeated() -> None:
    transport, calls = _flaky(failures=1)
    with (
        httpx.Client(transport=_RetryDroppedIdempotentSync(transport), base_url="https://peer") as client,
        pytest.raises(httpx.RemoteProtocolError),
    ):
        client.post("/items", json={})
    assert calls == ["POST"]
