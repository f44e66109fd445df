"""v1's wire format: ``{id, name, price}`` with the price as a JSON number."""

from __future__ import annotations

from decimal import Decimal
from typing import TYPE_CHECKING, Annotated

from pydantic import BaseModel, Field, WithJsonSchema

from services.catalog.money import AMOUNT_DECIMAL_PLACES, MAX_AMOUNT_DIGITS
from services.catalog.tables import NAME_MAX_LENGTH
from services.catalog.text import SingleLineText

if TYPE_CHECKING:
    from services.catalog import Item

Name = Annotated[SingleLineText, Field(min_length=1, max_length=NAME_MAX_LENGTH, examples=["Teapot"])]
# A JSON number, validated as a Decimal from the digits the client sent (the routes parse
# JSON numbers as Decimals, see routes.py), so 12.345 and 1e-400 are refused, never rounded.
Price = Annotated[
    Decimal,
    Field(ge=0, max_digits=MAX_AMOUNT_DIGITS, decimal_places=AMOUNT_DECIMAL_PLACES),
    WithJsonSchema(
        {
            "type": "number",
            "minimum": 0,
            "exclusiveMaximum": 10 ** (MAX_AMOUNT_DIGITS - AMOUNT_DECIMAL_PLACES),
            "multipleOf": 10**-AMOUNT_DECIMAL_PLACES,
            "description": "Amount with at most two decimals, below 10^12.",
            "examples": [12.5],
        }
    ),
]


class ItemIn(BaseModel):
    """An item as a client writes it."""

    name: Name
    price: Price


class ItemOut(BaseModel):
    """An item. Items created through v2 show their price here without its currency."""

    id: int
    name: str
    price: float = Field(description="Amount in the item's currency; two decimals at most.", examples=[12.5])

    @classmethod
    def of(cls, item: Item) -> ItemOut:
        return cls(id=item.id, name=item.name, price=item.price.amount_number)
