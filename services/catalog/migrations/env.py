"""Alembic's environment: the migrations run on the connection ``services.catalog.migrate`` hands over.

That connection is already inside a transaction holding the migration lock (an advisory
lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so Alembic begins and commits nothing
itself: every migration of one upgrade commits together with its version row, or none does.
"""

from __future__ import annotations

from alembic import context

from services.catalog.tables import metadata

if context.is_offline_mode():
    raise RuntimeError("the catalog's migrations run online only: `gateway db upgrade`")
connection = context.config.attributes.get("connection")
if connection is None:
    raise RuntimeError(
        "run the catalog's migrations with `gateway db upgrade` (services.catalog.migrate), "
        "which opens the connection and takes the migration lock"
    )
context.configure(
    connection=connection,
    target_metadata=metadata,
    # SQLite alters little in place: autogenerate writes "move and copy" batch operations.
    render_as_batch=connection.dialect.name == "sqlite",
    # SQLite's DDL is transactional too, once the engine emits BEGIN itself (engine.py).
    transactional_ddl=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
