"""Live state: quotas, budgets and rate windows that hold across runs, processes and machines.

    store = open_store(registry)                      # settings.state: sqlite (default), redis, memory
    r = store.reserve(deployment, tokens=2000, cost=0.02)   # raises BudgetExceededError, ...
    store.settle(r, input_tokens=1800, output_tokens=350, cost=0.011, latency=1.4)  # or release(r, error=e)
    facts = LiveFacts(store)                          # the evaluator's FactSource, TTL-cached

See docs/state.md.
"""

from policyrouter.state.errors import (
    BudgetExceededError,
    LimitExceededError,
    QuotaExhaustedError,
    RateLimitedError,
    ReservationError,
    StateError,
)
from policyrouter.state.live import LiveFacts
from policyrouter.state.model import Reservation, Usage
from policyrouter.state.status import status_report
from policyrouter.state.store import StateStore
from policyrouter.state.url import open_store

__all__ = [
    "BudgetExceededError",
    "LimitExceededError",
    "LiveFacts",
    "QuotaExhaustedError",
    "RateLimitedError",
    "Reservation",
    "ReservationError",
    "StateError",
    "StateStore",
    "Usage",
    "open_store",
    "status_report",
]
