"""The ``/internal`` mount: an API for other services, open only to allow-listed identities.

It is mounted like a version (its own FastAPI app, lifespan, docs and error shape) but is
not one: it has no lifecycle and is not listed among the versions. In front of it a guard
answers 401 to a caller without a verified identity and 403 to an identity the
allow-list (``GATEWAY_INTERNAL_ALLOW``) does not name for the route, before any of the
app's routing runs, so an unknown caller cannot even learn which routes exist. The docs
(``/internal/docs``, ``/internal/redoc``, ``/internal/openapi.json``) describe the API to
every verified caller.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.routing import Mount, Router

from gateway.errors import problem_response
from gateway.registry import MountedApp, build_mounted_app
from gateway.routing import route_path_of
from gateway.tls.allow_list import INTERNAL_PREFIX, AllowList
from gateway.tls.identity import UNAUTHENTICATED_HEADERS, identity_of

if TYPE_CHECKING:
    from starlette.routing import BaseRoute
    from starlette.types import ASGIApp, Receive, Scope, Send

    from gateway.settings import Settings
    from gateway.shared import SharedResources

_DOCS_PATHS = frozenset({"/docs", "/redoc", "/openapi.json"})
# WebSocket close code for a refused handshake (RFC 6455 7.4.1: policy violation).
_POLICY_VIOLATION = 1008
logger = logging.getLogger("gateway.internal")


class InternalAccess:
    """Admit a request to the internal app only for an identity the allow-list names."""

    def __init__(self, app: ASGIApp, allow_list: AllowList) -> None:
        self.app = app
        self.allow_list = allow_list

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        route_path = route_path_of(scope["path"], scope.get("root_path", ""))
        path = INTERNAL_PREFIX + route_path
        method = scope.get("method", "GET")  # A WebSocket handshake is a GET.
        identity = identity_of(scope)
        if identity is None:
            await self._refuse(scope, receive, send, 401, "This API needs a verified client certificate.")
            return
        is_docs = route_path in _DOCS_PATHS and method in ("GET", "HEAD")
        if not is_docs and not self.allow_list.permits(method, path, identity.spiffe_id):
            logger.warning("refused %s %s to %s: not in the allow-list", method, path, identity.spiffe_id)
            detail = f"{identity.spiffe_id} may not {method} {path}."
            await self._refuse(scope, receive, send, 403, detail)
            return
        await self.app(scope, receive, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, detail: str) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": _POLICY_VIOLATION, "reason": detail})
            return
        headers = UNAUTHENTICATED_HEADERS if status == 401 else None
        response = problem_response(status, detail, instance=scope["path"], headers=headers)
        await response(scope, receive, send)


def mount_internal(settings: Settings, resources: SharedResources | None = None) -> MountedApp | None:
    """The app of ``GATEWAY_INTERNAL_APP``, prepared like the versions; None when there is none."""
    if settings.internal_app is None:
        return None
    return MountedApp(INTERNAL_PREFIX, build_mounted_app(settings.internal_app, settings, resources))


def internal_mount(internal: MountedApp | None, settings: Settings, *gateway_routes: BaseRoute) -> Mount:
    """The root's route to ``/internal``: the gateway's own routes there (the lifecycle
    report), then the internal app if there is one, all behind the guard."""
    routes = [*gateway_routes, *([Mount("", app=internal)] if internal is not None else [])]
    return Mount(
        INTERNAL_PREFIX,
        app=InternalAccess(Router(routes), AllowList(settings.internal_allow)),
        name="internal",
    )
