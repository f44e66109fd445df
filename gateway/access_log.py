"""One structured line per request, written by the edge when the response is done."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.routing import Mount

from gateway.tls.identity import identity_of

if TYPE_CHECKING:
    from starlette.types import Scope

access_logger = logging.getLogger("gateway.access")


def route_template(scope: Scope) -> str | None:
    """The matched route's template ('/v2/items/{item_id}'), never the raw path."""
    route = scope.get("route")
    if route is None:
        return None
    # Each Mount extends root_path; what it added past the server's own root path is
    # the mount prefix of the innermost app that matched.
    mount_prefix = scope.get("root_path", "")[len(scope.get("app_root_path", "")) :]
    if isinstance(route, Mount):  # A mounted app without routes of its own (static files).
        return f"{mount_prefix}/{{path}}"
    return f"{mount_prefix}{getattr(route, 'path', '')}"


def log_access(
    scope: Scope, *, status: int, duration_ms: float, request_id: str, version: str | None, route: str | None
) -> None:
    client = scope.get("client")
    access_logger.info(
        "%s %s %s",
        scope["method"],
        scope["path"],
        status,
        extra={
            "method": scope["method"],
            "path": scope["path"],
            "api_version": version,
            "route": route,
            "status": status,
            "duration_ms": round(duration_ms, 3),
            "request_id": request_id,
            "client": f"{client[0]}:{client[1]}" if client else None,
            "identity": identity.spiffe_id if (identity := identity_of(scope)) is not None else None,
        },
    )
