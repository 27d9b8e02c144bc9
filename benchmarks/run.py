"""policyrouter against litellm's Router, side by side, in one run. See docs/performance.md.

    LITELLM_LOCAL_MODEL_COST_MAP=True python benchmarks/run.py [--quick] [--json PATH]

1. a routing decision: `evaluate.decide` with dry-run facts and with live facts (memory, SQLite, Redis;
   warm cache) vs litellm's `get_available_deployment` / `async_get_available_deployment` by strategy,
   on N = 2, 10, 100 deployments of one model, for the card's policy and a five-clause block;
2. a whole call with `mock_response`: `Router.completion` vs litellm's `Router.completion` vs a bare
   `litellm.completion`;
3. parse + compile of 10 … 10,000 routes (registry loading reported apart);
4. CLI cold start (`check`, `explain`) vs `python -c "import litellm"`: wall time and peak RSS;
5. peak RSS of a process that loads the examples and makes 100k decisions.

Prints a table (median, p99, and each row's ratio to the row named in `vs`), then the issue's targets
met or missed; `--json PATH` writes the same as JSON, to compare across commits.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import policyrouter  # noqa: E402
from benchmarks import measure, peers, workloads  # noqa: E402
from policyrouter.compile import compile_program  # noqa: E402
from policyrouter.decision import Request  # noqa: E402
from policyrouter.evaluate import decide  # noqa: E402
from policyrouter.facts import StaticFacts  # noqa: E402
from policyrouter.lint import lint  # noqa: E402
from policyrouter.parse import parse_policy  # noqa: E402
from policyrouter.registry_schema import load_registry  # noqa: E402
from policyrouter.state import LiveFacts, StateStore, open_store  # noqa: E402

WARM_TTL = 3600.0  # seconds: a "warm cache" never expires during a run


@dataclass(frozen=True)
class Effort:
    """How long things run. `--quick` is a smoke run that checks the harness, not a measurement."""

    sizes: tuple[int, ...] = (2, 10, 100)
    rounds: int = 5  # interleaved rounds per decision case
    batch_s: float = 0.3
    warmup_s: float = 0.2
    call_rounds: int = 6  # the same, for whole calls
    call_batch_s: float = 0.5
    compile_routes: tuple[int, ...] = (10, 100, 1000, 10_000)
    compile_reps: int = 5  # 2 above 1,000 routes; registry loading and `load` once there
    deep_lint_max_routes: int = 1000  # `check`'s deep lints take about 5 s at 10,000 routes: not worth the wait
    cli_reps: int = 7
    import_reps: int = 3
    cli_warmup: bool = True
    probe_decisions: int = 100_000


QUICK = Effort(
    rounds=1,
    batch_s=0.02,
    warmup_s=0.01,
    call_rounds=1,
    call_batch_s=0.1,
    compile_routes=(10, 100, 1000),
    compile_reps=1,
    cli_reps=1,
    import_reps=1,
    cli_warmup=False,
    probe_decisions=10_000,
)


@dataclass
class Row:
    section: str
    key: str  # stable across commits: what `--json` files are compared by
    name: str
    n: int | None
    median_us: float
    p99_us: float  # for the slow rows timed a few times each (compile, CLI): the worst
    samples: int
    vs: str | None = None  # the key of the row the ratio is to
    ratio: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Target:
    text: str
    measured: str
    met: bool
    value: float  # what `met` compares with `limit`
    limit: float


class Results:
    def __init__(self) -> None:
        self.rows: list[Row] = []
        self.targets: list[Target] = []
        self.notes: list[str] = []

    def add(self, row: Row) -> Row:
        self.rows.append(row)
        return row

    def get(self, key: str) -> Row | None:
        return next((r for r in self.rows if r.key == key), None)

    def relate(self, key: str, vs: str) -> None:
        row, ref = self.get(key), self.get(vs)
        if row is not None and ref is not None and ref.median_us > 0:
            row.vs, row.ratio = vs, row.median_us / ref.median_us

    def target(self, text: str, measured: str, value: float, limit: float, *, at_least: bool = False) -> None:
        met = value >= limit if at_least else value <= limit
        self.targets.append(Target(text, measured, met, value, limit))


# -- 1. routing decisions -------------------------------------------------------------------------

FACT_SOURCES = ("dry-run", "memory", "sqlite", "redis")
SOURCE_NAMES = {
    "dry-run": "in-memory facts (StaticFacts)",
    "memory": "live facts, memory:// store, warm",
    "sqlite": "live facts, SQLite store, warm",
    "redis": "live facts, Redis store, warm",
}


@contextmanager
def live_sources(program: Any, tmp: Path, redis_url: str | None) -> Iterator[dict[str, Any]]:
    """For one config: its dry-run facts, and live facts over each store, holding the same state."""
    registry = program.registry
    sources: dict[str, Any] = {"dry-run": StaticFacts(registry, workloads.STATIC_FACTS)}
    stores: list[StateStore] = []
    urls = {"memory": "memory://", "sqlite": f"sqlite:///{tmp / f'{uuid.uuid4().hex[:8]}.db'}"}
    if redis_url:
        urls["redis"] = redis_url
    try:
        for kind, url in urls.items():
            options = {"key_prefix": f"bench-{uuid.uuid4().hex[:8]}:"} if kind == "redis" else {}
            store = open_store(registry, url, run_id="bench", **options)
            stores.append(store)
            workloads.populate(store, registry)
            sources[kind] = LiveFacts(store, ttl=WARM_TTL)
        yield sources
    finally:
        for store in stores:
            store.close()


def decision_section(results: Results, effort: Effort, tmp: Path, redis_url: str | None) -> None:
    request = Request("sonnet", tokens=2000, request_id="bench")
    loop = asyncio.new_event_loop()
    try:
        for n in effort.sizes:
            cases: dict[str, Callable[[], Any]] = {}
            names: dict[str, str] = {}
            if n == effort.sizes[0]:
                cases["decision/floor"] = peers.floor()
                names["decision/floor"] = "floor: filter-and-sort 10 dicts (plain Python)"
            with (
                _policy_sources(n, "card", tmp, redis_url) as (card, card_sources),
                _policy_sources(n, "block", tmp, redis_url) as (block, block_sources),
            ):
                for policy, program, sources in (("card", card, card_sources), ("block", block, block_sources)):
                    for kind in FACT_SOURCES:
                        if kind not in sources:
                            continue
                        key = f"decision/N={n}/policyrouter/{policy}/{kind}"
                        source = sources[kind]
                        if kind == "dry-run":
                            cases[key] = lambda p=program, s=source: decide(p, request, s)
                        else:  # as `Router.decide` does: a view pinned to one instant per decision
                            cases[key] = lambda p=program, s=source: decide(p, request, s.for_decision())
                        names[key] = f"policyrouter decide(), {policy} policy, {SOURCE_NAMES[kind]}"
                for strategy in peers.STRATEGIES:
                    router = peers.litellm_router(n, strategy)
                    if strategy in peers.SYNC_STRATEGIES:
                        key = f"decision/N={n}/litellm/{strategy}/sync"
                        cases[key] = peers.pick_sync(router)
                        names[key] = f"litellm get_available_deployment, {strategy}"
                    key = f"decision/N={n}/litellm/{strategy}/async"
                    cases[key] = peers.pick_async(router)  # type: ignore[assignment]
                    names[key] = f"litellm async_get_available_deployment, {strategy}"
                stats = measure.interleaved(
                    cases, rounds=effort.rounds, batch_seconds=effort.batch_s, warmup_seconds=effort.warmup_s, loop=loop
                )
            for key, s in stats.items():
                results.add(Row("decision", key, names[key], None if key == "decision/floor" else n, *_stat(s)))
            prefix = f"decision/N={n}"
            for policy in ("card", "block"):
                results.relate(f"{prefix}/policyrouter/{policy}/dry-run", "decision/floor")
                for kind in FACT_SOURCES[1:]:
                    results.relate(f"{prefix}/policyrouter/{policy}/{kind}", f"{prefix}/policyrouter/{policy}/dry-run")
            for key in stats:
                if "/litellm/" in key:
                    results.relate(key, f"{prefix}/policyrouter/block/dry-run")
    finally:
        loop.close()


@contextmanager
def _policy_sources(n: int, policy: str, tmp: Path, redis_url: str | None) -> Iterator[tuple[Any, dict[str, Any]]]:
    config = workloads.write_config(
        tmp / f"decide-{policy}-{n}", workloads.deployments_registry(n, policy), workloads.POLICIES[policy]
    )
    program = policyrouter.load(config).program
    with live_sources(program, tmp, redis_url) as sources:
        yield program, sources


def _stat(s: measure.Stats) -> tuple[float, float, int]:
    return s.median_us, s.p99_us, s.samples


# -- 2. a whole call ------------------------------------------------------------------------------


def completion_section(results: Results, effort: Effort, tmp: Path, redis_url: str | None) -> None:
    """Runs before anything else has made a litellm Router: creating one registers callbacks in
    litellm's globals that every later `litellm.completion` runs (measured below, as its own row)."""
    config = workloads.write_config(
        tmp / "completion", workloads.deployments_registry(2, "card"), workloads.POLICIES["card"]
    )
    stores = {"memory": "memory://", "sqlite": f"sqlite:///{tmp / 'completion.db'}"}
    if redis_url:
        stores["redis"] = redis_url
    routers = {kind: policyrouter.load(config, state=url) for kind, url in stores.items()}
    bare = "completion/litellm/bare"
    cases: dict[str, Callable[[], Any]] = {bare: peers.bare_completion()}
    names = {bare: "bare litellm.completion (no litellm Router in the process yet)"}
    for kind, router in routers.items():
        key = f"completion/policyrouter/{kind}"
        cases[key] = lambda r=router: r.completion("sonnet", workloads.MESSAGES, mock_response="ok")
        names[key] = f"policyrouter Router.completion, {kind} store"
    stats = measure.interleaved(
        cases, rounds=effort.call_rounds, batch_seconds=effort.call_batch_s, warmup_seconds=effort.warmup_s
    )
    # litellm's own Router: from here on, its callbacks run in every litellm.completion of the process
    litellm_router = peers.litellm_router(2, "simple-shuffle")
    after = "completion/litellm/bare-after-router"
    later = {
        "completion/litellm/router": peers.router_completion(litellm_router),
        after: cases[bare],
    }
    names["completion/litellm/router"] = "litellm Router.completion, simple-shuffle, N=2"
    names[after] = "bare litellm.completion, once a litellm Router exists"
    time.sleep(0.5)  # let litellm's logging threads finish the first phase's work
    stats.update(
        measure.interleaved(
            later, rounds=effort.call_rounds, batch_seconds=effort.call_batch_s, warmup_seconds=effort.warmup_s
        )
    )
    for key, s in stats.items():
        results.add(Row("completion", key, names[key], 2, *_stat(s)))
        if key != bare:
            results.relate(key, bare)
    for router in routers.values():
        router.close()
    time.sleep(0.5)


