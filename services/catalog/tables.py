"""The catalog's tables, shared by every API version: items, their tags, idempotency keys.

What the code expects; the database gets it through migrations (``migrations/``): a change
here needs one, written by ``gateway db revision -m "..." --autogenerate``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)

if TYPE_CHECKING:
    from sqlalchemy.engine import Dialect

# SQLite's INTEGER PRIMARY KEY and PostgreSQL's BIGINT both stop here.
MAX_ITEM_ID = 2**63 - 1
# INTEGER on both backends.
MAX_REVISION = 2**31 - 1
NAME_MAX_LENGTH = 200
TAG_MAX_LENGTH = 50
CURRENCY_LENGTH = 3
IDEMPOTENCY_KEY_MAX_LENGTH = 255
OPERATION_MAX_LENGTH = 100


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    SQLite stores datetimes without an offset, so values are normalised to UTC on the way
    in and marked as UTC on the way out; PostgreSQL's ``timestamptz`` round-trips them.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "ck": "ck_%(table_name)s_%(constraint_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

items = Table(
    "items",
    metadata,
    # SQLite only aliases the rowid (and honours AUTOINCREMENT) for INTEGER PRIMARY KEY;
    # AUTOINCREMENT keeps ids monotonic even after the newest item is deleted, which
    # keyset pagination relies on.
    Column("id", BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=True),
    Column("name", String(NAME_MAX_LENGTH), nullable=False),
    Column("description", Text(), nullable=True),
    Column("price_cents", BigInteger(), nullable=False),
    Column("currency", String(CURRENCY_LENGTH), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("updated_at", UtcDateTime(), nullable=False),
    Column("revision", Integer(), nullable=False),
    CheckConstraint("price_cents >= 0", name="price_not_negative"),
    CheckConstraint("revision >= 1", name="revision_positive"),
    sqlite_autoincrement=True,
)

item_tags = Table(
    "item_tags",
    metadata,
    Column("item_id", ForeignKey("items.id", ondelete="CASCADE"), primary_key=True),
    Column("tag", String(TAG_MAX_LENGTH), primary_key=True),
    # Tags come back in the order the client gave them.
    Column("position", Integer(), nullable=False),
    # ``?tag=`` looks items up by tag.
    Index("ix_item_tags_tag_item_id", "tag", "item_id"),
)

# One row per Idempotency-Key an operation has seen. Claiming a key is one INSERT on the
# primary key (see idempotency.py), so two requests can never both hold it.
idempotency_keys = Table(
    "idempotency_keys",
    metadata,
    # What the key was sent to, e.g. "v2.create_item": the same key may serve two operations.
    Column("operation", String(OPERATION_MAX_LENGTH), primary_key=True),
    Column("idempotency_key", String(IDEMPOTENCY_KEY_MAX_LENGTH), primary_key=True),
    # SHA-256 (hex) of the canonical request body: a retry must send the same one.
    Column("request_hash", String(64), nullable=False),
    # Who holds the key; the response is recorded only under the token that claimed it.
    Column("claim_token", String(32), nullable=False),
    Column("created_at", UtcDateTime(), nullable=False),
    Column("expires_at", UtcDateTime(), nullable=False),
    # Until then an unfinished claim belongs to its request; after, it was abandoned.
    Column("locked_until", UtcDateTime(), nullable=False),
    # NULL while the first request is in progress; then the response every retry gets.
    Column("response_status", Integer(), nullable=True),
    Column("response_headers", Text(), nullable=True),
    Column("response_body", Text(), nullable=True),
    # Expired keys are purged by this.
    Index("ix_idempotency_keys_expires_at", "expires_at"),
)
