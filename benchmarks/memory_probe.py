"""A process to measure peak memory in: load, then make many decisions. `run.py` starts it and reads
its peak RSS from `wait4`; the probe writes what it saw along the way as JSON to `--out`.

    python benchmarks/memory_probe.py policyrouter --decisions 100000 --out probe.json
    python benchmarks/memory_probe.py litellm --decisions 100000 --out probe.json

`policyrouter`: load the four shipped example configs and decide, in turn, one request per example
(`workloads.EXAMPLE_REQUESTS`, as `bench_decide.py` decides them), through `Router.decide` with
dry-run facts. `litellm`: import litellm and ask a `Router` over two deployments (simple-shuffle) for
a deployment, as many times.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def policyrouter_decider() -> Callable[[int], object]:
    import policyrouter
    from benchmarks.workloads import EXAMPLE_REQUESTS
    from policyrouter.facts import StaticFacts

    cases = []
    for directory, model, facts, tokens in EXAMPLE_REQUESTS:
        router = policyrouter.load(ROOT / "policies" / directory)
        cases.append((router, model, StaticFacts(router.registry, facts), tokens))

    def decide(i: int) -> object:
        router, model, source, tokens = cases[i % len(cases)]
        return router.decide(model, tokens=tokens, facts=source)

    return decide


def litellm_decider() -> Callable[[int], object]:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from benchmarks.workloads import MESSAGES, litellm_model_list

    litellm.suppress_debug_info = True
    router = litellm.Router(model_list=litellm_model_list(2), routing_strategy="simple-shuffle")
    return lambda i: router.get_available_deployment("sonnet", messages=MESSAGES)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("side", choices=("policyrouter", "litellm"))
    parser.add_argument("--decisions", type=int, default=100_000)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()

    seen: dict[str, object] = {"side": args.side, "decisions": args.decisions, "peak_mib_at_start": peak_mib()}
    start = time.perf_counter()
    decide = policyrouter_decider() if args.side == "policyrouter" else litellm_decider()
    seen["load_s"] = time.perf_counter() - start
    seen["peak_mib_after_load"] = peak_mib()
    start = time.perf_counter()
    for i in range(args.decisions):
        decide(i)
    seen["decide_s"] = time.perf_counter() - start
    seen["peak_mib_after_decisions"] = peak_mib()
    seen["litellm_imported"] = "litellm" in sys.modules
    Path(args.out).write_text(json.dumps(seen), encoding="utf-8")


if __name__ == "__main__":
    main()
