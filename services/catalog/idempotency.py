"""Idempotent requests (IETF httpapi ``Idempotency-Key`` draft), kept in the database.

Claiming a key is one atomic upsert on its primary key: a new row is inserted, or an
expired or abandoned one is taken over; a live row is left as it is and the claim fails.
The request's work and the recording of its response then commit in one transaction, and
only under the token that claimed the key, so every retry, in any process, sees nothing,
"in progress", or the one recorded response; never a second creation.
https://datatracker.ietf.org/doc/draft-ietf-httpapi-idempotency-key-header/
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects import postgresql, sqlite

from services.catalog.tables import IDEMPOTENCY_KEY_MAX_LENGTH, idempotency_keys

if TYPE_CHECKING:
    from datetime import datetime, timedelta

    from sqlalchemy import ColumnElement, Executable

    from services.catalog.database import Session

# What a claim writes, and a takeover overwrites, besides the key itself.
_CLAIM_COLUMNS = ("request_hash", "claim_token", "created_at", "expires_at", "locked_until")
_PRINTABLE_ASCII = frozenset(chr(code) for code in range(0x20, 0x7F))
# An RFC 8941 string: printable ASCII, with quotes and backslashes escaped by a backslash.
_QUOTED_KEY = re.compile(r'"((?:[\x20\x21\x23-\x5b\x5d-\x7e]|\\["\\])*)"')
_ESCAPE = re.compile(r'\\(["\\])')
# The header's documented form, exactly what parse_idempotency_key accepts (bar the spaces
# around a bare key, which HTTP strips): a bare key that does not start with a quote, or a
# quoted string of 1 to 255 characters once unescaped.
IDEMPOTENCY_KEY_PATTERN = (
    rf"^([\x21\x23-\x7E]([\x20-\x7E]{{0,{IDEMPOTENCY_KEY_MAX_LENGTH - 2}}}[\x21-\x7E])?"
    rf'|"([\x20\x21\x23-\x5B\x5D-\x7E]|\\["\\]){{1,{IDEMPOTENCY_KEY_MAX_LENGTH}}}")$'
)
# Every character escaped, and the quotes.
IDEMPOTENCY_KEY_MAX_HEADER_LENGTH = 2 * IDEMPOTENCY_KEY_MAX_LENGTH + 2


class InvalidIdempotencyKeyError(ValueError):
    """An Idempotency-Key header that is not 1 to 255 printable ASCII characters."""


class IdempotencyClaimLostError(Exception):
    """The claim outlived its lease and another request took the key over."""


@dataclass(frozen=True, slots=True)
class IdempotentRequest:
    operation: str
    key: str
    request_hash: str


@dataclass(frozen=True, slots=True)
class RecordedResponse:
    status: int
    headers: dict[str, str]
    body: str


@dataclass(frozen=True, slots=True)
class KeyClaim:
    """This request holds the key; only ``token`` may record its response."""

    request: IdempotentRequest
    token: str


@dataclass(frozen=True, slots=True)
class PriorRequest:
    """The request that holds the key: finished (with its response) or still in progress."""

    request_hash: str
    response: RecordedResponse | None


def parse_idempotency_key(header_value: str) -> str:
    """The key in an ``Idempotency-Key`` header.

    The draft makes the header a structured-field string (``"8e03..."``, RFC 8941); a bare
    value, as many clients send, is taken as it is.
    """
    key = _unquote(header_value) if header_value.startswith('"') else header_value
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX_LENGTH or not _PRINTABLE_ASCII.issuperset(key):
        raise InvalidIdempotencyKeyError(
            f"an Idempotency-Key is 1 to {IDEMPOTENCY_KEY_MAX_LENGTH} printable ASCII characters"
        )
    return key


def _unquote(quoted: str) -> str:
    match = _QUOTED_KEY.fullmatch(quoted)
    if match is None:
        raise InvalidIdempotencyKeyError("the Idempotency-Key is not a well-formed quoted string")
    return _ESCAPE.sub(r"\1", match.group(1))


def request_hash_of(payload: object) -> str:
    """SHA-256 of ``payload`` (parsed JSON) in canonical form: key order and spacing do not count."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


