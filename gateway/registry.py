"""Turn the version registry (and the /internal app) into mounted apps, each prepared the same way."""

from __future__ import annotations

import dataclasses
import logging
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from starlette.responses import JSONResponse
from uvicorn.importer import import_from_string

from gateway.discovery import version_links
from gateway.docs import install_offline_docs
from gateway.errors import install_error_handlers
from gateway.extensions import extension_of, section_of
from gateway.health import ReadinessCheck, readiness_checks_of
from gateway.openapi import document_problem_responses
from gateway.routing import AnswerHeadWithGet, allowed_methods, redirect_slashes_relatively, server_root_path
from gateway.shared import share_resources

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from gateway.settings import Settings
    from gateway.shared import SharedResources
    from gateway.versions import VersionEntry

logger = logging.getLogger("gateway.registry")


class MountedApp:
    """One app as the root mounts it (an API version, or /internal), with its own lifespan state.

    Starlette never runs a mounted app's lifespan
    (https://github.com/encode/starlette/issues/649), so the root runs ``lifespan()`` of
    every version; whatever that lifespan yields becomes ``request.state`` for the
    version's requests, and only for them.
    """

    def __init__(self, prefix: str, app: FastAPI) -> None:
        self.prefix = prefix
        self.name = prefix.lstrip("/")
        self.app = app
        self._state: dict[str, Any] = {}
        # Here rather than as the app's middleware: other methods pay one comparison, not a layer.
        self._answer_head = AnswerHeadWithGet(app, app.router)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # A shallow copy per request, as servers do for the root's lifespan state.
        scope["state"] = self._state.copy()
        if scope.get("method") == "HEAD":
            await self._answer_head(scope, receive, send)
            return
        await self.app(scope, receive, send)

    @property
    def readiness_checks(self) -> list[ReadinessCheck]:
        return [
            dataclasses.replace(check, name=f"{self.name}:{check.name}")
            for check in readiness_checks_of(self.app)
        ]

    @asynccontextmanager
    async def lifespan(self) -> AsyncIterator[None]:
        try:
            context = self.app.router.lifespan_context(self.app)
            state = await context.__aenter__()
        except Exception:
            logger.exception("startup of %s failed", self.prefix)
            raise
        self._state = dict(state or {})
        logger.info("%s started", self.prefix)
        try:
            yield
        finally:
            try:
                await context.__aexit__(None, None, None)
            except Exception:
                logger.exception("shutdown of %s failed", self.prefix)
            else:
                logger.info("%s stopped", self.prefix)


def build_mounted_app(
    factory_path: str, settings: Settings, resources: SharedResources | None = None
) -> FastAPI:
    """Call the factory at ``factory_path`` ('package.module:function') with its settings
    section, if its extension declares one, and prepare its app, which shares ``resources``
    with the other apps of the gateway."""
    factory = import_from_string(factory_path)
    extension = extension_of(factory_path)
    section = section_of(extension, settings) if extension is not None else None
    app = factory(section) if section is not None else factory()
    if not isinstance(app, FastAPI):
        raise TypeError(f"{factory_path} returned {type(app).__name__}, not a FastAPI app")
    if app.root_path:
        # FastAPI(root_path=...) on a mounted app makes every route 404: the root path
        # belongs to the server (--root-path), never to a mounted app.
        raise ValueError(f"{factory_path} sets root_path; leave it to the server")
    if resources is not None:
        share_resources(app, resources)
    install_error_handlers(app)
    install_offline_docs(app)
    document_problem_responses(app)
    redirect_slashes_relatively(app.router)
    return app


def describe_version_at_root(app: FastAPI, entry: VersionEntry) -> None:
    """Give a version a JSON document at its root, unless the app answers ``/`` itself: the
    index, the API catalog and ``Link: rel="successor-version"`` all point there."""
    if allowed_methods(app.router.routes, {"type": "http", "path": "/", "root_path": "", "headers": []}):
        return

    async def version_root(request: Request) -> JSONResponse:
        (links,) = version_links([entry], server_root_path(request.scope), datetime.now(UTC))
        return JSONResponse({"title": app.title, "version": app.version, **dataclasses.asdict(links)})

    app.add_route("/", version_root, methods=["GET"], include_in_schema=False)


def _mount_version(entry: VersionEntry, settings: Settings, resources: SharedResources | None) -> MountedApp:
    app = build_mounted_app(entry.factory, settings, resources)
    describe_version_at_root(app, entry)
    return MountedApp(entry.prefix, app)


def mount_versions(
    settings: Settings, resources: SharedResources | None = None, now: datetime | None = None
) -> list[MountedApp]:
    """Build every version that can still answer; a version past its sunset is never loaded."""
    now = now or datetime.now(UTC)
    return [
        _mount_version(entry, settings, resources)
        for entry in settings.versions
        if not (settings.enforce_sunset and entry.is_gone(now))
    ]
