"""The benchmark harness (`benchmarks/run.py`) runs end to end in its quick mode, prints its table and
writes the JSON it documents, with every row it promises. Nothing here asserts a timing: the numbers
depend on the machine, and the harness reports them, met or missed, for people to read."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
HAS_REDIS = shutil.which("redis-server") is not None
STORES = ("memory", "sqlite", "redis") if HAS_REDIS else ("memory", "sqlite")
STRATEGIES = ("simple-shuffle", "usage-based-routing-v2", "least-busy", "latency-based-routing", "cost-based-routing")
SYNC_STRATEGIES = STRATEGIES[:-1]  # litellm has no synchronous cost-based selector


def expected_keys() -> set[str]:
    keys = {"decision/floor"}
    for n in (2, 10, 100):
        for policy in ("card", "block"):
            keys |= {f"decision/N={n}/policyrouter/{policy}/{kind}" for kind in ("dry-run", *STORES)}
        keys |= {f"decision/N={n}/litellm/{s}/async" for s in STRATEGIES}
        keys |= {f"decision/N={n}/litellm/{s}/sync" for s in SYNC_STRATEGIES}
    keys |= {"completion/litellm/bare", "completion/litellm/router", "completion/litellm/bare-after-router"}
    keys |= {f"completion/policyrouter/{kind}" for kind in STORES}
    for routes in (10, 100, 1000):
        parts = ("registry", "parse", "compile", "parse+compile", "parse+compile-nogc", "load", "deep-lint")
        keys |= {f"compile/{routes}/{part}" for part in parts}
    names = (
        "python",
        "import-policyrouter",
        "check",
        "check-no-cache",
        "explain",
        "explain-no-cache",
        "import-litellm",
    )
    keys |= {f"cli/{name}" for name in names}
    keys |= {"memory/policyrouter", "memory/litellm"}
    return keys


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "run.py"), "--quick", "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout, json.loads(out.read_text(encoding="utf-8"))


def test_every_promised_row_is_there(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, document = quick_run
    keys = [row["key"] for row in document["rows"]]
    assert len(keys) == len(set(keys))
    assert set(keys) == expected_keys()


def test_rows_are_well_formed(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, document = quick_run
    by_key = {row["key"]: row for row in document["rows"]}
    for row in document["rows"]:
        assert row["section"] == row["key"].split("/")[0]
        assert row["median_us"] > 0 and row["p99_us"] >= row["median_us"] and row["samples"] >= 1, row
        if row["vs"] is not None:
            assert row["ratio"] == pytest.approx(row["median_us"] / by_key[row["vs"]]["median_us"])
        if row["section"] in ("cli", "memory"):
            assert row["extra"]["peak_rss_mib"] > 0
    assert by_key["decision/N=10/litellm/simple-shuffle/sync"]["vs"] == "decision/N=10/policyrouter/block/dry-run"
    assert by_key["completion/policyrouter/memory"]["vs"] == "completion/litellm/bare"


def test_targets_and_metadata(quick_run: tuple[str, dict[str, Any]]) -> None:
    _, document = quick_run
    meta = document["meta"]
    assert meta["mode"] == "quick" and meta["litellm"] and meta["cpus"] >= 1
    texts = [t["text"] for t in document["targets"]]
    assert any(t.startswith("decide(), card policy, N=2") for t in texts)
    assert any("≥ 25× faster than litellm's fastest" in t for t in texts)
    assert any(t.startswith("router.completion (memory store)") for t in texts)
    assert any(t.startswith("`policyrouter check policies/`") for t in texts)
    assert any(t.startswith("parse + compile, 1,000 routes") for t in texts)
    for target in document["targets"]:
        assert isinstance(target["met"], bool) and target["measured"]


def test_the_table_is_printed(quick_run: tuple[str, dict[str, Any]]) -> None:
    table, _ = quick_run
    for title in ("1. a routing decision", "2. a whole call", "3. compile", "4. CLI cold start", "5. peak memory"):
        assert title in table
    assert "\ntargets\n" in table