async def claim_key(
    session: Session,
    dialect_name: str,
    request: IdempotentRequest,
    *,
    now: datetime,
    ttl: timedelta,
    lease: timedelta,
) -> KeyClaim | PriorRequest:
    """Claim ``request.key``, or return the request that holds it. Run in a write transaction."""
    token = secrets.token_hex(16)
    values = {
        "operation": request.operation,
        "idempotency_key": request.key,
        "request_hash": request.request_hash,
        "claim_token": token,
        "created_at": now,
        "expires_at": now + ttl,
        "locked_until": now + lease,
        "now": now,
    }
    if await session.fetch(_claim(dialect_name), values):
        return KeyClaim(request, token)
    # The upsert left a live row, and (PostgreSQL) locked it; on SQLite the write
    # transaction holds the database. Either way it cannot change before this read.
    parameters = {"key_operation": request.operation, "key_value": request.key}
    [(request_hash, status, headers, body)] = await session.fetch(_PRIOR_REQUEST, parameters)
    response = None if status is None else RecordedResponse(status, json.loads(headers), body)
    return PriorRequest(request_hash, response)


async def record_response(session: Session, claim: KeyClaim, response: RecordedResponse) -> None:
    """Record what every retry gets; in the transaction that did the request's work."""
    parameters = {
        **_claim_parameters(claim),
        "response_status": response.status,
        "response_headers": json.dumps(response.headers),
        "response_body": response.body,
    }
    if await session.execute(_RECORD_RESPONSE, parameters) != 1:
        raise IdempotencyClaimLostError(f"the Idempotency-Key {claim.request.key!r} was taken over")


async def release_claim(session: Session, claim: KeyClaim) -> None:
    """Give the key up after a failure, so that a retry may run at once."""
    await session.execute(_RELEASE_CLAIM, _claim_parameters(claim))


async def purge_expired_keys(session: Session, now: datetime) -> int:
    return await session.execute(_PURGE_EXPIRED, {"now": now})


@functools.cache
def _claim(dialect_name: str) -> Executable:
    """INSERT the claim, or on a key conflict take over an expired or abandoned row; RETURNING a
    row only if either happened. The two dialects' constructs are alike but distinct types."""
    table = idempotency_keys
    keys = [table.c.operation, table.c.idempotency_key]
    cleared = {"response_status": None, "response_headers": None, "response_body": None}
    now = bindparam("now", type_=table.c.expires_at.type)
    # A live row is left alone; an expired one, or an unfinished one past its lease, is taken over.
    where = (table.c.expires_at <= now) | (table.c.response_status.is_(None) & (table.c.locked_until <= now))
    if dialect_name == "postgresql":
        on_postgresql = postgresql.insert(table)
        taken_over = {column: on_postgresql.excluded[column] for column in _CLAIM_COLUMNS} | cleared
        return on_postgresql.on_conflict_do_update(
            index_elements=keys, set_=taken_over, where=where
        ).returning(table.c.claim_token)
    if dialect_name == "sqlite":
        on_sqlite = sqlite.insert(table)
        taken_over = {column: on_sqlite.excluded[column] for column in _CLAIM_COLUMNS} | cleared
        return on_sqlite.on_conflict_do_update(index_elements=keys, set_=taken_over, where=where).returning(
            table.c.claim_token
        )
    raise NotImplementedError(
        f"idempotency keys need INSERT ... ON CONFLICT, which {dialect_name} lacks here"
    )


def _key_matches() -> tuple[ColumnElement[bool], ...]:
    table = idempotency_keys
    return (
        table.c.operation == bindparam("key_operation"),
        table.c.idempotency_key == bindparam("key_value"),
    )


def _claim_matches() -> tuple[ColumnElement[bool], ...]:
    table = idempotency_keys
    return (*_key_matches(), table.c.claim_token == bindparam("key_token"), table.c.response_status.is_(None))


def _claim_parameters(claim: KeyClaim) -> dict[str, str]:
    return {
        "key_operation": claim.request.operation,
        "key_value": claim.request.key,
        "key_token": claim.token,
    }


_PRIOR_REQUEST = select(
    idempotency_keys.c.request_hash,
    idempotency_keys.c.response_status,
    idempotency_keys.c.response_headers,
    idempotency_keys.c.response_body,
).where(*_key_matches())
# The response columns are the parameters' names (see ``database.py``).
_RECORD_RESPONSE = update(idempotency_keys).where(*_claim_matches())
_RELEASE_CLAIM = delete(idempotency_keys).where(*_claim_matches())
_PURGE_EXPIRED = delete(idempotency_keys).where(
    idempotency_keys.c.expires_at <= bindparam("now", type_=idempotency_keys.c.expires_at.type)
)
