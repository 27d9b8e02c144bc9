"""policyrouter: decide which LLM provider serves each request, from routing policies written as text.

`load(DIR)` reads a config directory (registry.yaml and *.policy) into a Router; `Router.decide()`
returns a Decision (`.order`, `.excluded`, `.explain()`, `.to_dict()`) or raises DecisionError;
`Router.completion()` / `acompletion()` run a request through litellm on the decision's deployments.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from policyrouter.completion_errors import AllDeploymentsFailed, BudgetExceeded, CompletionError, RequestRejected
    from policyrouter.decision import Decision, Exclusion, Request
    from policyrouter.diagnostics import Diagnostic
    from policyrouter.errors import ConfigError, DecisionError, PolicyRouterError
    from policyrouter.events import Events
    from policyrouter.executor import ExecutorOptions
    from policyrouter.facts import Fact
    from policyrouter.registry import Deployment
    from policyrouter.router import InvalidFacts, Router, load

# Each public name and the module that defines it. They are imported on first use (PEP 562), so
# `import policyrouter.cli` pays only for what the command it runs needs, not for the executor.
_EXPORTS = {
    "AllDeploymentsFailed": "policyrouter.completion_errors",
    "BudgetExceeded": "policyrouter.completion_errors",
    "CompletionError": "policyrouter.completion_errors",
    "ConfigError": "policyrouter.errors",
    "Decision": "policyrouter.decision",
    "DecisionError": "policyrouter.errors",
    "Deployment": "policyrouter.registry",
    "Diagnostic": "policyrouter.diagnostics",
    "Events": "policyrouter.events",
    "Exclusion": "policyrouter.decision",
    "ExecutorOptions": "policyrouter.executor",
    "Fact": "policyrouter.facts",
    "InvalidFacts": "policyrouter.router",
    "PolicyRouterError": "policyrouter.errors",
    "Request": "policyrouter.decision",
    "RequestRejected": "policyrouter.completion_errors",
    "Router": "policyrouter.router",
    "load": "policyrouter.router",
}

__all__ = [
    "AllDeploymentsFailed",
    "BudgetExceeded",
    "CompletionError",
    "ConfigError",
    "Decision",
    "DecisionError",
    "Deployment",
    "Diagnostic",
    "Events",
    "Exclusion",
    "ExecutorOptions",
    "Fact",
    "InvalidFacts",
    "PolicyRouterError",
    "Request",
    "RequestRejected",
    "Router",
    "load",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})