# -- 3. compile -----------------------------------------------------------------------------------


def compile_section(results: Results, effort: Effort, tmp: Path) -> None:
    parse_policy("route warmup fallback warmup2\n", "<warm-up>")  # builds the LALR parser once
    previous: int | None = None
    for routes in effort.compile_routes:
        compile_size(results, effort, tmp / f"compile-{routes}", routes, previous)
        previous = routes


def compile_size(results: Results, effort: Effort, directory: Path, routes: int, previous: int | None) -> None:
    """The compile rows of one size: a registry of `routes` models and a policy with a route each."""
    directory.mkdir()
    registry_path = directory / "registry.yaml"
    registry_path.write_text(workloads.compile_registry(routes), encoding="utf-8")
    text = workloads.compile_policy(routes)
    (directory / "main.policy").write_text(text, encoding="utf-8")
    big = routes > 1000
    reps = min(2, effort.compile_reps) if big else effort.compile_reps

    registry = load_registry(registry_path)
    files = [parse_policy(text, "main.policy")]
    program, diagnostics = compile_program(registry, files)
    if program is None:
        raise RuntimeError(f"the {routes}-route workload does not compile: {diagnostics[:3]}")

    def parse_and_compile() -> object:
        return compile_program(registry, [parse_policy(text, "main.policy")])

    def without_gc() -> object:
        gc.disable()
        try:
            return parse_and_compile()
        finally:
            gc.enable()

    rows: dict[str, tuple[str, Callable[[], object], int]] = {
        "registry": ("load registry.yaml (ruamel + pydantic + build)", lambda: load_registry(registry_path), reps),
        "parse": ("parse the policy", lambda: parse_policy(text, "main.policy"), reps),
        "compile": ("compile (registry loaded, policy parsed)", lambda: compile_program(registry, files), reps),
        "parse+compile": ("parse + compile (registry loaded)", parse_and_compile, reps),
        "parse+compile-nogc": ("parse + compile, gc disabled (to show gc's share)", without_gc, reps),
        "load": ("policyrouter.load(DIR): registry + parse + compile + lints", lambda: load_dir(directory), reps),
    }
    if routes <= effort.deep_lint_max_routes:
        rows["deep-lint"] = ("deep lints (what `check` adds to load)", lambda: lint(program, files), reps)
    if big:  # the slowest rows, once: the loads above were their warm-up
        rows["registry"] = (*rows["registry"][:2], 1)
        rows["load"] = (*rows["load"][:2], 1)
    for part, (label, fn, times) in rows.items():
        s = measure.repeat(fn, times)
        key = f"compile/{routes}/{part}"
        row = results.add(Row("compile", key, f"{label}, {routes:,} routes", routes, *_stat(s)))
        row.extra["us_per_route"] = s.median_us / routes
        if previous is not None:
            results.relate(key, f"compile/{previous}/{part}")


