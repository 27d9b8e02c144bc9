"""Quantities written by people: `20%`, `$0.25`, `8k`, `1.5M`, `800ms`, `5h`, and window names.

Shared by the policy language's literals, the registry's YAML values and dry-run facts, so `400k`
means the same everywhere.
"""

from __future__ import annotations

import math
import re
from typing import Literal

Kind = Literal["share", "money", "count", "duration"]

COUNT_SUFFIXES = {"": 1.0, "k": 1e3, "K": 1e3, "M": 1e6}
DURATION_SUFFIXES = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
CALENDAR_WINDOWS = ("day", "week", "month")

_QUANTITY = re.compile(r"^(\$)?(\d+(?:\.\d+)?|\.\d+)(%|[A-Za-z]+)?$")
_NEGATIVE = re.compile(r"^(\$?)-")  # `-5%`, `-$3` or `$-3`


class QuantityError(ValueError):
    """A quantity that does not parse; the message says what was expected."""


def _scaled(digits: str, unit: float) -> float:
    """`digits` times `unit`, worked out in decimal: `1.1%` is the float nearest 0.011, as `0.011` is
    (`1.1 / 100` is 0.011000000000000001, and would not equal it)."""
    from decimal import Decimal  # 2 ms to import: not for a command that reads no quantity

    return float(Decimal(digits) * Decimal(repr(unit)))


def exact_share(share: float) -> float:
    """A share worked out by float arithmetic, rounded to 12 places: $180 of $200 leaves 10% (0.1), not
    0.09999999999999998, which `< 10%` would call less."""
    return round(share, 12)


def parse_quantity(text: str) -> tuple[Kind, float]:
    """`20%` → ("share", 0.2); `$5` → ("money", 5.0); `8k` → ("count", 8000.0); `800ms` → ("duration", 0.8)."""
    m = _QUANTITY.match(text.strip())
    if not m:
        if _QUANTITY.match(_NEGATIVE.sub(r"\1", text.strip(), count=1)):
            raise QuantityError(f"`{text}` is negative: amounts here are 0 or more")
        raise QuantityError(f"`{text}` is not a number")
    kind, value = _quantity(text, m)
    if not math.isfinite(value):  # `999…9`: more digits than a float holds
        raise QuantityError(f"`{text}` is too large")
    return kind, value


def _quantity(text: str, m: re.Match[str]) -> tuple[Kind, float]:
    dollar, digits, unit = m.group(1), m.group(2), m.group(3) or ""
    if dollar:
        if unit:
            raise QuantityError(f"`{text}`: money is written `$5` or `$0.25`, with no unit")
        return "money", float(digits)
    if unit == "%":
        return "share", _scaled(digits, 0.01)
    if unit in COUNT_SUFFIXES:
        return "count", _scaled(digits, COUNT_SUFFIXES[unit])
    if unit in DURATION_SUFFIXES:
        return "duration", _scaled(digits, DURATION_SUFFIXES[unit])
    raise QuantityError(
        f"unknown unit `{unit}` in `{text}`: expected `%`, `k` or `K`, `M` (counts) or `ms`, `s`, `m`, `h`, `d` "
        "(durations); money is written `$5`"
    )


def parse_count(value: object) -> float:
    """A count from YAML or a fact: a number, or a string like `400k` or `1.5M`."""
    if isinstance(value, bool):
        raise QuantityError("expected a count such as `50`, `400k` or `1.5M`")
    if (number := finite_number(value)) is not None:
        return number
    if isinstance(value, str):
        kind, amount = parse_quantity(value)
        if kind == "count":
            return amount
    raise QuantityError(f"expected a count such as `50`, `400k` or `1.5M`, got `{value}`")


def parse_share(value: object) -> float:
    """A share from a fact: `15%` or a plain fraction `0.15`; 0 ≤ share ≤ 1."""
    if isinstance(value, bool):
        raise QuantityError("expected a share such as `15%` or `0.15`")
    if isinstance(value, str):
        kind, amount = parse_quantity(value)
        if kind != "share" and not (kind == "count" and value.strip().replace(".", "", 1).isdigit()):
            raise QuantityError(f"expected a share such as `15%` or `0.15`, got `{value}`")
    elif (number := finite_number(value)) is not None:
        amount = number
    else:
        raise QuantityError(f"expected a share such as `15%` or `0.15`, got `{value}`")
    if not 0.0 <= amount <= 1.0:
        raise QuantityError(f"a share is between 0% and 100%, got `{value}`")
    return amount


def parse_money(value: object) -> float:
    if isinstance(value, bool):
        raise QuantityError("expected an amount of USD such as `4.20` or `$4.20`")
    if (number := finite_number(value)) is not None:
        return number
    if isinstance(value, str):
        kind, amount = parse_quantity(value)
        if kind in ("money", "count") and not value.strip()[-1:].isalpha():
            return amount
    raise QuantityError(f"expected an amount of USD such as `4.20` or `$4.20`, got `{value}`")


def parse_duration(value: object) -> float:
    """Seconds, from `800ms`, `30s`, `5m`, `1h`, or a plain number of seconds."""
    if isinstance(value, bool):
        raise QuantityError("expected a duration such as `800ms`, `30s` or `5m`")
    if (number := finite_number(value)) is not None:
        return number
    if isinstance(value, str):
        kind, amount = parse_quantity(value)
        if kind == "duration" or (kind == "count" and value.strip()[-1:].isdigit()):  # a plain number: seconds
            return amount
    raise QuantityError(f"expected a duration such as `800ms`, `30s` or `5m`, got `{value}`")


def finite_number(value: object) -> float | None:
    """An int or a float as a finite float; None for anything else: a bool, NaN, infinity, an int too
    large for a float."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def format_quantity(kind: str, value: float) -> str:
    """The inverse of parse_quantity, for explanations: 0.2 share → `20%`."""
    if kind == "share":
        return f"{_trim(value * 100)}%"
    if kind == "money":  # to the cent; below a dollar, what is not whole cents to 4 significant digits
        if value == 0 or abs(value) >= 1 or abs(value * 100 - round(value * 100)) < 1e-9:
            return f"${value:,.2f}"
        return f"${value:.{3 - math.floor(math.log10(abs(value)))}f}".rstrip("0")
    if kind == "duration":
        if value < 1:
            return f"{_trim(value * 1000)}ms"
        if value < 60:
            return f"{_trim(value)}s"
        if value < 3600:
            return f"{_trim(value / 60)}m"
        return f"{_trim(value / 3600)}h"
    if kind == "count":
        for suffix, scale in (("M", 1e6), ("k", 1e3)):
            if value >= scale and (value / scale) * 10 == int((value / scale) * 10):
                return f"{_trim(value / scale)}{suffix}"
        return _trim(value)
    return str(value)


def format_amount(value: float, unit: str) -> str:
    """An amount of a limit's unit: `$0.50` (usd), `400k tokens`, `12 requests`."""
    return format_quantity("money", value) if unit == "usd" else f"{format_quantity('count', value)} {unit}"


def _trim(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".") if x != int(x) else str(int(x))
