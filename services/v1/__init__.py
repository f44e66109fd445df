"""Items catalog v1 (deprecated): items as ``{id, name, price}``, price a JSON number."""

from __future__ import annotations

from typing import TYPE_CHECKING

from fastapi import FastAPI

from services.catalog import add_store_readiness_check, install_store_error_handlers, store_lifespan
from services.v1.routes import router

if TYPE_CHECKING:
    from gateway.settings import Settings

DESCRIPTION = """\
The first items catalog API. **Deprecated:** use v2, which adds descriptions, tags,
currencies, exact decimal amounts and cursor pagination. Both versions serve the same
items, so an item created here can be read through v2 and the other way round.
"""


def create_app(settings: Settings) -> FastAPI:
    app = FastAPI(
        title="Items catalog v1",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=store_lifespan(settings),
    )
    app.include_router(router)
    add_store_readiness_check(app)
    install_store_error_handlers(app)
    return app
