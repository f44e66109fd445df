"""v2's wire format: prices as ``{amount: "12.50", currency: "EUR"}``, descriptions, tags.

Amounts are decimal strings both ways. A JSON number is refused (422) rather than
accepted: by the time a client has written 0.1 as a float, the amount may already be
off, and the point of v2's format is that it never is.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

from pydantic import MISSING, AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from services.catalog.money import AMOUNT_DECIMAL_PLACES, DEFAULT_CURRENCY, MAX_AMOUNT_DIGITS
from services.catalog.tables import NAME_MAX_LENGTH, TAG_MAX_LENGTH
from services.catalog.text import MultiLineText, SingleLineText

if TYPE_CHECKING:
    from services.catalog import Item

MAX_TAGS = 20
_AMOUNT_TEXT = re.compile(r"-?[0-9]+(\.[0-9]+)?")
_AMOUNT_SCHEMA = {
    "type": "string",
    "pattern": r"^[0-9]{1,12}(\.[0-9]{1,2})?$",
    "description": "Decimal amount as a string, at most two decimals, below 10^12.",
    "examples": ["12.50"],
}


def _require_amount_text(value: object) -> object:
    # Plain decimal notation only: no floats, exponents, spaces, NaN or Infinity.
    if not isinstance(value, str) or not _AMOUNT_TEXT.fullmatch(value):
        raise PydanticCustomError(
            "decimal_string", 'the amount must be a string of digits such as "12.50", not a number'
        )
    return value


def _deduplicate(tags: list[str]) -> list[str]:
    return list(dict.fromkeys(tags))


Name = Annotated[SingleLineText, Field(min_length=1, max_length=NAME_MAX_LENGTH, examples=["Teapot"])]
Description = Annotated[MultiLineText | None, Field(max_length=10_000, examples=["Cast iron, 1.2 litres."])]
Amount = Annotated[
    Decimal,
    BeforeValidator(_require_amount_text),
    Field(ge=0, max_digits=MAX_AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES),
    WithJsonSchema(_AMOUNT_SCHEMA),
]
Currency = Annotated[str, Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code.", examples=["EUR"])]
Tag = Annotated[SingleLineText, Field(min_length=1, max_length=TAG_MAX_LENGTH)]
Tags = Annotated[
    list[Tag],
    Field(
        max_length=MAX_TAGS, description="Duplicates are dropped; the order is kept.", examples=[["kitchen"]]
    ),
    AfterValidator(_deduplicate),
]


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount: Amount
    currency: Currency = DEFAULT_CURRENCY


class PricePatch(BaseModel):
    """A new price; without ``currency`` the item keeps its currency."""

    model_config = ConfigDict(extra="forbid")

    amount: Amount
    currency: Currency | MISSING = MISSING


class ItemCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = None
    price: PriceIn
    tags: Tags = Field(default_factory=list)


class ItemPatch(BaseModel):
    """Only the fields present change. ``name`` and ``price`` cannot be null; ``tags`` replaces."""

    model_config = ConfigDict(extra="forbid")

    name: Name | MISSING = MISSING
    description: Description | MISSING = MISSING
    price: PricePatch | MISSING = MISSING
    tags: Tags | MISSING = MISSING


class PriceOut(BaseModel):
    amount: str = Field(description="Always exactly two decimals.", examples=["12.50"])
    currency: str = Field(examples=["EUR"])


class ItemOut(BaseModel):
    id: int
    name: str
    description: str | None
    price: PriceOut
    tags: list[str]
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls(
            id=item.id,
            name=item.name,
            description=item.description,
            price=PriceOut(amount=item.price.amount_text, currency=item.price.currency),
            tags=list(item.tags),
            created_at=item.created_at,
            updated_at=item.updated_at,
        )


class ItemPage(BaseModel):
    data: list[ItemOut]
    next_cursor: str | None = Field(
        description="Pass as ``cursor`` for the next page; null on the last page.", examples=[None]
    )
