"""The driver-direct reference apps: the catalog's read by id and its list page, written by
hand in a minimal FastAPI app on each driver, with the catalog's own SQL and response shape.

What the v2 app is measured against (issue 14): the same statement on the same database, the
same JSON out, with nothing between the route and the driver. They import nothing of the
gateway or the catalog, and read the database URL the bench gives every server
(``GATEWAY_DATABASE_URL``). None of them ships.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from fastapi import FastAPI, HTTPException, Request
from pydantic import BaseModel

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

# The catalog's statements (services/catalog/statements.py), compiled for each database.
_SQLITE_TAGS = (
    "(SELECT json_group_array(json_array(item_tags.position, item_tags.tag)) FROM item_tags"
    " WHERE item_tags.item_id = {id}) AS tags"
)
_POSTGRESQL_TAGS = (
    "(SELECT json_agg(json_build_array(item_tags.position, item_tags.tag)) FROM item_tags"
    " WHERE item_tags.item_id = {id}) AS tags"
)
_COLUMNS = "id, name, description, price_cents, currency, created_at, updated_at, revision"


def _item_sql(tags: str, parameter: str) -> str:
    return f"SELECT {_COLUMNS}, {tags.format(id='items.id')} FROM items WHERE items.id = {parameter}"  # noqa: S608


def _page_sql(tags: str, limit: str) -> str:
    page = f"SELECT {_COLUMNS} FROM items ORDER BY items.id LIMIT {limit} OFFSET 0"  # noqa: S608
    return f"SELECT page.*, {tags.format(id='page.id')} FROM ({page}) AS page ORDER BY page.id"  # noqa: S608


class PriceOut(BaseModel):
    amount: str
    currency: str


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: PriceOut
    tags: list[str]
    created_at: datetime
    updated_at: datetime


class ItemPage(BaseModel):
    data: list[ItemOut]
    next_cursor: str | None


def _utc(value: datetime | str) -> datetime:
    if isinstance(value, str):  # SQLite's text form.
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return value


def _item_of(row: Sequence[Any]) -> ItemOut:
    item_id, name, description, cents, currency, created_at, updated_at, _revision, tags = row
    pairs = json.loads(tags) if tags else []
    return ItemOut(
        id=item_id,
        name=name,
        description=description,
        price=PriceOut(amount=f"{cents // 100}.{cents % 100:02d}", currency=currency),
        tags=[tag for _position, tag in sorted(pairs)],
        created_at=_utc(created_at),
        updated_at=_utc(updated_at),
    )


def _app(
    lifespan: Callable[[FastAPI], Any],
    fetch_one: Callable[[Request, int], Awaitable[Sequence[Any] | None]],
    fetch_page: Callable[[Request, int], Awaitable[Sequence[Sequence[Any]]]],
) -> FastAPI:
    app = FastAPI(lifespan=lifespan)

    @app.get("/items/{item_id}", response_model=ItemOut)
    async def read_item(item_id: int, request: Request) -> ItemOut:
        row = await fetch_one(request, item_id)
        if row is None:
            raise HTTPException(404)
        return _item_of(row)

    @app.get("/items", response_model=ItemPage)
    async def list_items(request: Request, limit: int = 20) -> ItemPage:
        # One more than the page holds tells whether another page follows, as v2 does.
        rows = await fetch_page(request, limit + 1)
        more = len(rows) > limit
        return ItemPage(
            data=[_item_of(row) for row in rows[:limit]],
            next_cursor=str(rows[limit - 1][0]) if more else None,
        )

    return app


def _sqlite_path() -> str:
    return urlsplit(os.environ["GATEWAY_DATABASE_URL"]).path[1:]


def create_aiosqlite_app() -> FastAPI:
    """aiosqlite, one connection: each statement a hop to its thread and back."""
    import aiosqlite

    item_sql, page_sql = _item_sql(_SQLITE_TAGS, "?"), _page_sql(_SQLITE_TAGS, "?")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with aiosqlite.connect(_sqlite_path()) as connection:
            app.state.connection = connection
            yield

    async def fetch_one(request: Request, item_id: int) -> Sequence[Any] | None:
        rows = await request.app.state.connection.execute_fetchall(item_sql, (item_id,))
        return rows[0] if rows else None

    async def fetch_page(request: Request, limit: int) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await request.app.state.connection.execute_fetchall(
            page_sql, (limit,)
        )
        return rows

    return _app(lifespan, fetch_one, fetch_page)


def create_sqlite3_app() -> FastAPI:
    """sqlite3 in the event loop, one connection (WAL: readers never wait for the writer)."""
    item_sql, page_sql = _item_sql(_SQLITE_TAGS, "?"), _page_sql(_SQLITE_TAGS, "?")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        connection = sqlite3.connect(_sqlite_path(), isolation_level=None)
        app.state.connection = connection
        try:
            yield
        finally:
            connection.close()

    async def fetch_one(request: Request, item_id: int) -> Sequence[Any] | None:
        row: Sequence[Any] | None = request.app.state.connection.execute(item_sql, (item_id,)).fetchone()
        return row

    async def fetch_page(request: Request, limit: int) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = request.app.state.connection.execute(page_sql, (limit,)).fetchall()
        return rows

    return _app(lifespan, fetch_one, fetch_page)


def create_asyncpg_app() -> FastAPI:
    """An asyncpg pool of the catalog's size (5 + 5), statements prepared by asyncpg's cache."""
    import asyncpg

    item_sql, page_sql = _item_sql(_POSTGRESQL_TAGS, "$1"), _page_sql(_POSTGRESQL_TAGS, "$1")
    url = urlsplit(os.environ["GATEWAY_DATABASE_URL"])
    search_path = parse_qs(url.query).get("search_path", ["public"])[0]
    dsn = f"postgresql://{url.netloc}{url.path}"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with asyncpg.create_pool(
            dsn, min_size=1, max_size=10, server_settings={"search_path": search_path}
        ) as pool:
            app.state.pool = pool
            yield

    async def fetch_one(request: Request, item_id: int) -> Sequence[Any] | None:
        row: Sequence[Any] | None = await request.app.state.pool.fetchrow(item_sql, item_id)
        return row

    async def fetch_page(request: Request, limit: int) -> Sequence[Sequence[Any]]:
        rows: Sequence[Sequence[Any]] = await request.app.state.pool.fetch(page_sql, limit)
        return rows

    return _app(lifespan, fetch_one, fetch_page)