def load_dir(directory: Path) -> object:
    return policyrouter.load(directory)


def compile_in_child(results: Results, quick: bool, tmp: Path) -> None:
    out = tmp / "compile.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--only", "compile", "--json", str(out)]
    done = subprocess.run(argv + (["--quick"] if quick else []), env=child_env(), cwd=ROOT, capture_output=True)
    if done.returncode != 0:
        raise RuntimeError(f"the compile benchmark failed: {done.stderr.decode(errors='replace')[-2000:]}")
    for row in json.loads(out.read_text(encoding="utf-8"))["rows"]:
        results.add(Row(**row))
    results.notes.append("compile rows ran in a child process without litellm imported, as `load` and `check` do")


# -- 4. CLI cold start, 5. memory -----------------------------------------------------------------


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    return env


EXPLAIN_ARGS = ("--config", "policies/subscriptions", "--fact", "quota.work=15%")


def cli_section(results: Results, effort: Effort, tmp: Path) -> None:
    """Each command in a fresh process. `check` and `explain` run twice over: with their file cache
    (filled by the warm-up run, as after any earlier run on unchanged files) and with it turned off
    (`POLICYROUTER_NO_CACHE=1`: every file read, as on a fresh machine or after an edit)."""
    python = sys.executable
    no_cache = {"POLICYROUTER_NO_CACHE": "1"}
    commands: dict[str, tuple[str, list[str], int, dict[str, str]]] = {
        "cli/python": ("python -c pass (the interpreter alone)", [python, "-c", "pass"], effort.cli_reps, {}),
        "cli/import-policyrouter": (
            'python -c "import policyrouter"',
            [python, "-c", "import policyrouter"],
            effort.cli_reps,
            {},
        ),
    }
    check = [python, "-m", "policyrouter.cli", "check", "policies/"]
    explain = [python, "-m", "policyrouter.cli", "explain", "sonnet", *EXPLAIN_ARGS]
    for key, label, argv in (
        ("check", "policyrouter check policies/", check),
        ("explain", "policyrouter explain sonnet --config policies/subscriptions --fact quota.work=15%", explain),
    ):
        commands[f"cli/{key}"] = (label, argv, effort.cli_reps, {})
        commands[f"cli/{key}-no-cache"] = (f"{label}, file cache off", argv, effort.cli_reps, no_cache)
    commands["cli/import-litellm"] = (
        'python -c "import litellm"',
        [python, "-c", "import litellm"],
        effort.import_reps,
        {},
    )
    base = {**child_env(), "XDG_CACHE_HOME": str(tmp / "xdg-cache")}  # not the user's cache
    for key, (label, argv, reps, extra) in commands.items():
        env = {**base, **extra}
        if effort.cli_warmup:
            measure.run_child(argv, env=env, cwd=str(ROOT))  # warm-up: page cache, bytecode and file caches
        runs = [measure.run_child(argv, env=env, cwd=str(ROOT)) for _ in range(reps)]
        failed = [r for r in runs if r.returncode != 0]
        if failed:
            raise RuntimeError(f"`{label}` exited {failed[0].returncode}: {failed[0].stderr[-2000:]}")
        walls = [r.wall_s * 1e6 for r in runs]
        rss = [r.peak_rss_mib for r in runs]
        row = Row("cli", key, label, None, statistics.median(walls), max(walls), reps)
        row.extra = {"peak_rss_mib": max(rss), "peak_rss_mib_median": statistics.median(rss)}
        results.add(row)
    for key in commands:
        if key != "cli/import-litellm":
            results.relate(key, "cli/import-litellm")


