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
