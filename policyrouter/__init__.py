"""policyrouter: decide which LLM provider serves each request, from routing policies written as text.

`load(DIR)` reads a config directory (registry.yaml and *.policy) into a Router; `Router.decide()`
returns a Decision (`.order`, `.excluded`, `.explain()`, `.to_dict()`) or raises DecisionError;
`Router.completion()` / `acompletion()` run a request through litellm on the decision's deployments.
"""

from policyrouter.completion_errors import AllDeploymentsFailed, BudgetExceeded, CompletionError, RequestRejected
from policyrouter.decision import Decision, Exclusion, Request
from policyrouter.diagnostics import Diagnostic
from policyrouter.errors import ConfigError, DecisionError, PolicyRouterError
from policyrouter.events import Events
from policyrouter.executor import ExecutorOptions
from policyrouter.facts import Fact
from policyrouter.registry import Deployment
from policyrouter.router import InvalidFacts, Router, load

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
