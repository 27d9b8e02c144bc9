"""The package's exceptions: one base class, one subclass per phase, each with structured fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from policyrouter.diagnostics import Diagnostic, did_you_mean, render

if TYPE_CHECKING:
    from policyrouter.decision import Decision


class PolicyRouterError(Exception):
    """Base class of every error policyrouter raises on purpose."""


class ConfigError(PolicyRouterError):
    """The registry or a policy is invalid; `diagnostics` says where and why."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        super().__init__(render(self.diagnostics))


REFUSAL_CODES = ("unknown_model", "unsupported_capability", "budget_exceeded", "no_route", "denied")


def unknown_refusal(code: str) -> str:
    """Help for a refusal code that is none of `REFUSAL_CODES`."""
    return did_you_mean(code, REFUSAL_CODES) or "one of " + ", ".join(f"`{c}`" for c in REFUSAL_CODES)


class DecisionError(PolicyRouterError):
    """A request was refused. `code` is one of the stable codes:
    `unknown_model`, `unsupported_capability`, `budget_exceeded`, `no_route`, `denied`."""

    def __init__(self, code: str, message: str, decision: Decision | None = None, **details: Any) -> None:
        self.code = code
        self.message = message
        self.decision = decision
        self.details = details
        super().__init__(message)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "message": self.message, **self.details}
        if self.decision is not None:
            out["decision"] = self.decision.to_dict()
        return out
