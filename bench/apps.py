"""The naive gateway and the v2 app alone: the catalog rows' baselines. Neither ships.

Servers load them by import string (``bench.apps:create_naive_gateway`` with
``--factory``); each reads its settings from the environment at call time, like the
gateway's own factory.
"""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

import services.v1
import services.v2
from bench.reference_apps import RequestIdMiddleware
from gateway.settings import load_app_settings
from services.catalog.settings import CatalogSettings

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from fastapi import FastAPI


def create_v2_alone() -> FastAPI:
    """The v2 app from its own factory, as Uvicorn would serve it without the gateway."""
    return services.v2.create_app(load_app_settings(CatalogSettings))


def create_naive_gateway() -> Starlette:
    """What users write from the docs: the version apps under ``Mount``, one base-class
    middleware adding a header, and a root lifespan that starts the versions' stores
    (Starlette runs only the root's lifespan, https://github.com/encode/starlette/issues/649)."""
    settings = load_app_settings(CatalogSettings)
    versions = {"/v1": services.v1.create_app(settings), "/v2": services.v2.create_app(settings)}

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            for version in versions.values():
                await stack.enter_async_context(version.router.lifespan_context(version))
            yield

    return Starlette(
        routes=[Mount(prefix, app=version) for prefix, version in versions.items()],
        middleware=[Middleware(RequestIdMiddleware)],
        lifespan=lifespan,
    )
