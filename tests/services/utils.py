"""Helpers that serve a version app the way the gateway does: lifespan first, then requests."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import httpx
from asgi_lifespan import LifespanManager

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI


@asynccontextmanager
async def serve(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    # Plain httpx over ASGITransport with asgi-lifespan rather than Starlette's TestClient,
    # which warns under Starlette 1.x; the lifespan runs, so start-up and shutdown are tested.
    async with LifespanManager(app) as manager:
        transport = httpx.ASGITransport(app=manager.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://catalog.test") as client:
            yield client


def exact_json(response: httpx.Response) -> Any:
    """The body with JSON numbers as Decimals, so that a price's digits are compared exactly."""
    return json.loads(response.text, parse_float=Decimal)


def assert_conditional_requests_are_documented(operations: dict[str, Any], *, write: str) -> None:
    """ETag, If-Match and If-None-Match, and 503 with Retry-After, as every version documents them."""

    def headers_of(operation_id: str) -> set[str]:
        parameters = operations[operation_id].get("parameters", [])
        return {parameter["name"] for parameter in parameters if parameter["in"] == "header"}

    read = operations["read_item"]["responses"]
    assert "If-None-Match" in headers_of("read_item")
    assert "ETag" in read["200"]["headers"]
    assert "ETag" in read["304"]["headers"]
    for operation_id in (write, "delete_item"):
        assert "If-Match" in headers_of(operation_id)
        assert "ETag" in operations[operation_id]["responses"]["412"]["headers"]
    assert "ETag" in operations[write]["responses"]["200"]["headers"]
    for operation in operations.values():
        assert "Retry-After" in operation["responses"]["503"]["headers"]
