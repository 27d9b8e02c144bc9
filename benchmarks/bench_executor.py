"""What the executor adds to a call: `router.completion(..., mock_response=...)` against a bare
`litellm.completion(..., mock_response=...)`, measured in the same run.

    python benchmarks/bench_executor.py [--calls 200] [--repeats 15]

The routed call decides with the live state, reserves, calls litellm, settles the usage and cost, and
(in one row) writes events. The last row is a diagnostic: the state's reserve and settle replaced by
no-ops, to show what the decision and the executor's own bookkeeping cost apart from the accounting.
Batches of the bare and routed calls alternate, so drift hits both alike. Prints the median microseconds
per call of each and the ratio to the bare call.
"""

from __future__ import annotations

import argparse
import copy
import gc
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("OPENAI_API_KEY", "sk-bench-not-a-real-key")

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import policyrouter  # noqa: E402
from policyrouter.executor import import_litellm  # noqa: E402

MESSAGES = [{"role": "user", "content": "Write a haiku about routing tables."}]
# Two subscriptions serving gpt-4o (the subscriptions example, on OpenAI keys), a hard run budget and a
# soft monthly one: each call reads a quota fact and a budget, and reserves and settles against the
# quota, the budgets and the rate counters. Limits are high so that no call is refused; no rpm limit,
# which mock calls at thousands a second would fill at once.
REGISTRY = """
providers:
  work: {litellm_provider: openai, api_key_env: OPENAI_API_KEY, quota: {limit: 1000M, unit: tokens, window: 5h}}
  personal: {litellm_provider: openai, api_key_env: OPENAI_API_KEY, quota: {limit: 1000M, unit: tokens, window: 5h}}
models:
  gpt-4o:
    price: {input_per_mtok: 2.50, output_per_mtok: 10.00}
    deployments: [{provider: work, model_id: gpt-4o}, {provider: personal, model_id: gpt-4o}]
budgets:
  run: {usd: 100000, hard: true}
  month: {usd: 100000}
"""
POLICY = "route gpt-4o when quota(work) > 20% prefer work else personal\n"


def per_call_us(fn: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - start) / calls * 1e6


def without_books(router: policyrouter.Router) -> policyrouter.Router:
    """A diagnostic, not a mode: the router with its reserve, settle and forget replaced by no-ops, to
    show what deciding and the executor's own bookkeeping cost without the state's accounting."""
    deployment = router.registry.models["gpt-4o"].deployments[0]
    held = router.store.reserve(deployment, tokens=0, cost=0.0)
    router.store.reserve = lambda *args, **kwargs: copy.copy(held)  # type: ignore[method-assign]
    router.store.settle = lambda *args, **kwargs: {}  # type: ignore[method-assign]
    router.live_facts.forget = lambda *args, **kwargs: None  # type: ignore[method-assign]
    return router


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args()

    litellm = import_litellm()
    tmp = Path(tempfile.mkdtemp(prefix="bench-executor-"))
    config = tmp / "config"
    config.mkdir()
    (config / "registry.yaml").write_text(REGISTRY, encoding="utf-8")
    (config / "main.policy").write_text(POLICY, encoding="utf-8")
    routers = {
        "routed, memory store": policyrouter.load(config, state="memory://"),
        "routed, sqlite store": policyrouter.load(config, state=f"sqlite:///{tmp / 'state.db'}"),
        "routed, memory, events to a file": policyrouter.load(
            config, state="memory://", events=str(tmp / "events.jsonl")
        ),
        "routed, no books (diagnostic)": without_books(policyrouter.load(config, state="memory://")),
    }

    def bare() -> object:
        return litellm.completion(model="openai/gpt-4o", messages=MESSAGES, mock_response="ok")

    def bare_as_routed() -> object:  # the arguments the executor adds: the key, no litellm retries
        key = os.environ["OPENAI_API_KEY"]
        return litellm.completion(
            model="openai/gpt-4o", messages=MESSAGES, mock_response="ok", api_key=key, max_retries=0
        )

    def routed(router: policyrouter.Router) -> Callable[[], object]:
        view = router.run()  # one run per batch
        return lambda: view.completion("gpt-4o", MESSAGES, mock_response="ok")

    for fn in (bare, bare_as_routed, *(routed(r) for r in routers.values())):  # warm up
        per_call_us(fn, 50)
    # importing litellm leaves ~300k young objects: the first full collection (~0.1 s) would land on
    # whichever batch happens to trigger it. Take it now, outside the measurements.
    gc.collect()
    samples: dict[str, list[float]] = {
        "bare litellm.completion": [],
        "bare, with the executor's kwargs": [],
        **{name: [] for name in routers},
    }
    for _ in range(args.repeats):
        samples["bare litellm.completion"].append(per_call_us(bare, args.calls))
        samples["bare, with the executor's kwargs"].append(per_call_us(bare_as_routed, args.calls))
        for name, router in routers.items():
            samples[name].append(per_call_us(routed(router), args.calls))

    floor = statistics.median(samples["bare litellm.completion"])
    from importlib.metadata import version

    print(f"litellm {version('litellm')}, {args.repeats} batches of {args.calls} calls, medians")
    print(f"{'case':<36} {'µs/call':>9} {'× bare':>7} {'+µs':>7}")
    for name, values in samples.items():
        median = statistics.median(values)
        print(f"{name:<36} {median:>9.1f} {median / floor:>7.3f} {median - floor:>7.1f}")
    for router in routers.values():
        router.close()


if __name__ == "__main__":
    main()
