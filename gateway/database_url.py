"""The catalog database URLs the gateway accepts: the drivers the catalog runs on, picked for a plain scheme."""

from __future__ import annotations

from sqlalchemy.engine import make_url

# The drivers the catalog runs on (services/catalog/engine.py), and the one a plain scheme gets.
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
    ``sqlite://`` gets the async driver the catalog runs on, any other driver is refused.

    The catalog's rule, to move with its settings out of the gateway core; not in
    ``services.catalog``, whose package import would cost every ``gateway`` command FastAPI's.
    """
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