def memory_section(results: Results, effort: Effort, tmp: Path) -> None:
    probe = str(ROOT / "benchmarks" / "memory_probe.py")
    for side, label in (
        ("policyrouter", "policyrouter: load the 4 shipped examples"),
        ("litellm", "litellm: import, Router over 2 deployments"),
    ):
        out = tmp / f"probe-{side}.json"
        argv = [sys.executable, probe, side, "--decisions", str(effort.probe_decisions), "--out", str(out)]
        child = measure.run_child(argv, env=child_env(), cwd=str(ROOT))
        if child.returncode != 0:
            raise RuntimeError(f"the {side} memory probe exited {child.returncode}: {child.stderr[-2000:]}")
        seen = json.loads(out.read_text(encoding="utf-8"))
        row = Row(
            "memory",
            f"memory/{side}",
            f"{label}, then {effort.probe_decisions:,} decisions",
            None,
            child.wall_s * 1e6,
            child.wall_s * 1e6,
            1,
        )
        row.extra = {"peak_rss_mib": child.peak_rss_mib, **{k: v for k, v in seen.items() if k != "side"}}
        results.add(row)
    results.relate("memory/policyrouter", "memory/litellm")


# -- targets --------------------------------------------------------------------------------------


def check_targets(results: Results, effort: Effort) -> None:
    """The issue's targets, each against what this run measured (medians; ratios within this run)."""

    def median(key: str) -> float | None:
        row = results.get(key)
        return row.median_us if row is not None else None

    for n, policy, limit in ((2, "card", 5.0), (10, "block", 20.0), (100, "block", 100.0)):
        value = median(f"decision/N={n}/policyrouter/{policy}/dry-run")
        if value is not None:
            text = f"decide(), {policy} policy, N={n}, in-memory facts: median ≤ {limit:g} µs"
            results.target(text, f"{value:.2f} µs", value, limit)
    for n in effort.sizes:
        litellm_rows = [r for r in results.rows if r.key.startswith(f"decision/N={n}/litellm/")]
        if not litellm_rows:
            continue
        fastest = min(litellm_rows, key=lambda r: r.median_us)
        for policy in ("card", "block"):
            ours = median(f"decision/N={n}/policyrouter/{policy}/dry-run")
            if ours is not None:
                results.target(
                    f"N={n}, {policy} policy, in-memory facts: ≥ 25× faster than litellm's fastest "
                    f"({_short(fastest.key)})",
                    f"{fastest.median_us / ours:.1f}× ({fastest.median_us:.1f} µs vs {ours:.2f} µs)",
                    fastest.median_us / ours,
                    25,
                    at_least=True,
                )
        live = [
            f"{policy} {fastest.median_us / value:.2f}×"
            for policy in ("card", "block")
            if (value := median(f"decision/N={n}/policyrouter/{policy}/sqlite")) is not None
        ]
        if live:
            results.notes.append(
                f"N={n}: with live SQLite facts (warm), litellm's fastest / policyrouter = {', '.join(live)}"
                " (below 1×: policyrouter is the slower)"
            )
    for n in effort.sizes:
        for policy in ("card", "block"):
            base = median(f"decision/N={n}/policyrouter/{policy}/dry-run")
            for kind in ("sqlite", "redis"):
                value = median(f"decision/N={n}/policyrouter/{policy}/{kind}")
                if base is not None and value is not None:
                    results.target(
                        f"N={n}, {policy} policy, {kind} facts (warm cache): ≤ 2× in-memory",
                        f"{value / base:.2f}× ({value:.2f} µs vs {base:.2f} µs)",
                        value / base,
                        2,
                    )
    bare = median("completion/litellm/bare")
    if bare is not None:
        for kind in ("memory", "sqlite", "redis"):
            value = median(f"completion/policyrouter/{kind}")
            if value is not None:
                results.target(
                    f"router.completion ({kind} store) ≤ 1.10× bare litellm.completion",
                    f"{value / bare:.3f}× ({value:.0f} µs vs {bare:.0f} µs)",
                    value / bare,
                    1.10,
                )
        value = median("completion/litellm/router")
        if value is not None:
            results.notes.append(f"litellm's Router.completion: {value / bare:.2f}× bare (the issue says about 2.8×)")
    litellm_import = results.get("cli/import-litellm")
    for key, how in (("cli/check-no-cache", "file cache off"), ("cli/check", "file cache warm")):
        check = results.get(key)
        if check is None:
            continue
        wall = check.median_us / 1e6
        rss = check.extra["peak_rss_mib"]
        results.target(f"`policyrouter check policies/` ({how}): ≤ 0.3 s wall (median)", f"{wall:.3f} s", wall, 0.3)
        results.target(f"`policyrouter check policies/` ({how}): ≤ 60 MiB peak RSS", f"{rss:.1f} MiB", rss, 60)
        if litellm_import is not None:
            speedup = litellm_import.median_us / check.median_us
            results.target(
                f"`check` ({how}): ≥ 15× faster than `import litellm`",
                f"{speedup:.1f}× ({wall:.3f} s vs {litellm_import.median_us / 1e6:.2f} s)",
                speedup,
                15,
                at_least=True,
            )
    thousand = median("compile/1000/parse+compile")
    if thousand is not None:
        results.target("parse + compile, 1,000 routes: ≤ 0.5 s", f"{thousand / 1e6:.3f} s", thousand / 1e6, 0.5)
    ten_thousand = median("compile/10000/parse+compile")
    if thousand is not None and ten_thousand is not None:
        results.target(
            "parse + compile grows linearly to 10,000 routes (≤ 12× the time of 1,000 for 10× the routes)",
            f"{ten_thousand / thousand:.1f}× ({ten_thousand / 1e6:.2f} s)",
            ten_thousand / thousand,
            12,
        )


