"""What is counted, under which key, in which window: the one place that maps the registry's limits to
store keys. Stores, live facts and `status` all ask this module, so they never disagree.

Keys (before a store's own prefix):

| key | counts | window |
| --- | --- | --- |
| `quota:P|W` | provider P's quota use, in its unit | the quota's window |
| `spend:S|W` | USD spent in scope S (`run`, `day`, `week`, `month`, each budget's) | the budget's window |
| `rpm:K|W`, `tpm:K|W` | requests / tokens of provider or `model@provider` K | the current minute |
| `errors:P` | consecutive failures of P (a success sets it to 0) | none |
| `cooldown:P` | the instant (epoch seconds) P's cooldown ends | until then |
| `inflight:P` | live reservations on P (their reserved part) | none |
| `latency:P` | the last N latencies of P, seconds (a list) | none |
| `rr:M` | round-robin position of model M | none |

`W` is the window occurrence's key (`month@1711922400000`, `run:RUN_ID`), so a new window is a new
counter. Every counter's settled part (`used`) only ever grows within its window; the `reserved` part
is what live reservations hold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from policyrouter.registry import GLOBAL_BUDGETS, Deployment, Registry, Window
from policyrouter.state.model import Counter, LimitKind, Usage
from policyrouter.state.windows import MINUTE, WindowSpan, current_span

RUN_TTL = 7 * 86400.0  # a run's counters live this long after their last write
MAX_MARGIN = 3600.0  # a window's counters outlive its end by its length, at most this


@dataclass(frozen=True, slots=True)
class Meter:
    """A counter in its current window, with the limit on it (None: counted, not limited)."""

    kind: LimitKind
    name: str
    unit: str
    key: str
    span: WindowSpan
    limit: float | None
    hard: bool
    # The instant (epoch seconds) the counter may go: its window's end plus a margin; None for a run,
    # whose counters live RUN_TTL after their last write.
    expires: float | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        span = self.span
        bounded = span.start is not None and span.end is not None
        object.__setattr__(self, "expires", span.end_ts + min(MAX_MARGIN, span.length) if bounded else None)

    def usage(self, counter: Counter) -> Usage:
        return Usage(
            kind=self.kind,
            name=self.name,
            window=self.span.window.name,
            unit=self.unit,
            used=counter.used,
            reserved=max(0.0, counter.reserved),
            limit=self.limit,
            hard=self.hard,
            resets_at=self.span.end,
        )

    def ttl(self, now: float) -> float:
        """Seconds from `now` (epoch seconds) the counter must live: to its window's end plus a margin."""
        expires = self.expires
        return RUN_TTL if expires is None else max(1.0, expires - now)


@dataclass(frozen=True, slots=True)
class CallMeters:
    """The meters one call on a deployment touches, valid for instants in [start, end), and the keys of
    every counter it may write: those meters', and its provider's errors, cooldown and calls in flight."""

    quota: Meter | None
    spends: tuple[Meter, ...]
    rates: tuple[Meter, ...]
    start: datetime
    end: datetime
    keys: tuple[str, ...]


