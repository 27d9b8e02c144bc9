"""policyrouter: decide which LLM provider serves each request, from routing policies written as text.

    router = policyrouter.load("policies/subscriptions")
    decision = router.decide("sonnet", requires=["tools"], facts={"quota": {"work": "15%"}})
    print(decision.explain())
"""

from policyrouter.compile import Fact
from policyrouter.decision import Decision, Exclusion, Request
from policyrouter.diagnostics import Diagnostic
from policyrouter.errors import ConfigError, DecisionError, PolicyRouterError
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
