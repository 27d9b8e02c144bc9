"""`examples/route_calls.py` with the shipped policies, every provider pointed at the loopback server."""

from __future__ import annotations

import io
import json
import runpy
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from loopback_server import LoopbackLLM, ok, server_error
from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parents[2]
MAIN: Callable[..., int] = runpy.run_path(str(ROOT / "examples" / "route_calls.py"))["main"]


def loopback_copy(name: str, llm: LoopbackLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """policies/NAME copied, its providers made OpenAI-compatible ones on the loopback server, each with
    a key variable set to a planted value. The policies and decision tests are copied unchanged."""
    target = tmp_path / name
    shutil.copytree(ROOT / "policies" / name, target)
    yaml = YAML()
    registry = yaml.load(target / "registry.yaml")
    for provider, spec in registry["providers"].items():
        spec["litellm_provider"] = "openai"
        spec["base_url"] = llm.url(provider)
        spec.setdefault("api_key_env", f"PR_TEST_KEY_{provider.upper()}")
        monkeypatch.setenv(spec["api_key_env"], f"sk-planted-{provider}-0123456789")
    yaml.dump(registry, target / "registry.yaml")
    return target


def test_the_example_routes_calls_with_the_subscriptions_policy(
    llm: LoopbackLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = loopback_copy("subscriptions", llm, tmp_path, monkeypatch)
    llm.default("work", ok("from the work plan", prompt_tokens=10, completion_tokens=20))
    events = tmp_path / "events.jsonl"
    out = io.StringIO()

    status = MAIN([str(config), "--run", "example-1", "--events", str(events), "hello", "again"], out)

    assert status == 0
    lines = out.getvalue().splitlines()
    assert lines[:2] == ["[sonnet@work] from the work plan"] * 2
    cost = 2 * (10 * 3.00 + 20 * 15.00) / 1e6
    assert lines[2] == f"run example-1: spent ${cost:.6f}"
    kinds = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert kinds == ["decision", "attempt", "success"] * 2
    assert (config / ".policyrouter" / "state.db").is_file()  # the registry's own SQLite store


def test_the_example_walks_the_swe_agent_chain_during_an_outage(
    llm: LoopbackLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = loopback_copy("swe-agent", llm, tmp_path, monkeypatch)
    llm.default("openai", server_error(503))
    llm.default("google", server_error(502))
    llm.default("local", ok("local model here"))
    out = io.StringIO()

    status = MAIN(
        [str(config), "--model", "gpt-4o", "--stream", "--state", "memory://", "--backoff", "0.001", "fix the bug"], out
    )

    assert status == 0
    assert out.getvalue().splitlines()[0] == "[local-coder@local] local model here"
    assert [c.provider for c in llm.calls()] == ["openai"] * 3 + ["google"] * 3 + ["local"]


def test_the_example_stops_a_run_at_its_hard_budget(
    llm: LoopbackLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: Any
) -> None:
    config = loopback_copy("subscriptions", llm, tmp_path, monkeypatch)  # run budget: $5, hard
    llm.default("work", ok(prompt_tokens=100_000, completion_tokens=100_000))  # $1.80 a call
    out = io.StringIO()

    # each call is estimated at $1.50 (its max_tokens): the third would pass $5 on top of $3.60
    status = MAIN([str(config), "--state", "memory://", "--max-tokens", "100000", "a", "b", "c", "d"], out)

    assert status == 2
    assert out.getvalue().splitlines()[-1].endswith("spent $3.600000")
    assert "hard budget `run`" in capsys.readouterr().err
    assert len(llm.calls()) == 2
