"""Whether a deployment may serve a request, and if not, why.

The checks that depend on live facts (quota, rate windows, cooldown, hard budgets) are built once per
deployment at compile time, holding only the limits that apply to it; a deployment with no quota
and no hard budget carries no check for them. The request's own needs (capabilities, context window)
are checked first, and budgets last, so an exclusion coded `budget` or `unknown_price` means nothing
else stood in the way (the refusal rule relies on it).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from policyrouter.quantities import format_quantity
from policyrouter.registry import Budget, Deployment, Registry

if TYPE_CHECKING:
    from policyrouter.evaluate import Context

Reason = tuple[str, str]  # (exclusion code, sentence)
Check = Callable[["Context"], "Reason | None"]


def request_reason(d: Deployment, requires: frozenset[str], tokens: int) -> Reason | None:
    """What the request itself rules out: a missing capability or too small a context window."""
    if requires and not requires <= d.capabilities:
        return "capability", f"lacks {_listing(sorted(requires - d.capabilities))}"
    if d.context_window is not None and tokens > d.context_window:
        return "context_window", (
            f"context window {format_quantity('count', d.context_window)} < {format_quantity('count', tokens)} tokens"
        )
    return None


def checks_for(registry: Registry, d: Deployment, budgets: tuple[Budget, ...]) -> tuple[Check, ...]:
    """The fact-dependent checks of one deployment, in the order they run."""
    provider = registry.providers[d.provider]
    checks: list[Check] = []
    if provider.quota is not None and provider.quota.hard:
        checks.append(_quota_check(d, provider.quota.limit, provider.quota.unit, str(provider.quota.window)))
    for kind, own, shared in (("rpm", d.rpm, provider.rpm), ("tpm", d.tpm, provider.tpm)):
        if own is not None:
            checks.append(_rate_check(kind, d.key, own))
        if shared is not None:
            checks.append(_rate_check(kind, d.provider, shared))
    checks.append(_cooldown_check(d.provider))
    hard = tuple(b for b in budgets if b.hard)
    if hard:
        checks.append(_budget_check(d, hard, registry.settings.unknown_price == "deny"))
    return tuple(checks)


def _quota_check(d: Deployment, limit: float, unit: str, window: str) -> Check:
    key, provider = "quota." + d.provider, d.provider

    def check(ctx: Context) -> Reason | None:
        read = ctx.read
        share = read[key] if key in read else read.setdefault(key, ctx.facts.quota_left(provider))
        left = share * limit
        if unit == "tokens":
            need: float = ctx.request.tokens + ctx.output_tokens()
        elif unit == "requests":
            need = 1.0
        else:
            need = ctx.cost(d) or 0.0
        if left > 0 and left >= need:
            return None
        state = "used up" if left <= 0 else f"has {format_quantity('share', share)} left, less than this request needs"
        return "quota", f"`{provider}` quota {state} ({window} window)"

    return check


def _rate_check(kind: str, name: str, limit: float) -> Check:
    key = f"{kind}.{name}"

    def check(ctx: Context) -> Reason | None:
        read = ctx.read
        used = read[key] if key in read else read.setdefault(key, ctx.facts.rate(kind, name))
        if used < limit:
            return None
        frees = _next_minute(ctx.facts.now())
        return "rate_limit", (
            f"{kind} limit of `{name}` reached ({format_quantity('count', used)}/{format_quantity('count', limit)}), "
            f"frees at {frees:%H:%M:%S}"
        )

    return check


def _cooldown_check(provider: str) -> Check:
    key = "cooldown." + provider

    def check(ctx: Context) -> Reason | None:
        read = ctx.read
        left = read[key] if key in read else read.setdefault(key, ctx.facts.cooldown(provider))
        if left <= 0:
            return None
        return "cooldown", f"`{provider}` is cooling down after failures ({format_quantity('duration', left)} left)"

    return check


def _budget_check(d: Deployment, budgets: tuple[Budget, ...], deny_unknown_price: bool) -> Check:
    keys = tuple(("budget." + b.name, b) for b in budgets)

    def check(ctx: Context) -> Reason | None:
        cost = ctx.cost(d)
        if cost is None:
            if deny_unknown_price:
                return "unknown_price", f"price unknown while hard budget `{budgets[0].name}` applies"
            return None
        if cost <= 0:
            return None  # a free deployment stays eligible
        read = ctx.read
        for key, budget in keys:
            share = read[key] if key in read else read.setdefault(key, ctx.facts.budget_left(budget.name))
            left = share * budget.usd
            if cost > left:
                return "budget", (
                    f"would break hard budget `{budget.name}` ({format_quantity('money', left)} of "
                    f"{format_quantity('money', budget.usd)} left, this request ≈ {format_quantity('money', cost)})"
                )
        return None

    return check


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _listing(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)
