from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from asgi_lifespan import LifespanManager
from starlette.routing import Mount, Router

from gateway.app import create_app
from gateway.internal import InternalAccess
from gateway.registry import MountedApp
from gateway.settings import INTERNAL_FACTORY
from gateway.shared import SharedResources
from services.catalog import store_of
from tests.conftest import catalog_versions

if TYPE_CHECKING:
    from collections.abc import Callable

    from gateway.settings import Settings

pytestmark = pytest.mark.anyio


async def test_a_resource_is_opened_by_the_first_user_and_closed_by_the_last() -> None:
    events: list[str] = []

    async def open_resource() -> list[str]:
        events.append("opened")
        return events

    async def close_resource(resource: list[str]) -> None:
        resource.append("closed")

    resources = SharedResources()
    async with resources.share("key", open_resource, close_resource) as first:
        async with resources.share("key", open_resource, close_resource) as second:
            assert second is first
        assert events == ["opened"]
    assert events == ["opened", "closed"]
    # Closed means gone: the next user opens it anew.
    async with resources.share("key", open_resource, close_resource):
        pass
    assert events == ["opened", "closed", "opened", "closed"]


async def test_every_catalog_app_of_one_gateway_shares_one_store(
    make_settings: Callable[..., Settings],
) -> None:
    app = create_app(make_settings(versions=catalog_versions(), internal_app=INTERNAL_FACTORY))
    mounted = [route.app for route in app.routes if isinstance(route, Mount)]
    for guard in [entry for entry in mounted if isinstance(entry, InternalAccess)]:
        # /internal: the gateway's own routes, then the internal app at the guard's router's end.
        assert isinstance(guard.app, Router)
        mounted += [route.app for route in guard.app.routes if isinstance(route, Mount)]
    catalog_apps = [entry.app for entry in mounted if isinstance(entry, MountedApp)]
    assert len(catalog_apps) == 3
    async with LifespanManager(app):
        stores = {id(store_of(catalog_app)) for catalog_app in catalog_apps}
        assert len(stores) == 1
        store = store_of(catalog_apps[0])
    # Closed once the last of them stopped.
    with pytest.raises(RuntimeError, match="not open"):
        store_of(catalog_apps[0])
    assert store is not None
