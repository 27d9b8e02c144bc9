"""Quantities as explanations, errors and `status` print them: `format_quantity`."""

from __future__ import annotations

import pytest

from policyrouter.quantities import format_quantity

# (value, as printed): whole cents to the cent; below a dollar, the rest to 4 significant digits, so a
# request's cost of $0.0225 is not shown as $0.02 against a budget of $0.01
MONEY = [
    (0.0, "$0.00"),
    (12.5, "$12.50"),
    (1234.567, "$1,234.57"),
    (0.5, "$0.50"),
    (0.01, "$0.01"),
    (0.0225, "$0.0225"),
    (0.015018, "$0.01502"),
    (0.165, "$0.165"),
    (0.000001, "$0.000001"),
    (0.00012345678, "$0.0001235"),
]


@pytest.mark.parametrize(("value", "shown"), MONEY, ids=[shown for _, shown in MONEY])
def test_money(value: float, shown: str) -> None:
    assert format_quantity("money", value) == shown
