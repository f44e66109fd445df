"""Prices as exact integer minor units; decimals only at the edges, floats only for v1's output."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

DEFAULT_CURRENCY = "EUR"
# Below 10^12 units every amount has at most 14 significant digits, so cents / 100 as a
# float prints back (shortest repr) as exactly the decimal it stands for: v1's numbers
# round-trip. It also keeps cents far inside BIGINT.
MAX_AMOUNT_DIGITS = 14
AMOUNT_DECIMAL_PLACES = 2
_CENTS_PER_UNIT = 100


class AmountError(ValueError):
    """An amount that is not a whole number of cents in the supported range."""


def cents_from_amount(amount: Decimal) -> int:
    """The exact number of cents in ``amount``; refuses fractions of a cent, negatives, NaN."""
    if not amount.is_finite() or amount < 0:
        raise AmountError(f"{amount} is not a non-negative amount")
    cents = amount * _CENTS_PER_UNIT
    if cents != cents.to_integral_value():
        raise AmountError(f"{amount} has more than {AMOUNT_DECIMAL_PLACES} decimal places")
    if cents >= 10**MAX_AMOUNT_DIGITS:
        raise AmountError(f"{amount} is too large")
    return int(cents)


def amount_text(cents: int) -> str:
    """``1250`` -> ``"12.50"``: always exactly two decimals, computed without floats."""
    return f"{Decimal(cents).scaleb(-AMOUNT_DECIMAL_PLACES):.{AMOUNT_DECIMAL_PLACES}f}"


def amount_number(cents: int) -> float:
    """``1250`` -> ``12.5``, the float nearest to the amount (IEEE division rounds correctly)."""
    return cents / _CENTS_PER_UNIT


@dataclass(frozen=True, slots=True)
class Money:
    cents: int
    currency: str = DEFAULT_CURRENCY

    @classmethod
    def of(cls, amount: Decimal, currency: str = DEFAULT_CURRENCY) -> Money:
        return cls(cents_from_amount(amount), currency)

    @property
    def amount_text(self) -> str:
        return amount_text(self.cents)

    @property
    def amount_number(self) -> float:
        return amount_number(self.cents)
