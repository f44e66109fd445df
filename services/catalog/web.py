"""How a version app reaches the shared store: its lifespan, dependency, readiness check.

The store lives on the version app's ``app.state`` rather than in lifespan state: the
gateway runs each mounted app's lifespan itself (Starlette does not run mounted apps'
lifespans, https://github.com/encode/starlette/issues/649), and ``request.app`` is always
the version app, wherever it is mounted.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import Depends, Path, Request
from starlette.exceptions import HTTPException

from gateway.health import ReadinessCheck, add_readiness_check
from services.catalog.store import CatalogStore
from services.catalog.tables import MAX_ITEM_ID

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from fastapi import FastAPI
    from starlette.applications import Starlette

    from gateway.settings import Settings

STORE_STATE_KEY = "catalog_store"
READINESS_CHECK_NAME = "catalog-store"


def store_lifespan(settings: Settings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that opens the store from ``settings`` on start-up and closes it on shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store = await CatalogStore.open(settings.database_url, busy_timeout=settings.database_busy_timeout)
        setattr(app.state, STORE_STATE_KEY, store)
        try:
            yield
        finally:
            setattr(app.state, STORE_STATE_KEY, None)
            await store.close()

    return lifespan


def store_of(app: Starlette) -> CatalogStore:
    store = getattr(app.state, STORE_STATE_KEY, None)
    if store is None:
        raise RuntimeError("the catalog store is not open: the app's lifespan has not started")
    return cast("CatalogStore", store)


def get_store(request: Request) -> CatalogStore:
    return store_of(request.app)


StoreDep = Annotated[CatalogStore, Depends(get_store)]
ItemIdPath = Annotated[int, Path(ge=1, le=MAX_ITEM_ID, description="The item's id.")]


def add_store_readiness_check(app: FastAPI) -> None:
    """Report the app unready until its store answers ``SELECT 1``."""

    async def probe() -> None:
        # Looked up per probe: the store exists only while the lifespan runs.
        await store_of(app).ping()

    add_readiness_check(app, ReadinessCheck(name=READINESS_CHECK_NAME, probe=probe))


# The one status the item routes raise themselves; the gateway documents the problem shape
# of every error, the 422 included, when it mounts the app.
NOT_FOUND_RESPONSES: dict[int | str, dict[str, Any]] = {404: {"description": "No item has this id."}}


def item_not_found(item_id: int) -> HTTPException:
    return HTTPException(404, f"item {item_id} does not exist")


def location_of(request: Request, route_name: str, **path_params: object) -> str:
    """The absolute path of a route of ``request``'s own app, wherever that app is mounted.

    ``request.url_for`` resolves names from the outermost router, where v1 and v2 both have
    a ``read_item``; the app's own router and the mount's ``root_path`` (which includes a
    proxy's prefix) are unambiguous.
    """
    path = request.app.url_path_for(route_name, **path_params)
    return f"{request.scope.get('root_path', '')}{path}"