def compare(results: Results, path: str) -> str:
    """Each row's median against the same key in an earlier `--json` file."""
    old = {r["key"]: r for r in json.loads(Path(path).read_text(encoding="utf-8"))["rows"]}
    lines = [f"against {path} (new / old median)"]
    width = max(len(r.key) for r in results.rows) + 2
    for r in results.rows:
        before = old.get(r.key)
        if before is not None and before["median_us"] > 0:
            change = r.median_us / before["median_us"]
            lines.append(
                f"  {r.key:<{width}} {format_time(before['median_us']):>10} → {format_time(r.median_us):>10}"
                f"  {change:.2f}×"
            )
    return "\n".join(lines) + "\n"


def _short(key: str) -> str:
    return "/".join(key.split("/")[-2:])


# -- output ---------------------------------------------------------------------------------------

SECTIONS = {
    "decision": "1. a routing decision (ratio: policyrouter live facts vs its in-memory facts; in-memory vs the "
    "floor; litellm vs policyrouter's block policy, in-memory, same N)",
    "completion": "2. a whole call with mock_response (ratio: vs bare litellm.completion)",
    "compile": "3. compile (ratio: vs the same step at 10× fewer routes)",
    "cli": "4. CLI cold start, subprocess (ratio: vs `import litellm`)",
    "memory": "5. peak memory of a process, subprocess (ratio of wall time: vs litellm)",
}


