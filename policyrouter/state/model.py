"""The values that pass between the state store, its backends and its callers.

The ones made several times per call (counters, checks, holds, writes) are named tuples: they are
built at twice the speed of frozen dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, NamedTuple

from policyrouter.quantities import exact_share
from policyrouter.registry import Deployment

LimitKind = Literal["quota", "budget", "rpm", "tpm"]
OpAction = Literal["add", "set", "max", "push"]  # max: the larger of the value and what is there


def share_left(taken: float, limit: float | None) -> float:
    """0..1 of `limit` that `taken` (used and reserved) leaves; 1.0 without a limit."""
    if limit is None or taken <= 0:  # nothing used of nothing is all left, as a dry run reads it
        return 1.0
    if limit <= 0:
        return 0.0
    return min(1.0, max(0.0, exact_share(1.0 - taken / limit)))


class Counter(NamedTuple):
    """One counter as stored: settled use, and the part held by live reservations."""

    used: float = 0.0
    reserved: float = 0.0

    @property
    def total(self) -> float:
        return self.used + self.reserved


@dataclass(frozen=True, slots=True)
class Usage:
    """A limit as it stands in its current window: for warnings, errors and `status`."""

    kind: LimitKind
    name: str  # provider, budget scope or `model@provider`
    window: str
    unit: str  # tokens | requests | usd
    used: float
    reserved: float
    limit: float | None
    hard: bool
    resets_at: datetime | None  # None: resets with the run

    @property
    def share_left(self) -> float:
        """0..1 of the limit not used or reserved; 1.0 without a limit."""
        return share_left(self.used + self.reserved, self.limit)

    @property
    def over(self) -> bool:
        return self.limit is not None and self.used + self.reserved > self.limit


class Hold(NamedTuple):
    """Part of a reservation: `amount` added to a counter's reserved part until settled or expired."""

    key: str
    amount: float
    ttl: float | None  # seconds the counter should live from now; None: no expiry


class Check(NamedTuple):
    """Before holding: refuse when `used + reserved + amount > limit` (limit None: only read it)."""

    key: str
    amount: float
    limit: float | None


class Op(NamedTuple):
    """A write to a counter's settled part: add to it, set it, or push a sample (latency)."""

    action: OpAction
    key: str
    value: float
    ttl: float | None = None


@dataclass(eq=False)
class Reservation:
    """A handle on what a request holds until it is settled or released (or its lease expires).

    `warnings` are the soft budgets and soft quotas this request goes over: they never refuse,
    the executor reports them. `offline` is set when the store was unreachable and
    `settings.on_state_error` let the request through without holding anything.
    """

    id: str
    store: str
    deployment: Deployment
    run_id: str
    tokens: float
    cost: float
    created_at: datetime
    expires_at: datetime
    warnings: tuple[Usage, ...] = ()
    offline: bool = False
    state: Literal["held", "settled", "released"] = field(default="held")
