"""Items catalog v1 (deprecated): items as ``{id, name, price}``, price a JSON number."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.catalog import create_catalog_app
from services.catalog.commands import CATALOG_EXTENSION
from services.v1.routes import router

if TYPE_CHECKING:
    from fastapi import FastAPI

    from services.catalog.settings import CatalogSettings

# The catalog's settings, `gateway db` and the migration before the workers fork, shared by
# every app on the catalog.
GATEWAY_EXTENSION = CATALOG_EXTENSION

DESCRIPTION = """\
The first items catalog API. **Deprecated:** use v2, which adds descriptions, tags,
currencies, exact decimal amounts and cursor pagination. Both versions serve the same
items, so an item created here can be read through v2 and the other way round.
"""


def create_app(settings: CatalogSettings) -> FastAPI:
    return create_catalog_app(
        settings, router, title="Items catalog v1", version="1.0.0", description=DESCRIPTION
    )