def format_time(us: float) -> str:
    if us < 1000:
        return f"{us:.2f} µs" if us < 100 else f"{us:.0f} µs"
    if us < 1e6:
        return f"{us / 1000:.1f} ms" if us < 1e5 else f"{us / 1000:.0f} ms"
    return f"{us / 1e6:.2f} s"


def render(results: Results, meta: dict[str, Any]) -> str:
    lines = [
        f"policyrouter {policyrouter.__version__} vs litellm {meta['litellm']}, Python {meta['python']}, "
        f"{meta['cpus']} CPUs, {meta['mode']} run, {meta['seconds']:.0f} s",
        "",
    ]
    width = max(len(r.name) for r in results.rows) + 2
    for section, title in SECTIONS.items():
        rows = [r for r in results.rows if r.section == section]
        if not rows:
            continue
        lines.append(title)
        extra_head = {"cli": "peak RSS", "memory": "peak RSS"}.get(section, "samples")
        lines.append(f"  {'case':<{width}} {'N':>6} {'median':>10} {'p99/max':>10} {'ratio':>9}  {extra_head:>9}  vs")
        last_n: int | None = None
        for r in rows:
            if section == "decision" and r.n != last_n and last_n is not None:
                lines.append("")
            last_n = r.n
            ratio = f"{r.ratio:.2f}×" if r.ratio is not None else ""
            rss = section in ("cli", "memory")
            extra = f"{r.extra['peak_rss_mib']:.0f} MiB" if rss else f"{r.samples:,}"
            n = "" if r.n is None else str(r.n)
            vs = _short(r.vs) if r.vs else ""
            lines.append(
                f"  {r.name:<{width}} {n:>6} {format_time(r.median_us):>10} {format_time(r.p99_us):>10} "
                f"{ratio:>9}  {extra:>9}  {vs}"
            )
        lines.append("")
    if results.targets:
        lines.append("targets")
        for t in results.targets:
            lines.append(f"  {'met   ' if t.met else 'MISSED'}  {t.text}: {t.measured}")
        lines.append("")
    lines += [f"note: {note}" for note in results.notes]
    return "\n".join(lines).rstrip() + "\n"


