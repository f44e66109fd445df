"""Items catalog v2 (current): decimal-string prices with currencies, descriptions, tags, cursors."""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.catalog import create_catalog_app
from services.catalog.commands import CATALOG_EXTENSION
from services.v2.routes import router

if TYPE_CHECKING:
    from fastapi import FastAPI

    from services.catalog.settings import CatalogSettings

# The catalog's settings, `gateway db` and the migration before the workers fork, shared by
# every app on the catalog.
GATEWAY_EXTENSION = CATALOG_EXTENSION

DESCRIPTION = """\
The items catalog. Prices are exact: amounts are decimal strings with two decimals
(`"12.50"`) and carry an ISO 4217 currency. Items have an optional description and up to
20 tags, and lists are paginated with opaque cursors. v1 serves the same items.
"""


def create_app(settings: CatalogSettings) -> FastAPI:
    return create_catalog_app(
        settings, router, title="Items catalog v2", version="2.0.0", description=DESCRIPTION
    )
