"""How clients find the versions: a JSON index at ``/``, the RFC 9727 API catalog at
``/.well-known/api-catalog`` and ``/docs``, every version's Swagger UI behind one switcher."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from gateway.docs import docs_assets_url, with_content_security_policy
from gateway.docs_portal import docs_notes_source, render_docs_portal
from gateway.routing import server_root_path
from gateway.versions import Lifecycle

if TYPE_CHECKING:
    from collections.abc import Callable

    from starlette.requests import Request

    from gateway.versions import VersionEntry

# RFC 9727 section 4.2: the catalog is a linkset (RFC 9264) with this profile.
API_CATALOG_PROFILE = "https://www.rfc-editor.org/info/rfc9727"
API_CATALOG_CONTENT_TYPE = f'application/linkset+json; profile="{API_CATALOG_PROFILE}"'


@dataclass(frozen=True)
class VersionLinks:
    """A version as the index, the landing page and the version's own root describe it; a
    version past its sunset answers 410 everywhere, so its links are None."""

    name: str
    prefix: str
    status: str
    deprecated_at: str | None
    sunset: str | None
    successor: str | None
    url: str | None
    docs: str | None
    redoc: str | None
    openapi: str | None
    migration_guide: str | None = None


def _under(base: str | None, path: str) -> str | None:
    return None if base is None else base + path


def version_links(entries: list[VersionEntry], root_path: str, now: datetime) -> list[VersionLinks]:
    links = []
    for entry in entries:
        status = entry.lifecycle_at(now)
        base = None if status is Lifecycle.SUNSET else f"{root_path}{entry.prefix}"
        links.append(
            VersionLinks(
                name=entry.name,
                prefix=entry.prefix,
                status=status.value,
                deprecated_at=entry.deprecated_at.isoformat() if entry.deprecated_at else None,
                sunset=entry.sunset_at.isoformat() if entry.sunset_at else None,
                successor=entry.successor,
                url=_under(base, "/"),
                docs=_under(base, "/docs"),
                redoc=_under(base, "/redoc"),
                openapi=_under(base, "/openapi.json"),
                migration_guide=entry.migration_guide,
            )
        )
    return links


def discovery_routes(
    entries: list[VersionEntry],
    *,
    public_url: str | None = None,
    internal: bool = False,
    documents: Callable[[], dict[str, dict[str, Any]]] = dict,
) -> list[Route]:
    """The index, the API catalog and the landing page. Their links are paths, or absolute
    on ``public_url`` in the catalog: never built from the request's ``Host``, which a
    client chooses and a shared cache would then serve to everyone."""
    origin = public_url or ""
    migration_notes = docs_notes_source(documents)

    def links(request: Request) -> list[VersionLinks]:
        return version_links(entries, server_root_path(request.scope), datetime.now(UTC))

    async def index(request: Request) -> Response:
        root = server_root_path(request.scope)
        return JSONResponse(
            {
                "versions": [asdict(version) for version in links(request)],
                "api_catalog": f"{root}/.well-known/api-catalog",
                "docs": f"{root}/docs",
                "health": f"{root}/health",
                # For other services, over mutual TLS (GATEWAY_INTERNAL_ALLOW).
                **({"internal": f"{root}/internal/docs"} if internal else {}),
            },
            headers={"Link": f'<{root}/.well-known/api-catalog>; rel="api-catalog"'},
        )

    async def api_catalog(request: Request) -> Response:
        # RFC 9264 4.2: a relative reference resolves against the catalog's own URL.
        health = f"{origin}{server_root_path(request.scope)}/health"
        linkset = [
            {
                "anchor": f"{origin}{version.url}",
                "service-desc": [
                    {"href": f"{origin}{version.openapi}", "type": "application/vnd.oai.openapi+json"}
                ],
                "service-doc": [{"href": f"{origin}{version.docs}", "type": "text/html"}],
                "status": [{"href": health, "type": "application/health+json"}],
            }
            for version in links(request)
            if version.url is not None
        ]
        return JSONResponse(
            {"linkset": linkset},
            media_type=API_CATALOG_CONTENT_TYPE,
            headers={"Link": f'<{request.url.path}>; rel="api-catalog"'},
        )

    async def docs_portal(request: Request) -> Response:
        page = render_docs_portal(links(request), docs_assets_url(request.scope), migration_notes)
        return with_content_security_policy(HTMLResponse(page))

    return [
        Route("/", index, methods=["GET"], name="index"),
        # RFC 9727 section 3: the catalog answers HEAD as well (Starlette adds HEAD to GET routes).
        Route("/.well-known/api-catalog", api_catalog, methods=["GET"], name="api_catalog"),
        Route("/docs", docs_portal, methods=["GET"], name="docs"),
    ]
