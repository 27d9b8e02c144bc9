"""How fast the live state is, per store: fact reads (cold: every read goes to the store; warm: served
by LiveFacts' TTL cache) and reserve/settle round trips.

    python benchmarks/state_bench.py [--redis redis://127.0.0.1:6379/0] [--seconds 0.5]

Without `--redis`, a throwaway `redis-server` is started on a free port if the binary is installed
(and the Redis rows are skipped otherwise). SQLite runs on a file in a temporary directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.measure import redis_server  # noqa: E402
from policyrouter.registry import Registry  # noqa: E402
from policyrouter.registry_schema import load_registry  # noqa: E402
from policyrouter.state import LiveFacts, StateStore, open_store  # noqa: E402

FACTS = 6  # reads per pass of `read_facts`


def read_facts(f: LiveFacts) -> None:
    """What a decision on the subscriptions example reads."""
    f.quota_left("work")
    f.quota_left("personal")
    f.budget_left("run")
    f.rate("rpm", "work")
    f.cooldown("work")
    f.errors("personal")


def per_second(fn: Callable[[], object], seconds: float) -> float:
    """Calls of `fn` per second, over about `seconds` (after a short warm-up)."""
    for _ in range(20):
        fn()
    calls, start = 0, time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            fn()
        calls += 50
    return calls / elapsed


def round_trips(store: StateStore, registry: Registry, seconds: float) -> tuple[float, float]:
    """Reserves per second for about `seconds`, then settles per second of those same reservations."""
    personal = registry.models["sonnet"].deployments[1]  # a big quota, so nothing is refused
    reservations = []
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            reservations.append(store.reserve(personal, tokens=10, cost=0.0))
    reserves = len(reservations) / (time.perf_counter() - start)
    start = time.perf_counter()
    for r in reservations:
        store.settle(r, input_tokens=5, output_tokens=5, cost=0.0, latency=0.5)
    settles = len(reservations) / (time.perf_counter() - start)
    store.reset(everything=True)
    return reserves, settles


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", help="a Redis URL to use instead of starting redis-server")
    parser.add_argument("--seconds", type=float, default=0.5, help="time per measurement")
    args = parser.parse_args()
    loaded = load_registry(ROOT / "policies" / "subscriptions" / "registry.yaml")
    # without rate limits, so that thousands of reservations a second are not refused
    providers = {name: replace(p, rpm=None, tpm=None) for name, p in loaded.providers.items()}
    registry = replace(loaded, providers=providers)

    with tempfile.TemporaryDirectory() as tmp, redis_server() as started:
        redis_url = args.redis or started
        urls = ["memory://", f"sqlite:///{tmp}/state.db"] + ([redis_url] if redis_url else [])
        print(f"{'store':<8} {'cold reads/s':>13} {'warm reads/s':>13} {'reserve/s':>10} {'settle/s':>10}")
        for url in urls:
            options = {"key_prefix": f"bench-{uuid.uuid4().hex[:6]}:"} if url.startswith("redis") else {}
            store = open_store(registry, url, run_id="bench", **options)
            cold = per_second(lambda s=store: read_facts(LiveFacts(s, ttl=0)), args.seconds) * FACTS
            warm_facts = LiveFacts(store, ttl=60)
            warm = per_second(lambda f=warm_facts: read_facts(f), args.seconds) * FACTS
            reserves, settles = round_trips(store, registry, args.seconds)
            name = url.partition(":")[0]
            print(f"{name:<8} {cold:>13,.0f} {warm:>13,.0f} {reserves:>10,.0f} {settles:>10,.0f}")
            store.close()
        if not redis_url:
            print("redis    skipped: redis-server is not installed and no --redis URL was given")


if __name__ == "__main__":
    main()
