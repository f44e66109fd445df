"""The connection budget: what the pools of every worker of every replica may hold, against PostgreSQL's limit."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.catalog.connections import MIGRATION_CONNECTIONS, ConnectionBudget, server_connection_limit
from services.catalog.engine import create_catalog_engine

pytestmark = pytest.mark.anyio


def test_the_budget_counts_every_pool_and_the_migration_step() -> None:
    budget = ConnectionBudget(replicas=4, workers=2, pool_size=5, max_overflow=5)
    assert budget.needed == 4 * 2 * (5 + 5) + MIGRATION_CONNECTIONS == 81
    assert not budget.exceeded  # Unknown limit: nothing to exceed.
    assert budget.with_server_limit(81).exceeded is False
    assert budget.with_server_limit(80).exceeded is True
    assert (
        budget.with_server_limit(80)
        .describe()
        .endswith("= 81 connections, OVER the server's 80 available to clients")
    )


async def test_the_servers_limit_leaves_out_the_superuser_slots(postgresql_schema_url: str) -> None:
    engine = create_catalog_engine(postgresql_schema_url, busy_timeout=5)
    try:
        async with engine.connect() as connection:
            limit = await server_connection_limit(connection)
            maximum = int((await connection.execute(text("SHOW max_connections"))).scalar_one())
            reserved = int(
                (await connection.execute(text("SHOW superuser_reserved_connections"))).scalar_one()
            )
    finally:
        await engine.dispose()
    assert 0 < limit <= maximum - reserved
