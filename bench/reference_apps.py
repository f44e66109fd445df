"""The reference apps of the issue's table, importing nothing of the gateway: a raw ASGI
app (the floor), a bare Starlette route, a bare FastAPI route with a pydantic response
model, and that FastAPI app under a plain ``Mount``. None of them ships in the product.
"""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

if TYPE_CHECKING:
    from starlette.middleware.base import RequestResponseEndpoint
    from starlette.requests import Request
    from starlette.responses import Response
    from starlette.types import Receive, Scope, Send

FLOOR_BODY = b'{"message":"hello"}'
_FLOOR_HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(FLOOR_BODY)).encode())]


async def floor_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The floor: a raw ASGI app answering every request with one fixed JSON body."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": _FLOOR_HEADERS})
    await send({"type": "http.response.body", "body": FLOOR_BODY})


class Greeting(BaseModel):
    message: str


def create_hello_version(settings: Any = None) -> FastAPI:
    """The issue's reference app: one FastAPI route with a pydantic response model.

    It doubles as a version factory (``create_app(settings)``), so the gateway can mount it
    as ``/v3`` and the bench can compare the same route with and without the gateway.
    """
    app = FastAPI(title="Hello", version="3.0.0")

    @app.get("/hello", response_model=Greeting)
    async def hello() -> Greeting:
        return Greeting(message="hello")

    return app


def create_starlette_hello() -> Starlette:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"message": "hello"})

    return Starlette(routes=[Route("/hello", hello)])


def create_mounted_hello() -> Starlette:
    """The reference FastAPI app under a plain Starlette ``Mount``, nothing else."""
    return Starlette(routes=[Mount("/v3", app=create_hello_version())])


class RequestIdMiddleware(BaseHTTPMiddleware):
    # Deliberately the documented base class: the naive gateways are the baselines the
    # gateway's one fused pure-ASGI pass is measured against (docs/conventions.md rules it out of the product).
    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers["X-Request-ID"] = uuid.uuid4().hex
        return response


def create_naive_hello() -> Starlette:
    """The naive gateway over the reference FastAPI app: ``Mount`` and one base-class middleware."""
    return Starlette(
        routes=[Mount("/v3", app=create_hello_version())], middleware=[Middleware(RequestIdMiddleware)]
    )
