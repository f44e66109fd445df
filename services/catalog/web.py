"""How a version app reaches the shared store: its lifespan, dependency, readiness check, errors.

The store lives on the version app's ``app.state`` rather than in lifespan state: the
gateway runs each mounted app's lifespan itself (Starlette does not run mounted apps'
lifespans, https://github.com/encode/starlette/issues/649), and ``request.app`` is always
the version app, wherever it is mounted.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Annotated, Any, cast

from fastapi import APIRouter, Depends, FastAPI, Path, Request
from starlette.exceptions import HTTPException
from starlette.responses import Response

from gateway.api import (
    PROBLEM_CONTENT_TYPE,
    ProbeReport,
    ReadinessCheck,
    add_readiness_check,
    problem_response,
    shared_resources_of,
)
from services.catalog.availability import CatalogUnavailableError
from services.catalog.domain import ImportConflictError, RevisionMismatchError
from services.catalog.etags import item_tag
from services.catalog.schema import SchemaNotCurrentError, SchemaState
from services.catalog.store import CatalogStore
from services.catalog.tables import MAX_ITEM_ID

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable
    from contextlib import AbstractAsyncContextManager

    from pydantic import BaseModel
    from starlette.applications import Starlette

    from services.catalog.settings import CatalogSettings

STORE_STATE_KEY = "catalog_store"
READINESS_CHECK_NAME = "catalog-store"
# Long enough for a pool's pre-ping to find the database back after a restart or failover.
RETRY_AFTER_SECONDS = 5
logger = logging.getLogger("services.catalog")


def store_lifespan(settings: CatalogSettings) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """A lifespan that opens the store from ``settings`` on start-up and closes it on shutdown."""

    async def open_store() -> CatalogStore:
        return await CatalogStore.open(
            settings.database_url,
            busy_timeout=settings.database_busy_timeout,
            call_timeout=settings.database_timeout,
            idempotency_key_ttl=settings.idempotency_key_ttl,
            pool_size=settings.database_pool_size,
            max_overflow=settings.database_max_overflow,
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Under the gateway every catalog app (v1, v2, /internal) shares one store, so a
        # worker has one pool and one SQLite writer queue (gateway/shared.py).
        resources = shared_resources_of(app)
        opening = (
            _own_store(open_store)
            if resources is None
            else resources.share((STORE_STATE_KEY, settings.database_url), open_store, CatalogStore.close)
        )
        async with opening as store:
            setattr(app.state, STORE_STATE_KEY, store)
            try:
                yield
            finally:
                setattr(app.state, STORE_STATE_KEY, None)

    return lifespan


@asynccontextmanager
async def _own_store(open_store: Callable[[], Awaitable[CatalogStore]]) -> AsyncIterator[CatalogStore]:
    store = await open_store()
    try:
        yield store
    finally:
        await store.close()


def create_catalog_app(
    settings: CatalogSettings, router: APIRouter, *, title: str, version: str, description: str
) -> FastAPI:
    """A version app of the catalog: its routes over the shared store, with the store's
    lifespan, readiness check and unavailability handling."""
    # The router's routes become the app's own: FastAPI matches an included router as one
    # more layer on every request.
    app = FastAPI(
        title=title,
        version=version,
        description=description,
        lifespan=store_lifespan(settings),
        routes=list(router.routes),
        # The gateway traces requests itself (gateway.tracing); FastAPI's own telemetry would
        # look its OpenTelemetry providers up in the environment on every request to find none.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    add_store_readiness_check(app)
    install_store_error_handlers(app)
    return app


def store_of(app: Starlette) -> CatalogStore:
    store = getattr(app.state, STORE_STATE_KEY, None)
    if store is None:
        raise RuntimeError("the catalog store is not open: the app's lifespan has not started")
    return cast("CatalogStore", store)


# async, though it never awaits: FastAPI runs a plain ``def`` dependency in its thread pool,
# a hop to another thread and back on every request.
async def get_store(request: Request) -> CatalogStore:
    return store_of(request.app)


StoreDep = Annotated[CatalogStore, Depends(get_store)]
ItemIdPath = Annotated[int, Path(ge=1, le=MAX_ITEM_ID, description="The item's id.")]


def add_store_readiness_check(app: FastAPI) -> None:
    """Report the app unready until its store answers ``SELECT 1`` with the schema the code
    needs; ready with a warning on a schema a newer release migrated."""

    async def probe() -> ProbeReport | None:
        # Looked up per probe: the store exists only while the lifespan runs.
        store = store_of(app)
        await store.ping()
        status = store.schema_status
        if status is not None and status.state is SchemaState.AHEAD:
            return ProbeReport(status="warn", output=status.describe())
        return None

    add_readiness_check(app, ReadinessCheck(name=READINESS_CHECK_NAME, probe=probe))


def install_store_error_handlers(app: FastAPI) -> None:
    """Answer the store's errors: 503 while the database is unavailable, 412 on a stale If-Match.

    Handlers for these types run before the gateway's catch-all 500 handler, which Starlette
    keeps for ``Exception`` alone; the body is the gateway's problem shape either way.
    """
    app.add_exception_handler(CatalogUnavailableError, _answer_unavailable)
    app.add_exception_handler(RevisionMismatchError, _answer_revision_mismatch)
    app.add_exception_handler(ImportConflictError, _answer_import_conflict)


async def _answer_unavailable(request: Request, error: Exception) -> Response:
    # A warning without a traceback: the cause is outside the process, and the message names it.
    logger.warning("%s %s: the catalog database is unavailable: %s", request.method, request.url.path, error)
    # A driver's error may name hosts and users, so clients get a fixed sentence; but a schema
    # behind the code is the deploy's to fix, and saying so (with the revisions) is safe.
    detail = (
        f"The catalog's database schema is not ready: {error}."
        if isinstance(error, SchemaNotCurrentError)
        else "The catalog's database is unavailable; retry later."
    )
    return problem_response(
        503,
        detail,
        instance=request.url.path,
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


async def _answer_revision_mismatch(request: Request, error: Exception) -> Response:
    assert isinstance(error, RevisionMismatchError)
    return problem_response(
        412,
        f"item {error.item_id} has changed (it is at revision {error.current_revision}): read it again",
        instance=request.url.path,
        headers={"ETag": str(item_tag(error.item_id, error.current_revision))},
    )


async def _answer_import_conflict(request: Request, error: Exception) -> Response:
    return problem_response(409, str(error), instance=request.url.path)


def problem_response_doc(description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    """An OpenAPI response in the problem shape; the gateway adds the ``Problem`` schema it names."""
    doc: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_CONTENT_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    if headers:
        doc["headers"] = headers
    return doc


# The statuses the item routes raise themselves; the gateway documents the problem shape
# of every error, the 422 included, when it mounts the app.
NOT_FOUND_RESPONSES: dict[int | str, dict[str, Any]] = {404: {"description": "No item has this id."}}
# Every catalog route can meet an unavailable database.
UNAVAILABLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    503: problem_response_doc(
        "The catalog's database is unavailable or too slow; retry after Retry-After seconds.",
        headers={"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    )
}


def json_response(body: BaseModel, *, headers: dict[str, str] | None = None) -> Response:
    """``body`` as JSON, as FastAPI renders a route's return value, without validating it again
    first: FastAPI checks a returned model against the response model, which a route that
    built it from stored items does not need (on a page of twenty items, a second validation)."""
    return Response(body.model_dump_json(), media_type="application/json", headers=headers)


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
