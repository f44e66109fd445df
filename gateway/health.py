"""Shared health endpoints, in the IETF health-check format (``application/health+json``).

- ``/health/live``: the process answers; touches no dependency.
- ``/health/ready``: every registered readiness check, run concurrently, each under its
  own timeout; 503 with every result when one fails, times out, or the process drains.
- ``/health``: a summary for people: version, uptime, worker, mounted versions, checks.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from gateway.versions import VersionEntry

HEALTH_CONTENT_TYPE = "application/health+json"
READINESS_CHECKS_STATE_KEY = "readiness_checks"
logger = logging.getLogger("gateway.health")


@dataclass(frozen=True)
class ProbeReport:
    """What a probe may return besides passing silently: a note, or a warning (still ready)."""

    status: Literal["pass", "warn"]
    output: str


@dataclass(frozen=True)
class ReadinessCheck:
    """A dependency the app cannot serve without. ``probe`` raises when it is not usable."""

    name: str
    probe: Callable[[], Awaitable[object]]
    timeout: float | None = None  # None: the gateway's readiness_timeout setting.
    component_type: str = "datastore"


def add_readiness_check(app: Starlette, check: ReadinessCheck) -> None:
    """Register ``check`` on a version app; the gateway collects it when it mounts the app."""
    checks: list[ReadinessCheck] = getattr(app.state, READINESS_CHECKS_STATE_KEY, [])
    setattr(app.state, READINESS_CHECKS_STATE_KEY, [*checks, check])


def begin_draining(app: object) -> None:
    """Turn readiness to 503 for the gateway app ``app``; the server calls this on SIGTERM."""
    state = getattr(app, "state", None)
    health = getattr(state, "health", None)
    if isinstance(health, HealthState):
        health.begin_draining()


def readiness_checks_of(app: Starlette) -> list[ReadinessCheck]:
    return list(getattr(app.state, READINESS_CHECKS_STATE_KEY, []))


class HealthResponse(JSONResponse):
    media_type = HEALTH_CONTENT_TYPE


@dataclass
class HealthState:
    """What the health endpoints report: the checks, and whether the process is draining."""

    checks: list[ReadinessCheck]
    default_timeout: float
    release: str
    versions: list[VersionEntry]
    started_monotonic: float = field(default_factory=time.monotonic)
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    draining: bool = False
    # Told each readiness verdict, e.g. to export it as a metric.
    on_readiness: Callable[[bool], None] | None = None

    def begin_draining(self) -> None:
        self.draining = True
        self.report_readiness(ready=False)

    def report_readiness(self, *, ready: bool) -> None:
        if self.on_readiness is not None:
            self.on_readiness(ready)

    async def run_checks(self) -> dict[str, list[dict[str, Any]]]:
        results = await asyncio.gather(*(self._run(check) for check in self.checks))
        return {name: [result] for name, result in zip((c.name for c in self.checks), results, strict=True)}

    async def _run(self, check: ReadinessCheck) -> dict[str, Any]:
        timeout = check.timeout if check.timeout is not None else self.default_timeout
        started = time.perf_counter()
        result: dict[str, Any] = {"componentId": check.name, "componentType": check.component_type}
        try:
            async with asyncio.timeout(timeout):
                report = await check.probe()
        except TimeoutError:
            result.update(status="fail", output=f"no answer within {timeout:g}s")
        except Exception as error:  # A check may fail any way its dependency can.
            logger.warning("readiness check %s failed: %r", check.name, error)
            result.update(status="fail", output=f"{type(error).__name__}: {error}")
        else:
            result["status"] = "pass"
            if isinstance(report, ProbeReport):
                result.update(status=report.status, output=report.output)
        elapsed_ms = (time.perf_counter() - started) * 1000
        result.update(
            observedValue=round(elapsed_ms, 2), observedUnit="ms", time=datetime.now(UTC).isoformat()
        )
        return result


def _overall(checks: dict[str, list[dict[str, Any]]], draining: bool) -> str:
    statuses = {result["status"] for results in checks.values() for result in results}
    if draining or "fail" in statuses:
        return "fail"
    # "warn": healthy, with a concern (the health-check draft); readiness stays 200.
    return "warn" if "warn" in statuses else "pass"


class LiveProbe:
    """``/health/live`` as a plain ASGI app: the process answers, and nothing else is asked.

    Probed every few seconds by every orchestrator, and the cheapest answer there is: one
    body built once. The edge calls it directly, past Starlette's routing (see edge.py).
    """

    path = "/health/live"
    _body = json.dumps({"status": "pass"}).encode()
    _headers: ClassVar[tuple[tuple[bytes, bytes], ...]] = (
        (b"content-type", HEALTH_CONTENT_TYPE.encode()),
        (b"content-length", str(len(_body)).encode()),
        (b"cache-control", b"no-store"),
    )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": self._headers})
        await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else self._body})


def health_routes(state: HealthState) -> list[Route]:

    async def ready(request: Request) -> Response:
        checks = await state.run_checks()
        status = _overall(checks, state.draining)
        state.report_readiness(ready=status != "fail")
        body: dict[str, Any] = {"status": status, "checks": checks}
        if state.draining:
            body["output"] = "draining: the process is shutting down"
        code = 503 if status == "fail" else 200
        return HealthResponse(body, status_code=code, headers={"Cache-Control": "no-store"})

    async def summary(request: Request) -> Response:
        checks = await state.run_checks()
        status = _overall(checks, state.draining)
        body = {
            "status": status,
            "version": state.release.split(".")[0],
            "releaseId": state.release,
            "serviceId": "versioned-api-gateway",
            "description": "Gateway for versioned FastAPI apps",
            "uptime_seconds": round(time.monotonic() - state.started_monotonic, 3),
            "worker": {"pid": os.getpid(), "started_at": state.started_at.isoformat()},
            "draining": state.draining,
            "versions": [
                {"prefix": entry.prefix, "status": entry.lifecycle_at(datetime.now(UTC)).value}
                for entry in state.versions
            ],
            "checks": checks,
        }
        code = 503 if status == "fail" else 200
        return HealthResponse(body, status_code=code, headers={"Cache-Control": "no-store"})

    return [
        Route("/health", summary, methods=["GET"], name="health"),
        # HEAD too: Starlette adds it for function endpoints, not for an ASGI app.
        Route(LiveProbe.path, LiveProbe(), methods=["GET", "HEAD"], name="health_live"),
        Route("/health/ready", ready, methods=["GET"], name="health_ready"),
    ]
