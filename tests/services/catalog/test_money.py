from __future__ import annotations

import json
from decimal import Decimal

import pytest

from services.catalog.money import AmountError, Money, amount_number, amount_text, cents_from_amount

TWO_DECIMAL_AMOUNTS = [
    "0",
    "0.01",
    "0.1",
    "0.10",
    "1",
    "19.99",
    "1234567.89",
    "999999999.99",
    "999999999999.99",
]


@pytest.mark.parametrize("text", TWO_DECIMAL_AMOUNTS)
def test_amounts_round_trip_through_cents(text: str) -> None:
    cents = cents_from_amount(Decimal(text))

    assert Decimal(amount_text(cents)) == Decimal(text)
    # What v1 sends: the shortest float repr must name the very same amount.
    assert Decimal(json.dumps(amount_number(cents))) == Decimal(text)


def test_every_amount_below_a_thousand_round_trips_as_a_float() -> None:
    for cents in range(100_000):
        assert Decimal(repr(amount_number(cents))) == Decimal(cents).scaleb(-2)


@pytest.mark.parametrize(
    ("cents", "text"), [(0, "0.00"), (5, "0.05"), (1250, "12.50"), (10**14 - 1, "999999999999.99")]
)
def test_amount_text_has_exactly_two_decimals(cents: int, text: str) -> None:
    assert amount_text(cents) == text
    assert Money(cents, "USD").amount_text == text


@pytest.mark.parametrize("text", ["-0.01", "0.001", "12.345", "1000000000000", "NaN", "Infinity"])
def test_amounts_that_are_not_whole_cents_are_refused(text: str) -> None:
    with pytest.raises(AmountError):
        cents_from_amount(Decimal(text))


def test_money_defaults_to_euros() -> None:
    assert Money.of(Decimal("1.5")) == Money(150, "EUR")
