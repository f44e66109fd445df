"""A test-only API version, mounted through the registry like v1 and v2.

It exists to prove that a version is data: the tests register it as ``/v3`` (or
under any prefix) without touching the gateway's code.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import BackgroundTasks, FastAPI, Query, Request, WebSocket
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.applications import Starlette

from gateway.api import CallerIdentity, ReadinessCheck, add_readiness_check, identity_of


class Greeting(BaseModel):
    message: str = Field(min_length=1, max_length=20)


def create_app() -> FastAPI:
    events: list[str] = []

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        app.state.started = True
        events.append("probe started")
        yield {"owner": "probe"}
        events.append("probe stopped")

    app = FastAPI(title="Probe API", version="3.0.0", description="A version for tests.", lifespan=lifespan)
    app.state.events = events
    app.state.background_done = asyncio.Event()

    @app.get("/hello", operation_id="say_hello")
    async def hello() -> dict[str, str]:
        return {"hello": "probe"}

    @app.get("/tls", operation_id="tls_extension")
    async def tls_extension(request: Request) -> dict[str, Any] | None:
        tls: dict[str, Any] | None = request.scope.get("extensions", {}).get("tls")
        return tls

    @app.get("/whoami", operation_id="whoami")
    async def whoami(caller: CallerIdentity) -> dict[str, str | None]:
        return {"spiffe_id": caller.spiffe_id, "service": caller.service}

    @app.websocket("/ws/tls")
    async def websocket_tls(websocket: WebSocket) -> None:
        """Sends the connection's TLS extension and the caller's identity, then closes."""
        await websocket.accept()
        caller = identity_of(websocket.scope)
        await websocket.send_json(
            {
                "tls": websocket.scope.get("extensions", {}).get("tls"),
                "spiffe_id": caller.spiffe_id if caller is not None else None,
            }
        )
        await websocket.close()

    @app.get("/pid", operation_id="worker_pid")
    async def worker_pid() -> dict[str, int]:
        return {"pid": os.getpid()}

    @app.post("/greetings", status_code=201, operation_id="create_greeting")
    async def greet(greeting: Greeting) -> Greeting:
        return greeting

    @app.post("/upload", operation_id="upload")
    async def upload(request: Request) -> dict[str, int]:
        return {"received": len(await request.body())}

    @app.get("/slow", operation_id="slow")
    async def slow(seconds: Annotated[float, Query(ge=0, le=30)] = 1.0) -> dict[str, float]:
        await asyncio.sleep(seconds)
        return {"slept": seconds}

    @app.get("/boom", operation_id="boom")
    async def boom() -> None:
        raise RuntimeError("secret internal detail")

    @app.get("/stream", operation_id="stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            for number in range(3):
                yield f"chunk {number}\n".encode()
                await asyncio.sleep(0)

        return StreamingResponse(chunks(), media_type="text/plain")

    @app.post("/background", status_code=202, operation_id="background")
    async def background(tasks: BackgroundTasks, request: Request) -> dict[str, str]:
        tasks.add_task(request.app.state.background_done.set)
        return {"queued": "yes"}

    @app.get("/state", operation_id="state")
    async def state(request: Request) -> dict[str, Any]:
        return {"request_state": dict(request.state._state), "started": request.app.state.started}

    return app


def create_app_with_hung_check() -> FastAPI:
    app = create_app()

    async def never_answers() -> None:
        await asyncio.Event().wait()

    add_readiness_check(app, ReadinessCheck("hung-dependency", never_answers))
    return app


def create_app_with_failing_check() -> FastAPI:
    app = create_app()

    async def refuses() -> None:
        raise ConnectionRefusedError("dependency refused the connection")

    add_readiness_check(app, ReadinessCheck("refusing-dependency", refuses))
    return app


def create_app_failing_startup() -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        raise RuntimeError("cannot reach the probe's database")
        yield  # type: ignore[unreachable]  # The yield makes this a lifespan generator.

    return FastAPI(title="Broken", lifespan=lifespan)


def create_starlette_app() -> Starlette:
    return Starlette()


def create_app_with_root() -> FastAPI:
    """A version that answers its root itself: the gateway leaves that route alone."""
    app = create_app()

    @app.get("/", operation_id="probe_root")
    async def root() -> dict[str, str]:
        return {"root": "probe"}

    return app
