"""What the apps mounted in one gateway share: one catalog store per database, for one.

Each mounted app opens what it needs in its own lifespan, and a version app must also run
alone (its tests serve it directly). But v1, v2 and /internal opening a store each would
give every worker three connection pools to one database, triple the connection budget
the operator sizes PostgreSQL for, and three SQLite writer queues that do not see each
other. So the gateway hands every app it mounts one ``SharedResources``: the first
lifespan that asks for a resource opens it, later ones get the same object, and the last
one to stop closes it. An app run alone has none, and opens its own.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Hashable

    from starlette.applications import Starlette

SHARED_RESOURCES_STATE_KEY = "gateway_shared_resources"
_Resource = TypeVar("_Resource")


@dataclass
class _Shared:
    resource: Any
    close: Callable[[Any], Awaitable[None]]
    users: int = 0


class SharedResources:
    def __init__(self) -> None:
        self._resources: dict[Hashable, _Shared] = {}
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def share(
        self,
        key: Hashable,
        open_resource: Callable[[], Awaitable[_Resource]],
        close_resource: Callable[[_Resource], Awaitable[None]],
    ) -> AsyncIterator[_Resource]:
        """The resource under ``key``, opened by the first user and closed by the last."""
        async with self._lock:
            shared = self._resources.get(key)
            if shared is None:
                shared = _Shared(
                    await open_resource(), cast("Callable[[Any], Awaitable[None]]", close_resource)
                )
                self._resources[key] = shared
            shared.users += 1
        try:
            yield cast("_Resource", shared.resource)
        finally:
            async with self._lock:
                shared.users -= 1
                if shared.users == 0:
                    del self._resources[key]
                    await shared.close(shared.resource)


def share_resources(app: Starlette, resources: SharedResources) -> None:
    """Give ``app`` (a mounted app) the gateway's shared resources, before its lifespan runs."""
    setattr(app.state, SHARED_RESOURCES_STATE_KEY, resources)


def shared_resources_of(app: Starlette) -> SharedResources | None:
    """The resources of the gateway that mounted ``app``; None when it runs alone."""
    resources = getattr(app.state, SHARED_RESOURCES_STATE_KEY, None)
    return resources if isinstance(resources, SharedResources) else None
