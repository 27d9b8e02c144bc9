"""Errors of the live state: the store failing, and a reservation refused by a hard limit."""

from __future__ import annotations

from datetime import datetime

from policyrouter.errors import PolicyRouterError
from policyrouter.quantities import format_amount


class StateError(PolicyRouterError):
    """The state store is unreachable, locked, corrupted or not a policyrouter store; `store` names it."""

    code = "state_error"

    def __init__(self, store: str, message: str, help: str | None = None) -> None:
        self.store = store
        self.message = message
        self.help = help
        text = f"state store `{store}`: {message}"
        super().__init__(f"{text}\nhelp: {help}" if help else text)


class ReservationError(PolicyRouterError):
    """A reservation used wrongly: settled or released twice, or handed to another store."""

    code = "reservation_error"


class LimitExceededError(PolicyRouterError):
    """A hard limit refused a reservation. `kind` is `quota`, `budget`, `rpm` or `tpm`; `name` is the
    provider, budget scope or `model@provider`; `spent` counts settled use plus live reservations."""

    code = "limit_exceeded"

    def __init__(
        self,
        *,
        kind: str,
        name: str,
        window: str,
        unit: str,
        used: float,
        reserved: float,
        requested: float,
        limit: float,
        resets_at: datetime | None,
    ) -> None:
        self.kind = kind
        self.name = name
        self.window = window
        self.unit = unit
        self.used = used
        self.reserved = reserved
        self.requested = requested
        self.limit = limit
        self.resets_at = resets_at
        super().__init__(self._message())

    @property
    def spent(self) -> float:
        return self.used + self.reserved

    def _message(self) -> str:
        def q(x: float) -> str:
            return format_amount(x, self.unit)

        resets = (
            f"; resets {self.resets_at.isoformat(timespec='seconds')}" if self.resets_at else "; resets with the run"
        )
        used = f"{q(self.spent)} of {q(self.limit)} used or reserved{resets}"
        if self.kind in ("rpm", "tpm"):
            return f"{self.kind} window of `{self.name}` is full: {used}"
        what = "quota of" if self.kind == "quota" else "budget"
        return f"hard {what} `{self.name}` ({self.window}) cannot take {q(self.requested)}: {used}"


class BudgetExceededError(LimitExceededError):
    """The request's estimated cost would break a hard budget."""

    code = "budget_exceeded"

    @property
    def budget(self) -> str:
        return self.name


class QuotaExhaustedError(LimitExceededError):
    """The provider's hard quota has less left than the request needs."""

    code = "quota_exhausted"

    @property
    def provider(self) -> str:
        return self.name


class RateLimitedError(LimitExceededError):
    """The provider's or deployment's rpm/tpm window is full."""

    code = "rate_limited"