def git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short smoke run (~1 min): fewer sizes, samples")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON to PATH")
    parser.add_argument("--compare", metavar="PATH", help="show each row against an earlier --json file")
    parser.add_argument(
        "--only",
        action="append",
        choices=tuple(SECTIONS),
        help="run only this section (repeatable); default: all",
    )
    args = parser.parse_args(argv)
    effort = QUICK if args.quick else Effort()
    sections = set(args.only or SECTIONS)
    os.environ.setdefault(workloads.API_KEY_ENV, "sk-bench-not-a-real-key")

    started = time.perf_counter()
    results = Results()
    uses_litellm = bool(sections & {"completion", "decision"})
    if uses_litellm:
        peers.import_litellm()
        gc.collect()
    with tempfile.TemporaryDirectory(prefix="policyrouter-bench-") as tmp_name:
        tmp = Path(tmp_name)
        if "compile" in sections:
            if uses_litellm:
                # in a child without litellm, as `load` and `check` run: litellm's million objects would
                # make each full collection that compiling triggers cost ~0.1 s, in this process only
                compile_in_child(results, args.quick, tmp)
            else:
                compile_section(results, effort, tmp)
        with measure.redis_server() if uses_litellm else nullcontext() as redis_url:
            if uses_litellm and redis_url is None:
                results.notes.append("redis-server is not installed: the Redis rows are skipped")
            # the whole-call rows first: a litellm Router, once made, slows every later litellm.completion
            if "completion" in sections:
                completion_section(results, effort, tmp, redis_url)
            if "decision" in sections:
                decision_section(results, effort, tmp, redis_url)
        if "cli" in sections:
            cli_section(results, effort, tmp)
        if "memory" in sections:
            memory_section(results, effort, tmp)
    order = list(SECTIONS)
    results.rows.sort(key=lambda r: order.index(r.section))  # stable: keeps each section's order
    check_targets(results, effort)
    meta = {
        "policyrouter": policyrouter.__version__,
        "litellm": peers.litellm_version(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "mode": "quick" if args.quick else "full",
        "sections": [s for s in SECTIONS if s in sections],
        "commit": git_commit(),
        "timer_overhead_ns": measure.timer_overhead_ns(),
        "launcher_rss_mib": measure.launcher_rss_mib(),
        "seconds": time.perf_counter() - started,
        "command": " ".join(["python", "benchmarks/run.py", *(argv if argv is not None else sys.argv[1:])]),
    }
    print(render(results, meta), end="")
    if args.compare:
        print("\n" + compare(results, args.compare), end="")
    if args.json:
        document = {
            "meta": meta,
            "rows": [asdict(r) for r in results.rows],
            "targets": [asdict(t) for t in results.targets],
            "notes": results.notes,
        }
        Path(args.json).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
