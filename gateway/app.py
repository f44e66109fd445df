"""The root app, assembled in one place: the whole architecture reads from ``create_app``."""

from __future__ import annotations

from contextlib import AsyncExitStack, asynccontextmanager
from importlib.metadata import version as package_version
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Mount

from gateway.discovery import discovery_routes
from gateway.docs import docs_assets_mount
from gateway.edge import GatewayEdge
from gateway.errors import install_error_handlers
from gateway.health import HealthState, health_routes
from gateway.lifecycle import version_policies
from gateway.metrics import GatewayMetrics, metrics_route
from gateway.registry import mount_versions
from gateway.settings import Settings, load_settings
from gateway.tls.expiry import certificate_expiry, expiry_check

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable
    from contextlib import AbstractAsyncContextManager

    from gateway.registry import MountedVersion

PACKAGE_NAME = "versioned-api-gateway"


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings if settings is not None else load_settings()
    versions = mount_versions(settings)
    metrics = GatewayMetrics() if settings.metrics_enabled else None
    tls_checks = []
    if settings.tls_mode != "off":
        tls_checks.append(expiry_check(settings.tls_certfile, warning_days=settings.tls_expiry_warning_days))
        if metrics is not None:
            metrics.certificate_expiry.set(certificate_expiry(settings.tls_certfile).timestamp())
    health = HealthState(
        checks=[*tls_checks, *(check for version in versions for check in version.readiness_checks)],
        default_timeout=settings.readiness_timeout,
        release=package_version(PACKAGE_NAME),
        versions=settings.versions,
        on_readiness=metrics.set_ready if metrics is not None else None,
    )

    app = Starlette(
        routes=[
            # Versions first: they carry nearly all traffic, and the router tries routes
            # in order. Their prefixes never shadow the root's own (see RESERVED_PREFIXES).
            *(Mount(version.entry.prefix, app=version, name=version.entry.name) for version in versions),
            *health_routes(health),
            *([metrics_route(metrics)] if metrics is not None and settings.metrics_port is None else []),
            *discovery_routes(settings.versions),
            docs_assets_mount(),
        ],
        middleware=[
            Middleware(
                GatewayEdge,
                policies=version_policies(settings.versions, settings.enforce_sunset),
                max_body_size=settings.max_body_size,
                access_log=settings.access_log,
                metrics=metrics,
            )
        ],
        lifespan=_run_version_lifespans(versions, health),
    )
    install_error_handlers(app, known_versions=[entry.prefix for entry in settings.versions])
    app.state.settings = settings
    app.state.health = health
    return app


def _run_version_lifespans(
    versions: list[MountedVersion], health: HealthState
) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Starlette runs only the root's lifespan: start every version in registry
        # order, stop them in reverse, and stop the start at the first that fails.
        async with AsyncExitStack() as stack:
            for version in versions:
                await stack.enter_async_context(version.lifespan())
            yield
            health.begin_draining()

    return lifespan