class Layout:
    """The meters of one registry. `run_id` names the `run` windows."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self._tz = registry.settings.timezone
        # Every reserve and settle asks for the same few windows at one instant: keep each window's
        # latest occurrence and reuse it while the instant falls inside it.
        self._latest: dict[tuple[str, datetime | None, str], WindowSpan] = {}
        self._rate_limits: dict[tuple[str, str], float | None] = {}
        self._scopes: dict[str, tuple[str, ...]] = {}
        self._calls: dict[tuple[str, str], CallMeters] = {}

    def _span(self, window: Window, at: datetime, run_id: str) -> WindowSpan:
        key = (window.name, window.anchor, run_id)
        cached = self._latest.get(key)
        if cached is not None and (cached.start is None or cached.start <= at < cached.end):  # type: ignore[operator]
            return cached
        span = current_span(window, at, self._tz, run_id)
        if len(self._latest) > 4096:  # many runs in one process: forget the old ones
            self._latest.clear()
        self._latest[key] = span
        return span

    def quota(self, provider: str, at: datetime, run_id: str) -> Meter | None:
        quota = self.registry.providers[provider].quota
        if quota is None:
            return None
        span = self._span(quota.window, at, run_id)
        return Meter("quota", provider, quota.unit, f"quota:{provider}|{span.key}", span, quota.limit, quota.hard)

    def quota_key(self, provider: str, at: datetime, run_id: str) -> str | None:
        """The key of `quota()`'s counter without building the meter (the decision path reads many)."""
        quota = self.registry.providers[provider].quota
        return None if quota is None else f"quota:{provider}|{self._span(quota.window, at, run_id).key}"

    def spend(self, scope: str, at: datetime, run_id: str) -> Meter | None:
        """The spend counter of a budget scope; `run`/`day`/`week`/`month` are counted even without a
        budget. None for a provider or model without a budget of its own: nothing counts it."""
        budget = self.registry.budgets.get(scope)
        if budget is not None:
            span = self._span(budget.window, at, run_id)
            return Meter("budget", scope, "usd", f"spend:{scope}|{span.key}", span, budget.usd, budget.hard)
        if scope in GLOBAL_BUDGETS:
            span = self._span(Window(scope), at, run_id)
            return Meter("budget", scope, "usd", f"spend:{scope}|{span.key}", span, None, False)
        return None

    def spend_key(self, scope: str, at: datetime, run_id: str) -> str | None:
        """The key of `spend()`'s counter without building the meter."""
        budget = self.registry.budgets.get(scope)
        window = budget.window if budget is not None else Window(scope) if scope in GLOBAL_BUDGETS else None
        return None if window is None else f"spend:{scope}|{self._span(window, at, run_id).key}"

    def spend_meters(self, deployment: Deployment, at: datetime, run_id: str) -> list[Meter]:
        """Every spend counter a call on `deployment` adds to: the global scopes and its budgets."""
        scopes = self._scopes.get(deployment.key)
        if scopes is None:
            names = (*GLOBAL_BUDGETS, *(b.name for b in self.registry.budgets_for(deployment)))
            scopes = self._scopes[deployment.key] = tuple(dict.fromkeys(names))
        return [m for s in scopes if (m := self.spend(s, at, run_id)) is not None]

    def rate(self, kind: LimitKind, key: str, at: datetime) -> Meter:
        """`rpm`/`tpm` of a provider or a `model@provider` in the current minute."""
        if (kind, key) in self._rate_limits:
            limit = self._rate_limits[kind, key]
        else:
            limit = self._rate_limits[kind, key] = self._rate_limit(kind, key)
        span = self._span(MINUTE, at, "")
        unit = "requests" if kind == "rpm" else "tokens"
        return Meter(kind, key, unit, f"{kind}:{key}|{span.key}", span, limit, limit is not None)

    def rate_key(self, kind: str, key: str, at: datetime) -> str:
        """The key of `rate()`'s counter without building the meter."""
        return f"{kind}:{key}|{self._span(MINUTE, at, '').key}"

    def _rate_limit(self, kind: str, key: str) -> float | None:
        limits: object = self.registry.providers.get(key)
        if "@" in key:
            model, _, provider = key.partition("@")
            found = self.registry.models.get(model)
            limits = next((d for d in found.deployments if d.provider == provider), None) if found else None
        return getattr(limits, kind, None)  # unknown names are counted but have no limit

    def call_meters(self, deployment: Deployment, at: datetime, run_id: str) -> CallMeters:
        """Every meter a call on `deployment` touches, kept while `at` stays inside all their windows:
        reserve and settle of the same deployment ask for the same meters many times a minute."""
        cached = self._calls.get((deployment.key, run_id))
        if cached is not None and cached.start <= at < cached.end:
            return cached
        quota = self.quota(deployment.provider, at, run_id)
        spends = tuple(self.spend_meters(deployment, at, run_id))
        rates = tuple(self.rate_meters(deployment, at))
        spans = [m.span for m in (*spends, *rates, *((quota,) if quota else ())) if m.span.end is not None]
        start = max((s.start for s in spans if s.start is not None), default=at)
        end = min((s.end for s in spans if s.end is not None), default=at)
        p = deployment.provider
        written = (*spends, *rates, *((quota,) if quota else ()))
        keys = (*(m.key for m in written), errors_key(p), cooldown_key(p), inflight_key(p))
        meters = CallMeters(quota, spends, rates, start, end, keys)
        if len(self._calls) > 4096:
            self._calls.clear()
        self._calls[(deployment.key, run_id)] = meters
        return meters

    def rate_meters(self, deployment: Deployment, at: datetime) -> list[Meter]:
        keys = (deployment.provider, deployment.key)
        return [self.rate(kind, k, at) for kind in ("rpm", "tpm") for k in keys]

    def quota_meters(self, at: datetime, run_id: str) -> list[Meter]:
        return [m for p in self.registry.providers if (m := self.quota(p, at, run_id)) is not None]

    def budget_meters(self, at: datetime, run_id: str) -> list[Meter]:
        return [m for s in self.registry.budgets if (m := self.spend(s, at, run_id)) is not None]

    def limited_rate_meters(self, at: datetime) -> list[Meter]:
        keys = [*self.registry.providers, *self.registry.deployments]
        meters = [self.rate(kind, k, at) for k in keys for kind in ("rpm", "tpm")]
        return [m for m in meters if m.limit is not None]


RUN_SPEND = "spend:run|run:"  # how every run's `run` spend key starts: the run id follows


def errors_key(provider: str) -> str:
    return f"errors:{provider}"


def cooldown_key(provider: str) -> str:
    return f"cooldown:{provider}"


def inflight_key(provider: str) -> str:
    return f"inflight:{provider}"


def latency_key(provider: str) -> str:
    return f"latency:{provider}"


def round_robin_key(model: str) -> str:
    return f"rr:{model}"
