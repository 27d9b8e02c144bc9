"""Replaying a recorded decision under a changed policy: the executor writes the event, `explain
--replay` re-evaluates it with the facts it recorded."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import policyrouter
from policyrouter.cli import main

EXAMPLE = Path(__file__).resolve().parent.parent / "policies" / "subscriptions"


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path, str]:
    """A config dir, and an events file holding one call made while `work` had 10% of its quota."""
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.setenv("ANTHROPIC_API_KEY_WORK", "sk-test-work-0000")
    monkeypatch.setenv("ANTHROPIC_API_KEY_PERSONAL", "sk-test-personal-0000")
    config = tmp_path / "cfg"
    shutil.copytree(EXAMPLE, config, ignore=shutil.ignore_patterns(".policyrouter"))
    registry = config / "registry.yaml"  # no token rate limit, so 4.5M tokens in one minute only spend quota
    registry.write_text(registry.read_text().replace("    tpm: 400k\n", ""))
    events = tmp_path / "events.jsonl"
    with policyrouter.load(config, state="memory://", events=events) as router:
        work = router.registry.models["sonnet"].deployments[0]
        held = router.store.reserve(work, tokens=1, cost=0.0)
        router.store.settle(held, input_tokens=4_500_000, output_tokens=0, cost=0.0)  # 10% of 5M left
        response = router.completion(
            "sonnet", [{"role": "user", "content": "hi"}], mock_response="hello", request_id="r-night"
        )
    assert response._hidden_params["policyrouter"]["deployment"] == "sonnet@personal"
    return config, events, "r-night"


def _edit_decision(events: Path, change: Callable[[dict[str, Any]], object]) -> None:
    """Edit the decision events of an events file by hand, as a user might."""
    lines = []
    for line in events.read_text().splitlines():
        event = json.loads(line)
        if event["event"] == "decision":
            change(event)
        lines.append(json.dumps(event))
    events.write_text("\n".join(lines) + "\n")


def _replay_refused(recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], change: Any) -> str:
    """What `explain --replay` says on stderr after `change` edits the decision event: an `error:`
    line and exit 1, never a traceback."""
    config, events, request_id = recorded
    _edit_decision(events, change)
    code = main(["explain", "--config", str(config), "--replay", str(events), "--request-id", request_id])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    return err


def test_the_recorded_decision_replays_the_same_under_the_same_policy(
    recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, events, request_id = recorded
    code = main(["explain", "--config", str(config), "--replay", str(events), "--request-id", request_id])
    out = capsys.readouterr().out
    assert code == 0
    assert "recorded: sonnet@personal, sonnet@work" in out
    assert "the outcome is the same" in out
    assert "quota(work) = 10%" in out


def test_a_changed_policy_shows_the_new_outcome(
    recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, events, request_id = recorded
    policy = config / "subscriptions.policy"
    policy.write_text(policy.read_text().replace("quota(work) > 20%", "quota(work) > 5%"))
    code = main(["explain", "--config", str(config), "--replay", str(events), "--request-id", request_id,
                 "--format", "json"])  # fmt: skip
    data = json.loads(capsys.readouterr().out)
    assert code == 0
    assert data["changed"] is True
    assert data["recorded"]["order"] == ["sonnet@personal", "sonnet@work"]
    assert [d["provider"] for d in data["now"]["order"]] == ["work", "personal"]
    assert data["unrecorded_facts"] == []


def test_an_unknown_request_id_is_a_clear_error(
    recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    config, events, _ = recorded
    code = main(["explain", "--config", str(config), "--replay", str(events), "--request-id", "r-nigth"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no decision event for request `r-nigth`" in err and "did you mean `r-night`?" in err
    assert "Traceback" not in err


def test_replay_needs_a_request_id(recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    config, events, _ = recorded
    assert main(["explain", "--config", str(config), "--replay", str(events)]) == 2
    assert "--request-id" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        ({"model": None}, ["records no model"]),
        ({"requires": "tools"}, ["`requires` is not a list of names", '"tools"']),
        ({"tags": [1, 2]}, ["`tags` is not a list of names"]),
        ({"tokens": "lots"}, ["`tokens` is a whole number of tokens", "'lots'"]),
        ({"max_tokens": -1}, ["`max_tokens`", "-1"]),
        ({"tokens": 10**400}, ["`tokens` is a whole number of tokens", "at most 2**53"]),
    ],
    ids=["no model", "requires not a list", "tags not names", "tokens not a number", "negative max_tokens", "huge"],
)
def test_a_recorded_request_edited_out_of_shape_is_a_clear_error(
    recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], edit: dict[str, object], words: list[str]
) -> None:
    err = _replay_refused(recorded, capsys, lambda event: event["request"].update(edit))
    assert err.startswith(f"error: the decision event for `{recorded[2]}`")
    for word in words:
        assert word in err


def test_a_damaged_line_is_skipped_and_said_where(
    recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    # Lines cut short by a crash mid-write, one mid-character, and one no JSON reader can nest as deep
    # as it goes: the other decisions still replay.
    config, events, request_id = recorded
    nested = b"[" * 100_000 + b"]" * 100_000 + b"\n"
    huge = b'{"event": "attempt", "junk": ' + b"9" * 5000 + b"}\n"  # more digits than Python reads
    not_events = b'[1, 2]\n"text"\n{"event": 5}\n'  # JSON, but no event: skipped without a word
    events.write_bytes(
        b'{"event": "attempt", "note": "caf\xc3\n'
        + nested
        + huge
        + not_events
        + events.read_bytes()
        + b'{"event": "succ'
    )
    code = main(["explain", "--config", str(config), "--replay", str(events), "--request-id", request_id])
    assert code == 0 and "the outcome is the same" in capsys.readouterr().out
    last = len(events.read_bytes().splitlines())
    assert [r.getMessage() for r in caplog.records if r.name == "policyrouter.replay"] == [
        f"{events}:1:34: not UTF-8 text: byte 0xc3 here: skipped",
        f"{events}:2:1: not a JSON event: nested too deeply: skipped",
        f"{events}:3:1: not a JSON event: a number too long to read: skipped",
        *(f"{events}:{n}:1: not a JSON event: an event is an object with an `event` name: skipped" for n in (4, 5, 6)),
        f"{events}:{last}:11: not a JSON event: Unterminated string starting at: skipped",
    ]
    code = main(["explain", "--config", str(config), "--replay", str(events), "--request-id", "elsewhere"])
    assert code == 1 and "7 damaged lines skipped" in capsys.readouterr().err


@pytest.mark.parametrize("order", [5, [{"a": 1}], "sonnet@work"], ids=["a number", "not names", "a string"])
def test_a_recorded_order_edited_out_of_shape_is_a_clear_error(
    recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], order: object
) -> None:
    err = _replay_refused(recorded, capsys, lambda event: event.update(order=order))
    assert err == f"error: the decision event for `{recorded[2]}`: its `order` is not a list of deployments\n"


@pytest.mark.parametrize(
    ("facts", "words"),
    [
        (
            {"quota": 0.1, "quota.work": 0.2},
            ["records facts that do not fit", "`quota` is both one value and a mapping"],
        ),
        ({"quota.wrok": 0.5}, ["records facts that do not fit", "`wrok`"]),
    ],
    ids=["a value and a mapping", "an unknown provider"],
)
def test_recorded_facts_edited_out_of_shape_are_a_clear_error(
    recorded: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], facts: dict[str, object], words: list[str]
) -> None:
    # `{"quota": 0.1, "quota.work": 0.2}` raised TypeError from inside nest_facts
    err = _replay_refused(recorded, capsys, lambda event: event.update(facts=facts))
    for word in words:
        assert word in err


def test_a_fact_of_your_own_with_a_dot_in_its_name_replays(tmp_path: Path) -> None:
    # `queue.depth` was nested as {"queue": {"depth": …}}, and the replay refused it
    config = tmp_path / "cfg"
    shutil.copytree(EXAMPLE, config, ignore=shutil.ignore_patterns(".policyrouter", "tests"))
    (config / "subscriptions.policy").write_text("route sonnet when queue.depth > 5 prefer personal\n")
    depth = policyrouter.Fact("count", lambda _: 7)
    router = policyrouter.load(config, facts={"queue.depth": depth}, state="memory://")
    decision = router.decide("sonnet")
    assert decision.facts["queue.depth"] == 7
    from policyrouter.replay import replay

    again = replay(router, {"request_id": "r", "request": {"model": "sonnet"}, "facts": dict(decision.facts)})
    assert [d.key for d in again.decision.order] == [d.key for d in decision.order]
