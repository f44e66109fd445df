"""Items catalog v2 (current): decimal-string prices with currencies, descriptions, tags, cursors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from services.catalog import add_store_readiness_check, install_store_error_handlers, store_lifespan
from services.v2.routes import router

if TYPE_CHECKING:
    from gateway.settings import Settings

DESCRIPTION = """\
The items catalog. Prices are exact: amounts are decimal strings with two decimals
(`"12.50"`) and carry an ISO 4217 currency. Items have an optional description and up to
20 tags, and lists are paginated with opaque cursors. v1 serves the same items.
"""


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Items catalog v2",
        version="2.0.0",
        description=DESCRIPTION,
        lifespan=store_lifespan(settings),
    )
    app.include_router(router)
    add_store_readiness_check(app)
    install_store_error_handlers(app)
    return app
