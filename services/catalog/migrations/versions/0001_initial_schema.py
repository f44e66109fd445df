"""The catalog as it was before migrations: items, their tags, idempotency keys.

Revision ID: 0001
Revises:
Create Date: 2025-06-02

Exactly the tables ``services/catalog/tables.py`` described when the store still created
them itself (names from its naming convention), so a database made then is adopted at this
revision by ``gateway db upgrade`` rather than created twice. Types and names are spelt out
here (``op.f``: a final name, which the metadata's naming convention leaves alone), not taken
from the code: a migration describes the schema of its day, whatever the code says later.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# SQLite only aliases the rowid (and honours AUTOINCREMENT) for INTEGER PRIMARY KEY.
_ITEM_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
# What tables.UtcDateTime stores.
_UTC_DATETIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "items",
        sa.Column("id", _ITEM_ID, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("price_cents", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
        sa.Column("updated_at", _UTC_DATETIME, nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_items")),
        sa.CheckConstraint("price_cents >= 0", name=op.f("ck_items_price_not_negative")),
        sa.CheckConstraint("revision >= 1", name=op.f("ck_items_revision_positive")),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "item_tags",
        sa.Column("item_id", _ITEM_ID, nullable=False),
        sa.Column("tag", sa.String(50), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("item_id", "tag", name=op.f("pk_item_tags")),
        sa.ForeignKeyConstraint(
            ["item_id"], ["items.id"], name=op.f("fk_item_tags_item_id_items"), ondelete="CASCADE"
        ),
    )
    op.create_index(op.f("ix_item_tags_tag_item_id"), "item_tags", ["tag", "item_id"])
    op.create_table(
        "idempotency_keys",
        sa.Column("operation", sa.String(100), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("claim_token", sa.String(32), nullable=False),
        sa.Column("created_at", _UTC_DATETIME, nullable=False),
        sa.Column("expires_at", _UTC_DATETIME, nullable=False),
        sa.Column("locked_until", _UTC_DATETIME, nullable=False),
        sa.Column("response_status", sa.Integer(), nullable=True),
        sa.Column("response_headers", sa.Text(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("operation", "idempotency_key", name=op.f("pk_idempotency_keys")),
    )
    op.create_index(op.f("ix_idempotency_keys_expires_at"), "idempotency_keys", ["expires_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_idempotency_keys_expires_at"), table_name="idempotency_keys")
    op.drop_table("idempotency_keys")
    op.drop_index(op.f("ix_item_tags_tag_item_id"), table_name="item_tags")
    op.drop_table("item_tags")
    op.drop_table("items")
