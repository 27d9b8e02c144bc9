"""The errors `Router.completion` raises, and the record of each attempt they carry.

- `AllDeploymentsFailed`: every deployment of the decision was tried or skipped; `attempts` says why each.
- `RequestRejected`: a provider refused the request itself (bad request, content policy): it would fail
  everywhere, so nothing else is tried. `provider_message` is the provider's own words.
- `BudgetExceeded`: a hard budget would be broken; nothing was called. Says which budget, what is spent,
  the limit, when it resets and how to raise it. It is a `DecisionError` with code `budget_exceeded`,
  like the refusal `Router.decide` raises, with those fields added.

Refusals of the decision itself (`unknown_model`, `no_route`, `denied`, …) are raised as the
`DecisionError` that `decide` raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from policyrouter.errors import DecisionError, PolicyRouterError
from policyrouter.quantities import format_quantity
from policyrouter.registry import Deployment, Registry

if TYPE_CHECKING:
    from policyrouter.decision import Decision


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try on a deployment that did not serve, or one deployment skipped without a call.

    `code` is a failure kind (`rate_limited`, `timeout`, `server_error`, `auth`, …) or a reason for
    skipping (`missing_key`, `cooling_down`, `context_window`, `quota`, `budget`, `rate_limit`).
    """

    deployment: Deployment
    code: str
    reason: str
    called: bool  # whether the provider was called (False: skipped before any call)
    status: int | None = None
    latency: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "deployment": self.deployment.key,
            "code": self.code,
            "reason": self.reason,
            "called": self.called,
            "status": self.status,
            "latency": None if self.latency is None else round(self.latency, 6),
        }


class CompletionError(PolicyRouterError):
    """A request the executor could not complete. `attempts` lists what was tried, in order."""

    code = "completion_failed"

    def __init__(
        self,
        message: str,
        *,
        attempts: Sequence[Attempt] = (),
        request_id: str = "",
        decision: Decision | None = None,
    ) -> None:
        self.message = message
        self.attempts = list(attempts)
        self.request_id = request_id
        self.decision = decision
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        return {
            "error": self.code,
            "message": self.message,
            "request_id": self.request_id,
            "attempts": [a.to_dict() for a in self.attempts],
        }


class AllDeploymentsFailed(CompletionError):
    """Every deployment of the decision failed or was skipped."""

    code = "all_failed"

    def __init__(self, model: str, attempts: Sequence[Attempt], **kwargs: Any) -> None:
        self.model = model
        lines = [f"every deployment for `{model}` failed:", *describe_attempts(attempts)]
        super().__init__("\n".join(lines), attempts=attempts, **kwargs)


class RequestRejected(CompletionError):
    """A provider refused the request itself; `provider_message` says why. Nothing else was tried."""

    def __init__(
        self, kind: str, deployment: Deployment, provider_message: str, status: int | None, **kwargs: Any
    ) -> None:
        self.code = kind  # bad_request | content_policy
        self.deployment = deployment
        self.provider_message = provider_message
        self.status = status
        what = "its content policy" if kind == "content_policy" else "a bad request"
        message = (
            f"`{deployment.key}` refused the request as {what}"
            f"{f' ({status})' if status else ''}: {provider_message}\n"
            "help: it would fail on every deployment, so no other was tried; fix the request"
        )
        super().__init__(message, **kwargs)


class BudgetExceeded(DecisionError):
    """A hard budget would be broken by this request: nothing was called.

    `budget` is the scope (`run`, `month`, a provider or model); `spent` counts settled spend and live
    reservations; `resets_at` is None for a run budget (it resets with a new run); `help` says how to raise it.
    """

    def __init__(
        self,
        *,
        budget: str,
        window: str,
        spent: float,
        limit: float,
        requested: float,
        resets_at: datetime | None,
        help: str,
        decision: Decision | None = None,
        attempts: Sequence[Attempt] = (),
        request_id: str = "",
    ) -> None:
        self.budget = budget
        self.window = window
        self.spent = spent
        self.limit = limit
        self.requested = requested
        self.resets_at = resets_at
        self.help = help
        self.attempts = list(attempts)
        self.request_id = request_id
        resets = f"resets {resets_at.isoformat(timespec='seconds')}" if resets_at else "resets with a new run"
        message = (
            f"hard budget `{budget}` ({window}) would be broken: {_money(spent)} of {_money(limit)} spent or "
            f"reserved, this request ≈ {_money(requested)}; it {resets}"
        )
        super().__init__(
            "budget_exceeded",
            message,
            decision,
            budget=budget,
            window=window,
            spent=round(spent, 9),
            limit=limit,
            requested=round(requested, 9),
            resets_at=resets_at.isoformat() if resets_at else None,
            help=help,
        )
        self.args = (f"{message}\nhelp: {help}",)


def budget_help(registry: Registry, name: str, window: str) -> str:
    """How to raise a budget: where it is written, and what else frees it."""
    budget = registry.budgets.get(name)
    scope = budget.scope if budget is not None else "global"
    where = {
        "global": f"budgets.{name}.usd",
        "provider": f"providers.{name}.budget.usd",
        "model": f"models.{name}.budget.usd",
    }[scope]
    then = "start a new run (`router.run(NAME)` or `run_id=`)" if window == "run" else "wait until it resets"
    return f"raise `{where}` in registry.yaml, {then}, or ask for fewer tokens (`max_tokens`)"


def describe_attempts(attempts: Sequence[Attempt]) -> list[str]:
    """One line per deployment and failure, repeated tries folded: `  a@p: timeout ×3: …`."""
    lines: list[str] = []
    previous: tuple[str, str] | None = None
    count = 0
    for i, attempt in enumerate(attempts):
        key = (attempt.deployment.key, attempt.code)
        count = count + 1 if key == previous else 1
        previous = key
        following = attempts[i + 1] if i + 1 < len(attempts) else None
        if following is not None and (following.deployment.key, following.code) == key:
            continue
        times = f" ×{count}" if count > 1 else ""
        status = f" ({attempt.status})" if attempt.status else ""
        how = "" if attempt.called else " (skipped)"
        lines.append(f"  {attempt.deployment.key}: {attempt.code}{status}{times}{how}: {attempt.reason}")
    return lines


def _money(x: float) -> str:
    return format_quantity("money", x)
