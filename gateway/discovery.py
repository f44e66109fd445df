"""How clients find the versions: a JSON index at ``/``, the RFC 9727 API catalog at
``/.well-known/api-catalog`` and a ``/docs`` landing page for people."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.docs import render_landing_page

if TYPE_CHECKING:
    from starlette.requests import Request

    from gateway.versions import VersionEntry

# RFC 9727 section 4.2: the catalog is a linkset (RFC 9264) with this profile.
API_CATALOG_PROFILE = "https://www.rfc-editor.org/info/rfc9727"
API_CATALOG_CONTENT_TYPE = f'application/linkset+json; profile="{API_CATALOG_PROFILE}"'


@dataclass(frozen=True)
class VersionLinks:
    name: str
    prefix: str
    status: str
    deprecated_at: str | None
    sunset: str | None
    successor: str | None
    url: str
    docs: str
    redoc: str
    openapi: str


def version_links(entries: list[VersionEntry], root_path: str, now: datetime) -> list[VersionLinks]:
    return [
        VersionLinks(
            name=entry.name,
            prefix=entry.prefix,
            status=entry.lifecycle_at(now).value,
            deprecated_at=entry.deprecated_at.isoformat() if entry.deprecated_at else None,
            sunset=entry.sunset_at.isoformat() if entry.sunset_at else None,
            successor=entry.successor,
            url=f"{root_path}{entry.prefix}/",
            docs=f"{root_path}{entry.prefix}/docs",
            redoc=f"{root_path}{entry.prefix}/redoc",
            openapi=f"{root_path}{entry.prefix}/openapi.json",
        )
        for entry in entries
    ]


def _root_path(request: Request) -> str:
    return str(request.scope.get("root_path", "")).rstrip("/")


def discovery_routes(entries: list[VersionEntry]) -> list[Route]:
    def links(request: Request) -> list[VersionLinks]:
        return version_links(entries, _root_path(request), datetime.now(UTC))

    async def index(request: Request) -> Response:
        root = _root_path(request)
        return JSONResponse(
            {
                "versions": [asdict(version) for version in links(request)],
                "api_catalog": f"{root}/.well-known/api-catalog",
                "docs": f"{root}/docs",
                "health": f"{root}/health",
                # For other services, over mutual TLS (GATEWAY_INTERNAL_ALLOW).
                "internal": f"{root}/internal/docs",
            },
            headers={"Link": f'<{root}/.well-known/api-catalog>; rel="api-catalog"'},
        )

    async def api_catalog(request: Request) -> Response:
        origin = f"{request.url.scheme}://{request.url.netloc}"
        linkset = [
            {
                "anchor": f"{origin}{version.url}",
                "service-desc": [
                    {"href": f"{origin}{version.openapi}", "type": "application/vnd.oai.openapi+json"}
                ],
                "service-doc": [{"href": f"{origin}{version.docs}", "type": "text/html"}],
                "status": [
                    {"href": f"{origin}{_root_path(request)}/health", "type": "application/health+json"}
                ],
            }
            for version in links(request)
            if version.status != "sunset"
        ]
        return JSONResponse(
            {"linkset": linkset},
            media_type=API_CATALOG_CONTENT_TYPE,
            headers={"Link": f'<{request.url.path}>; rel="api-catalog"'},
        )

    async def landing_page(request: Request) -> Response:
        return HTMLResponse(render_landing_page(links(request)))

    return [
        Route("/", index, methods=["GET"], name="index"),
        # RFC 9727 section 3: the catalog answers HEAD as well (Starlette adds HEAD to GET routes).
        Route("/.well-known/api-catalog", api_catalog, methods=["GET"], name="api_catalog"),
        Route("/docs", landing_page, methods=["GET"], name="docs"),
    ]
