"""What the gateway's routers answer beyond their routes, the same way for the root and every
mounted app: slash redirects that never name a host, every method a resource supports, HEAD.

Starlette's router (and FastAPI's copy of it) hands a request whose path matches but whose
method does not to the first such route, so a 405 names that route's methods alone, though
FastAPI makes one route per method. Its slash redirect builds an absolute URL from the
request's ``Host`` header, which a shared cache then serves to every client.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.responses import RedirectResponse
from starlette.routing import Match

if TYPE_CHECKING:
    from collections.abc import Sequence

    from starlette.routing import BaseRoute, Router
    from starlette.types import ASGIApp, Receive, Scope, Send

# The methods a route may declare that a 405 or OPTIONS lists (RFC 9110 section 9; PATCH: RFC 5789).
_LISTED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
# What the router writes into the scope when it picks a route, read by the access log and metrics.
_ROUTING_KEYS = ("route", "endpoint", "path_params")


def route_path_of(path: str, root_path: str) -> str:
    """The path the root's routes match, as Starlette's ``get_route_path`` computes it."""
    if root_path and path.startswith(root_path) and path[len(root_path) : len(root_path) + 1] in ("", "/"):
        return path[len(root_path) :]
    return path


def server_root_path(scope: Scope) -> str:
    """The server's root path (e.g. '/api'), also inside a mounted app, whose ``root_path``
    adds the mount prefix ('/api/v1')."""
    return str(scope.get("app_root_path", scope.get("root_path", ""))).rstrip("/")


def _routes_method(routes: Sequence[BaseRoute], scope: Scope, method: str) -> bool:
    probe = {**scope, "method": method}
    return any(route.matches(probe)[0] is Match.FULL for route in routes)


def allowed_methods(routes: Sequence[BaseRoute], scope: Scope) -> list[str]:
    """Every method a route of ``routes`` answers at the scope's path, then OPTIONS, which the
    gateway answers for any resource; HEAD wherever GET is (``AnswerHeadWithGet``). None when
    no route has that path. Methods outside RFC 9110's (and PATCH) are not probed."""
    allowed = [method for method in _LISTED_METHODS if _routes_method(routes, scope, method)]
    if "GET" in allowed and "HEAD" not in allowed:
        allowed.insert(allowed.index("GET") + 1, "HEAD")
    return [*allowed, "OPTIONS"] if allowed else []


def methods_of_refused_resource(routes: Sequence[BaseRoute], scope: Scope) -> list[str] | None:
    """``allowed_methods`` when the router refused the request's method (a route has its path,
    none its method); None when a 405 came from elsewhere, e.g. an endpoint with its own Allow."""
    if _routes_method(routes, scope, scope["method"]):
        return None
    return allowed_methods(routes, scope) or None


def _relative_reference(scope: Scope) -> str:
    """The request's path and query as a reference that names no host (RFC 3986 4.2)."""
    path: str = scope["path"].replace("?", "%3F").replace("#", "%23").replace("\\", "%5C")
    if path.startswith("//"):
        path = "/%2F" + path[2:]  # '//x' would name host x.
    query = scope.get("query_string", b"").decode("latin-1")
    return f"{path}?{query}" if query else path


class _SlashRedirect:
    """The router's default (its 404) preceded by Starlette's slash redirect, with a
    ``Location`` relative to the request's own URL instead of one built from ``Host``."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.not_found = router.default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route_path = route_path_of(scope["path"], scope.get("root_path", ""))
        if scope["type"] == "http" and route_path not in ("", "/"):
            path = scope["path"]
            twin = {**scope, "path": path.rstrip("/") if path.endswith("/") else path + "/"}
            if any(route.matches(twin)[0] is not Match.NONE for route in self.router.routes):
                await RedirectResponse(_relative_reference(twin))(scope, receive, send)
                return
        await self.not_found(scope, receive, send)


def redirect_slashes_relatively(router: Router) -> None:
    """Replace ``router``'s slash redirect with one whose ``Location`` names no host.

    ``redirect_slashes`` and ``default`` are the router's constructor options; FastAPI
    builds its app's router itself, so they are set after the fact.
    """
    router.redirect_slashes = False
    router.default = _SlashRedirect(router)


class AnswerHeadWithGet:
    """Answer HEAD with the resource's GET route where the app routes no HEAD of its own.

    RFC 9110 section 9.1: a general-purpose server must support HEAD. Starlette's own routes
    add HEAD to GET; FastAPI's answer 405. The GET route runs on a copy of the scope whose
    method is GET; the server, which keeps the original, sends no body.
    """

    def __init__(self, app: ASGIApp, router: Router) -> None:
        self.app = app
        self.router = router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "HEAD"
            or _routes_method(self.router.routes, scope, "HEAD")
            or not _routes_method(self.router.routes, scope, "GET")
        ):
            await self.app(scope, receive, send)
            return
        as_get = {**scope, "method": "GET"}
        try:
            await self.app(as_get, receive, send)
        finally:
            # The edge's access log and metrics read the matched route from the scope it passed.
            scope.update({key: as_get[key] for key in _ROUTING_KEYS if key in as_get})
