"""How many PostgreSQL connections the gateway may open, against what the server allows.

Every worker process has one pool, which all its catalog apps share (``gateway/shared.py``):
up to ``pool_size + max_overflow`` connections. So

    replicas x workers x (pool_size + max_overflow) + 1

must stay within the server's ``max_connections`` minus the slots it keeps for superusers
(``superuser_reserved_connections``, and ``reserved_connections`` from PostgreSQL 16). The
``+ 1`` is the migration step (``gateway db upgrade``); ``replicas`` should count the extra
pod a rolling update starts (``maxSurge``), and other clients of the server need room too.
Past the limit, a new connection fails with "too many clients" and requests get 503.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy import text

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

# `gateway db upgrade`, which runs beside the serving pods during a rollout.
MIGRATION_CONNECTIONS = 1
_RESERVED_SETTINGS = ("superuser_reserved_connections", "reserved_connections")


@dataclass(frozen=True)
class ConnectionBudget:
    """The most connections the gateway's pools may hold at once, and what the server allows."""

    replicas: int
    workers: int
    pool_size: int
    max_overflow: int
    server_limit: int | None = None  # None: not known (the server was not asked, or is not PostgreSQL).

    @property
    def per_worker(self) -> int:
        return self.pool_size + self.max_overflow

    @property
    def needed(self) -> int:
        return self.replicas * self.workers * self.per_worker + MIGRATION_CONNECTIONS

    @property
    def exceeded(self) -> bool:
        return self.server_limit is not None and self.needed > self.server_limit

    def describe(self) -> str:
        formula = (
            f"{self.replicas} replica(s) x {self.workers} worker(s) x ({self.pool_size} pool + "
            f"{self.max_overflow} overflow) + {MIGRATION_CONNECTIONS} for migrations = {self.needed} connections"
        )
        if self.server_limit is None:
            return formula
        verdict = "OVER" if self.exceeded else "within"
        return f"{formula}, {verdict} the server's {self.server_limit} available to clients"

    def with_server_limit(self, server_limit: int) -> ConnectionBudget:
        return replace(self, server_limit=server_limit)


async def server_connection_limit(connection: AsyncConnection) -> int:
    """``max_connections`` minus the slots reserved for superusers (PostgreSQL only)."""
    maximum = int((await connection.execute(text("SHOW max_connections"))).scalar_one())
    reserved_names = ", ".join(f"'{name}'" for name in _RESERVED_SETTINGS)
    reserved = (
        await connection.execute(
            text(f"SELECT coalesce(sum(setting::int), 0) FROM pg_settings WHERE name IN ({reserved_names})")  # noqa: S608 - constants
        )
    ).scalar_one()
    return maximum - int(reserved)
