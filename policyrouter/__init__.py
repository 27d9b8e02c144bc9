"""policyrouter: decide which LLM provider serves each request, from routing policies written as text.

`load(DIR)` reads a config directory (registry.yaml and *.policy) into a Router; `Router.decide()`
returns a Decision (`.order`, `.excluded`, `.explain()`, `.to_dict()`) or raises DecisionError.
"""

from policyrouter.decision import Decision, Exclusion, Request
from policyrouter.diagnostics import Diagnostic
from policyrouter.errors import ConfigError, DecisionError, PolicyRouterError
from policyrouter.facts import Fact
from policyrouter.registry import Deployment
from policyrouter.router import InvalidFacts, Router, load

__all__ = [
    "ConfigError",
    "Decision",
    "DecisionError",
    "Deployment",
    "Diagnostic",
    "Exclusion",
    "Fact",
    "InvalidFacts",
    "PolicyRouterError",
    "Request",
    "Router",
    "load",
]
__version__ = "0.1.0"
