"""How long a routing decision takes on the shipped examples, with dry-run facts.

    python benchmarks/bench_decide.py

The peer, measured in the same run, is the floor a decision can approach: a plain-Python
filter-and-sort of ten dicts. Prints medians in microseconds and the ratio to the floor.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import policyrouter  # noqa: E402
from benchmarks.workloads import EXAMPLE_REQUESTS  # noqa: E402
from policyrouter.decision import Request  # noqa: E402
from policyrouter.evaluate import decide  # noqa: E402
from policyrouter.facts import StaticFacts  # noqa: E402


def per_call_us(fn: Callable[[], object], calls: int = 2000, repeats: int = 15) -> tuple[float, float]:
    """Median and worst of `repeats` batches, in microseconds per call."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            fn()
        samples.append((time.perf_counter() - start) / calls * 1e6)
    return statistics.median(samples), max(samples)


def floor_peer() -> Callable[[], object]:
    rows = [{"provider": f"p{i}", "quota": (i * 37) % 100 / 100, "ok": i % 3 != 0} for i in range(10)]
    return lambda: sorted((r for r in rows if r["ok"]), key=lambda r: -r["quota"])


def cases() -> list[tuple[str, Callable[[], object]]]:
    out = []
    for directory, model, facts, tokens in EXAMPLE_REQUESTS:
        router = policyrouter.load(ROOT / "policies" / directory)
        source = StaticFacts(router.registry, facts)
        request = Request(model, tokens=tokens)
        program = router.program
        out.append((f"decide {directory} ({model})", lambda p=program, r=request, s=source: decide(p, r, s)))
    return out


def main() -> None:
    floor, _ = per_call_us(floor_peer())
    print(f"{'case':<40} {'median µs':>10} {'max µs':>10} {'× floor':>8}")
    print(f"{'floor: filter-and-sort 10 dicts':<40} {floor:>10.2f} {'':>10} {1.0:>8.1f}")
    for name, fn in cases():
        median, worst = per_call_us(fn)
        print(f"{name:<40} {median:>10.2f} {worst:>10.2f} {median / floor:>8.1f}")


if __name__ == "__main__":
    main()
