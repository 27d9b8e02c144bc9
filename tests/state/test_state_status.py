"""`status_report`: the table, compared verbatim, and the JSON built from the same data."""

from __future__ import annotations

import json

import pytest
from state_helpers import FakeClock, StoreFactory, deployment, make_registry

from policyrouter.state import StateError, StateStore, status_report
from policyrouter.state.memory import MemoryStore

EXPECTED_TABLE = """\
state: memory://   run: r1   now: 2024-03-15 11:00:00 CET

KIND           NAME           WINDOW  USED         RESERVED   LIMIT       LEFT    RESETS
quota          work           5h      2.5k tokens  1k tokens  10k tokens  65%     2024-03-15 13:00:00 CET (in 2h)
quota          personal       5h      0 tokens     -          2M tokens   100%    2024-03-15 13:00:00 CET (in 2h)
budget         run            run     $0.42        $0.10      $5.00       89.6%   with the run
budget (soft)  month          month   $0.42        $0.10      $200.00     99.74%  2024-04-01 00:00:00 CEST (in 16d 12h)
budget         openai         month   $0.00        -          $10.00      100%    2024-04-01 00:00:00 CEST (in 16d 12h)
rpm            work           1m      1            1          50          96%     2024-03-15 11:01:00 CET (in 1m)
rpm            gpt-4o@openai  1m      1            -          60          98.33%  2024-03-15 11:01:00 CET (in 1m)

PROVIDER  ERRORS  COOLDOWN  IN FLIGHT  LATENCY
work      0       -         1          1.25s
personal  0       -         0          -
openai    1       1.5m      0          -
local     0       -         0          -

RUN  SPENT  RESERVED
r1   $0.42  $0.10"""


def busy_store(store: StateStore) -> StateStore:
    registry = store.registry
    work = deployment(registry, "sonnet@work")
    r = store.reserve(work, tokens=3000, cost=0.5)
    store.settle(r, input_tokens=2000, output_tokens=500, cost=0.42, latency=1.25)
    store.reserve(work, tokens=1000, cost=0.1)  # still in flight
    store.release(store.reserve(deployment(registry, "gpt-4o@openai"), tokens=10, cost=0.01), error="HTTP 500")
    store.cooldown("openai", 90)
    return store


def test_status_table(clock: FakeClock) -> None:
    registry = make_registry(work_rpm=50)
    store = busy_store(MemoryStore(registry, clock=clock, run_id="r1"))
    assert status_report(registry, store) == EXPECTED_TABLE


def test_status_json_has_the_same_data(store_factory: StoreFactory, clock: FakeClock) -> None:
    registry = make_registry(work_rpm=50)
    store = busy_store(store_factory(registry, clock=clock, run_id="r1"))
    data = json.loads(status_report(registry, store, "json"))
    assert data["run_id"] == "r1" and data["now"] == "2024-03-15T11:00:00+01:00"
    limits = {(x["kind"], x["name"]): x for x in data["limits"]}
    assert list(limits) == [
        ("quota", "work"),
        ("quota", "personal"),
        ("budget", "run"),
        ("budget", "month"),
        ("budget", "openai"),
        ("rpm", "work"),
        ("rpm", "gpt-4o@openai"),
    ]
    work = limits["quota", "work"]
    assert (work["used"], work["reserved"], work["limit"], work["share_left"]) == (2500, 1000, 10_000, 0.65)
    assert work["resets_at"] == "2024-03-15T13:00:00+01:00" and work["unit"] == "tokens"
    assert limits["budget", "run"]["resets_at"] is None and limits["budget", "run"]["hard"] is True
    assert limits["budget", "month"]["hard"] is False
    assert limits["budget", "month"]["used"] == pytest.approx(0.42)
    providers = {p["name"]: p for p in data["providers"]}
    assert providers["openai"] == {
        "name": "openai",
        "errors": 1,
        "cooldown_seconds": 90.0,
        "in_flight": 0,
        "latency_seconds": None,
    }
    assert providers["work"]["in_flight"] == 1 and providers["work"]["latency_seconds"] == 1.25


