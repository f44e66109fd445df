"""The catalog's settings section: its database and its idempotency window.

Read by the gateway from its own sources (``GATEWAY_*`` variables, ``.env``, the secrets
directory), once, beside the gateway's settings, and handed to every app built on the
catalog; a deployment without the catalog never reads them.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, Field
from sqlalchemy.engine import make_url

from gateway.api import AppSettings
from services.catalog.database import DEFAULT_MAX_OVERFLOW, DEFAULT_POOL_SIZE, DEFAULT_TIMEOUT
from services.catalog.idempotency_leases import DEFAULT_IDEMPOTENCY_KEY_TTL

DEFAULT_DATABASE_URL = "sqlite+aiosqlite:///var/catalog.sqlite3"
# The drivers the catalog runs on (sqlite_database.py, postgresql_database.py; SQLAlchemy's names
# for them), and the one a plain scheme gets.
_CATALOG_DRIVERS = {
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "sqlite": "sqlite+aiosqlite",
}
_CATALOG_URL_FORMS = (
    "postgresql+asyncpg://user:password@host:5432/database or sqlite+aiosqlite:///path/to/file.sqlite3 "
    "(postgresql://, postgres:// and sqlite:// get these drivers)"
)


def catalog_database_url(url: str) -> str:
    """The URL the catalog opens for ``url``: a plain ``postgresql://``, ``postgres://`` or
    ``sqlite://`` gets the async driver the catalog runs on, any other driver is refused."""
    try:
        parsed = make_url(url)
    except Exception as error:  # SQLAlchemy raises ArgumentError and ValueError alike here.
        raise ValueError(f"not a database URL ({error}); it takes {_CATALOG_URL_FORMS}") from None
    if parsed.drivername in _CATALOG_DRIVERS.values():
        return url
    driver = _CATALOG_DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(f"the catalog cannot use {parsed.drivername}://; it takes {_CATALOG_URL_FORMS}")
    return parsed.set(drivername=driver).render_as_string(hide_password=False)


class CatalogSettings(AppSettings):
    database_url: Annotated[str, AfterValidator(catalog_database_url)] = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL of the catalog store: PostgreSQL (asyncpg) or SQLite (aiosqlite).",
    )
    database_busy_timeout: float = Field(
        default=5.0, gt=0, le=60, description="Seconds a SQLite writer waits for the lock."
    )
    database_timeout: float = Field(
        default=DEFAULT_TIMEOUT,
        gt=0,
        le=300,
        description="Seconds a catalog database call may take (connecting, statements); then 503 with Retry-After.",
    )
    database_pool_size: int = Field(
        default=DEFAULT_POOL_SIZE,
        ge=1,
        description="PostgreSQL connections each worker keeps open (its pool).",
    )
    database_max_overflow: int = Field(
        default=DEFAULT_MAX_OVERFLOW,
        ge=0,
        description="Extra PostgreSQL connections a worker may open under load, beyond its pool.",
    )
    database_replicas: int = Field(
        default=1,
        ge=1,
        description=(
            "Gateway replicas sharing the database, a rollout's surge pod included; only for the "
            "connection budget (replicas x workers x (pool size + max overflow) + 1 <= max_connections)."
        ),
    )
    database_migrate_on_start: bool | None = Field(
        default=None,
        description=(
            "Run `gateway db upgrade` once in `gateway serve`'s arbiter, before workers fork. "
            "Default: on for SQLite, off otherwise (a deploy step, e.g. a Kubernetes init container, runs it)."
        ),
    )
    idempotency_key_ttl: float = Field(
        default=DEFAULT_IDEMPOTENCY_KEY_TTL,
        gt=0,
        description="Seconds an Idempotency-Key of POST /v2/items is remembered (a retry replays the response).",
    )

    @property
    def migrates_database_on_start(self) -> bool:
        """Whether ``gateway serve`` migrates before its workers fork (see ``database_migrate_on_start``)."""
        if self.database_migrate_on_start is not None:
            return self.database_migrate_on_start
        # The embedded default must just work on a fresh machine; a shared server is
        # migrated once per deploy, not by each of its replicas' arbiters.
        return make_url(self.database_url).get_backend_name() == "sqlite"

    def redacted(self) -> dict[str, object]:
        values = super().redacted()
        values["database_url"] = make_url(self.database_url).render_as_string(hide_password=True)
        return values
