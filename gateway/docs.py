"""Interactive docs that work offline: Swagger UI and ReDoc served by the gateway itself.

FastAPI's own docs pages load their assets from a CDN, which internal networks often
cannot reach. The gateway serves the assets bundled by ``fastapi-offline`` under
``/static/docs`` and gives every mounted version its own ``/docs`` and ``/redoc``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from typing import TYPE_CHECKING

import fastapi_offline
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles

from gateway.routing import server_root_path

if TYPE_CHECKING:
    from fastapi import FastAPI
    from starlette.requests import Request
    from starlette.responses import HTMLResponse
    from starlette.types import Scope

DOCS_ASSETS_PREFIX = "/static/docs"
_DOCS_ASSETS_DIRECTORY = Path(fastapi_offline.__file__).parent / "static"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)
# Swagger UI's default validator badge asks validator.swagger.io about the schema.
SWAGGER_UI_PARAMETERS = {"validatorUrl": None}


def with_content_security_policy(page: HTMLResponse) -> HTMLResponse:
    """Let the page load nothing but what the gateway serves.

    The bundled ReDoc always renders a footer logo from cdn.redoc.ly; a policy is the one
    way to keep a browser from asking for it (a hidden image is still fetched). The
    pages' own inline start-up scripts are allowed by their hash.
    """
    body = bytes(page.body).decode()
    inline_hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    page.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        f"script-src 'self' {inline_hashes}; worker-src 'self' blob:; connect-src 'self'; "
        "base-uri 'none'; frame-ancestors 'self'"
    )
    return page


def docs_assets_mount() -> Mount:
    return Mount(DOCS_ASSETS_PREFIX, StaticFiles(directory=_DOCS_ASSETS_DIRECTORY), name="docs_assets")


def docs_assets_url(scope: Scope) -> str:
    return server_root_path(scope) + DOCS_ASSETS_PREFIX


def install_offline_docs(app: FastAPI) -> None:
    """Replace a version app's CDN-backed docs routes with offline ones at /docs and /redoc."""
    assert app.openapi_url, "a mounted version must publish its OpenAPI schema"
    cdn_paths = {app.docs_url, app.redoc_url, app.swagger_ui_oauth2_redirect_url} - {None}
    app.router.routes[:] = [
        route for route in app.router.routes if getattr(route, "path", None) not in cdn_paths
    ]
    openapi_path = app.openapi_url
    title = app.title

    async def swagger_ui(request: Request) -> HTMLResponse:
        assets = docs_assets_url(request.scope)
        page = get_swagger_ui_html(
            openapi_url=request.scope.get("root_path", "").rstrip("/") + openapi_path,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{assets}/swagger-ui-bundle.js",
            swagger_css_url=f"{assets}/swagger-ui.css",
            swagger_favicon_url=f"{assets}/favicon.png",
            swagger_ui_parameters=SWAGGER_UI_PARAMETERS,
        )
        return with_content_security_policy(page)

    async def redoc(request: Request) -> HTMLResponse:
        assets = docs_assets_url(request.scope)
        page = get_redoc_html(
            openapi_url=request.scope.get("root_path", "").rstrip("/") + openapi_path,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{assets}/redoc.standalone.js",
            redoc_favicon_url=f"{assets}/favicon.png",
            with_google_fonts=False,
        )
        return with_content_security_policy(page)

    app.add_route("/docs", swagger_ui, include_in_schema=False)
    app.add_route("/redoc", redoc, include_in_schema=False)