def test_status_shows_a_named_run_and_drops_expired_holds(clock: FakeClock) -> None:
    registry = make_registry()
    store = MemoryStore(registry, clock=clock, run_id="mine", reservation_ttl=60)
    work = deployment(registry, "sonnet@personal")
    store.settle(store.reserve(work, tokens=1, cost=2, run_id="batch-7"), input_tokens=1, output_tokens=1, cost=2)
    store.reserve(work, tokens=1, cost=1)
    run = {x["name"]: x for x in json.loads(status_report(registry, store, "json", run_id="batch-7"))["limits"]}["run"]
    assert (run["used"], run["reserved"]) == (2, 0)
    clock.advance(61)
    month = {x["name"]: x for x in json.loads(status_report(registry, store, "json"))["limits"]}["month"]
    assert (month["used"], month["reserved"]) == (2, 0)  # the expired hold is gone


def test_status_lists_the_runs_that_spent_most_first(store_factory: StoreFactory, clock: FakeClock) -> None:
    # A run is the process unless named: `status` lists the runs in the store, so a batch job's spend
    # can be found without knowing its run id. A run whose only call failed spent nothing: not listed.
    registry = make_registry()
    store = store_factory(registry, clock=clock, run_id="status-itself")
    work = deployment(registry, "sonnet@personal")
    for i in range(13):
        held = store.reserve(work, tokens=1, cost=1, run_id=f"batch-{i:02}")
        store.settle(held, input_tokens=1, output_tokens=1, cost=0.5 + i)
    store.release(store.reserve(work, tokens=1, cost=1, run_id="failed"), error="HTTP 500")
    for cost in (0.1, 0.2):  # released, its holds come back to float noise (2.8e-17), not 0: not listed
        store.release(store.reserve(work, tokens=1, cost=cost, run_id="noise"))
    store.reserve(work, tokens=1, cost=0.25, run_id="in-flight")
    data = json.loads(status_report(registry, store, "json"))
    listed = [(r["run_id"], r["spent"], r["reserved"]) for r in data["runs"]]
    assert listed == [*((f"batch-{i:02}", 0.5 + i, 0.0) for i in reversed(range(13))), ("in-flight", 0.0, 0.25)]
    table = status_report(registry, store).split("\n\nRUN ")[1].splitlines()
    assert table[1].split() == ["batch-12", "$12.50", "-"] and len(table) == 1 + 10 + 1
    assert table[-1] == "… and 4 more runs (all of them in `--format json`)"


def test_status_of_a_registry_without_limits(clock: FakeClock) -> None:
    registry = make_registry()
    bare = type(registry)(registry.settings, {"local": registry.providers["local"]}, {}, {})
    text = status_report(bare, MemoryStore(bare, clock=clock, run_id="r"))
    assert "no quotas, budgets or rate limits in the registry" in text
    with pytest.raises(ValueError, match="table"):
        status_report(bare, MemoryStore(bare, clock=clock), "yaml")


def test_status_of_a_state_it_cannot_write_shows_expired_holds_as_they_are(clock: FakeClock) -> None:
    # `status` only reads, yet failed on a read-only state file whenever a lease had expired: it drops them
    registry = make_registry()
    store = MemoryStore(registry, clock=clock, reservation_ttl=60)
    store.reserve(deployment(registry, "sonnet@personal"), tokens=1, cost=1)
    clock.advance(61)

    def read_only(now: float) -> int:
        raise StateError(store.url, "cannot write `state.db` (attempt to write a readonly database)")

    store._reap = read_only  # type: ignore[method-assign]
    month = {x["name"]: x for x in json.loads(status_report(registry, store, "json"))["limits"]}["month"]
    assert (month["used"], month["reserved"]) == (0, 1)
