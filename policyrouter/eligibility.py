"""Whether a deployment may serve a request, and if not, why.

Each deployment gets one check, built at compile time, that holds only the limits that apply to it:
a deployment with no quota and no hard budget carries no test for them. The request's own needs
(capabilities, context window) come first, then quota, rate windows and cooldown, and budgets last,
so an exclusion coded `budget` or `unknown_price` means nothing else stood in the way (the refusal
rule relies on it). Sentences are only built for the deployments that fail.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from policyrouter.quantities import format_quantity
from policyrouter.registry import Budget, Deployment, Registry

if TYPE_CHECKING:
    from policyrouter.evaluate import Context

Reason = tuple[str, str]  # (exclusion code, sentence)
RateLimit = tuple[str, str, str, float]  # (rpm | tpm, key or provider, fact key, limit)
Check = Callable[["Context", frozenset[str]], "Reason | None"]


def check_for(registry: Registry, d: Deployment, budgets: tuple[Budget, ...]) -> Check:
    """The eligibility check of one deployment: `check(ctx, requires)` → None, or why not."""
    return _DeploymentCheck(registry, d, budgets).check


class _DeploymentCheck:
    """One deployment's limits, worked out once; its bound `check` method is the check.

    An object rather than a closure: a config holds one check per deployment, and a closure over ten
    variables is twelve objects for the garbage collector to track (the function, its cell tuple and a
    cell each), this is two (the object and its bound method). Calling the bound method costs the same.
    """

    __slots__ = (
        "capabilities",
        "cooldown_key",
        "deny_unknown_price",
        "deployment",
        "hard",
        "name",
        "quota",
        "quota_key",
        "rates",
        "window",
    )

    def __init__(self, registry: Registry, d: Deployment, budgets: tuple[Budget, ...]) -> None:
        name = d.provider
        provider = registry.providers[name]
        self.deployment = d
        self.name = name
        self.capabilities = d.capabilities
        self.window = d.context_window if d.context_window is not None else math.inf
        self.quota = provider.quota if provider.quota is not None and provider.quota.hard else None
        self.quota_key = "quota." + name
        self.rates = _rate_limits(d, provider.rpm, provider.tpm)
        self.cooldown_key = "cooldown." + name
        self.hard = tuple([("budget." + b.name, b) for b in budgets if b.hard])
        self.deny_unknown_price = registry.settings.unknown_price == "deny"

    def check(self, ctx: Context, requires: frozenset[str]) -> Reason | None:
        name, capabilities = self.name, self.capabilities
        if requires and not requires <= capabilities:
            return "capability", f"lacks {_listing(sorted(requires - capabilities))}"
        if ctx.context_tokens > self.window:
            return "context_window", f"context window {_count(self.window)} < {_count(ctx.context_tokens)} tokens"
        read, facts = ctx.read, ctx.facts
        quota = self.quota
        unpriced = False  # a quota in USD and no price: the quota cannot be checked, nor count the call
        if quota is not None:
            share = read.get(self.quota_key)
            if share is None:
                share = read[self.quota_key] = facts.quota_left(name)
            left = share * quota.limit
            if quota.unit == "tokens":
                need: float = ctx.quota_tokens
            elif quota.unit == "requests":
                need = 1.0
            else:
                cost = ctx.cost(self.deployment)
                unpriced = cost is None
                need = cost or 0.0
            if left <= 0 or left < need:
                state = "used up" if left <= 0 else f"has {_share(share)} left, less than this request needs"
                return "quota", f"`{name}` quota {state} ({quota.window} window)"
        for kind, who, key, limit in self.rates:
            used = read.get(key)
            if used is None:
                used = read[key] = facts.rate(kind, who)
            if used >= limit:
                frees = _next_minute(facts.now())
                return (
                    "rate_limit",
                    f"{kind} limit of `{who}` reached ({_count(used)}/{_count(limit)}), frees at {frees:%H:%M:%S}",
                )
        cooling = read.get(self.cooldown_key)
        if cooling is None:
            cooling = read[self.cooldown_key] = facts.cooldown(name)
        if cooling > 0:
            return "cooldown", f"`{name}` is cooling down after failures ({format_quantity('duration', cooling)} left)"
        if unpriced and self.deny_unknown_price:
            return "unknown_price", f"price unknown while the `{name}` quota counts USD"
        hard = self.hard
        if not hard:
            return None
        price = self.deployment.price
        if price is None:
            if self.deny_unknown_price:
                return "unknown_price", f"price unknown while hard budget `{hard[0][1].name}` applies"
            return None
        cost = (ctx.request.tokens * price.input_per_mtok + ctx.output * price.output_per_mtok) / 1e6
        if cost <= 0:
            return None  # a free deployment stays eligible
        for key, budget in hard:
            share = read.get(key)
            if share is None:
                share = read[key] = facts.budget_left(budget.name)
            left = share * budget.usd
            if cost > left:
                return "budget", (
                    f"would break hard budget `{budget.name}` ({_money(left)} of {_money(budget.usd)} left, "
                    f"this request ≈ {_money(cost)})"
                )
        return None


def _rate_limits(d: Deployment, provider_rpm: float | None, provider_tpm: float | None) -> tuple[RateLimit, ...]:
    """The rate windows that apply: the deployment's own key's, then its provider's, for rpm then tpm."""
    return tuple(
        (kind, who, f"{kind}.{who}", limit)
        for kind, own, shared in (("rpm", d.rpm, provider_rpm), ("tpm", d.tpm, provider_tpm))
        for who, limit in ((d.key, own), (d.provider, shared))
        if limit is not None
    )


def _next_minute(now: datetime) -> datetime:
    return now.replace(second=0, microsecond=0) + timedelta(minutes=1)


def _listing(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _count(x: float) -> str:
    return format_quantity("count", x)


def _share(x: float) -> str:
    return format_quantity("share", x)


def _money(x: float) -> str:
    return format_quantity("money", x)
