"""The internal API, for other services over mutual TLS: bulk export and import of the catalog.

Mounted at ``/internal`` by the gateway, behind its allow-list (``gateway/internal.py``);
it speaks v2's item format, the current one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from services.catalog import create_catalog_app
from services.catalog.commands import CATALOG_EXTENSION
from services.internal.routes import router

if TYPE_CHECKING:
    from fastapi import FastAPI

    from services.catalog.settings import CatalogSettings

# The catalog's settings, `gateway db` and the migration before the workers fork, shared by
# every app on the catalog.
GATEWAY_EXTENSION = CATALOG_EXTENSION

DESCRIPTION = """\
Bulk access to the items catalog for other services. Every route needs a verified client
certificate (mutual TLS) whose SPIFFE ID the gateway's allow-list (`GATEWAY_INTERNAL_ALLOW`)
names for the route: without one the answer is 401, with another one 403.

Items are in v2's format: prices are decimal strings with a currency.
"""


def create_app(settings: CatalogSettings) -> FastAPI:
    return create_catalog_app(
        settings, router, title="Items catalog, internal API", version="1.0.0", description=DESCRIPTION
    )
