"""Replay a recorded decision under the current policies: "why did this go to personal at 3 am, and
would the new policy do better?"

Every `decision` event the executor writes carries the request and the facts it read. Replaying
feeds those facts back as a dry run, so the only thing that differs is the policy. A fact the current
policy reads that was not recorded reads as a fresh state would, and the report says which.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from policyrouter.decision import Decision, token_count
from policyrouter.diagnostics import closest
from policyrouter.errors import DecisionError, PolicyRouterError
from policyrouter.facts import FactsError, nest_facts
from policyrouter.router import InvalidFacts, Router

log = logging.getLogger("policyrouter.replay")


class ReplayError(PolicyRouterError):
    """The events file has no decision to replay for that request."""


@dataclass(frozen=True)
class Replay:
    event: Mapping[str, Any]
    decision: Decision
    unrecorded: tuple[str, ...]  # facts read now that the event did not record

    @property
    def before(self) -> list[str]:
        return list(self.event.get("order") or [])

    @property
    def after(self) -> list[str]:
        return [d.key for d in self.decision.order]

    @property
    def before_error(self) -> str | None:
        error = self.event.get("error")
        return error.get("code") if isinstance(error, Mapping) else None

    @property
    def after_error(self) -> str | None:
        return self.decision.error.code if self.decision.error is not None else None

    @property
    def changed(self) -> bool:
        return (self.before, self.before_error) != (self.after, self.after_error)

    def render(self) -> str:
        request = self.event.get("request") or {}
        when = self.event.get("ts") or "?"
        lines = [
            f"request {self.event.get('request_id')} for `{request.get('model')}` at {when}"
            + (f", run {self.event['run_id']}" if self.event.get("run_id") else ""),
            f"  recorded: {_outcome(self.before, self.before_error)}  (rule {self.event.get('rule') or '-'})",
            f"  now:      {_outcome(self.after, self.after_error)}  (rule {self.decision.rule or '-'})",
            "  the outcome changes" if self.changed else "  the outcome is the same",
        ]
        if self.unrecorded:
            lines.append(
                f"  not recorded, read as a fresh state: {', '.join(self.unrecorded)}"
                " (the current policy reads facts the recorded one did not)"
            )
        return "\n".join(lines) + "\n\n" + self.decision.explain()

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.event.get("request_id"),
            "recorded": {"order": self.before, "error": self.before_error, "rule": self.event.get("rule")},
            "now": self.decision.to_dict(),
            "changed": self.changed,
            "unrecorded_facts": list(self.unrecorded),
        }


def find_decision(path: Path, request_id: str) -> Mapping[str, Any]:
    """The `decision` event for `request_id` in a JSON-lines events file (the last, if several)."""
    found: Mapping[str, Any] | None = None
    seen: list[str] = []
    damaged: list[str] = []
    for event in _events(path, damaged):
        if event.get("event") != "decision":
            continue
        if event.get("request_id") == request_id:
            found = event
        elif isinstance(event.get("request_id"), str):
            seen.append(event["request_id"])
    for problem in damaged:  # a line cut short by a crash mid-write must not hide every other decision
        log.warning("%s: skipped", problem)
    if found is None:
        guess = closest(request_id, seen)
        hint = f"; did you mean `{guess}`?" if guess else f" ({len(seen)} decisions in the file)"
        if damaged:
            hint += f"; {len(damaged)} damaged line{'s' if len(damaged) > 1 else ''} skipped"
        raise ReplayError(f"no decision event for request `{request_id}` in {path}{hint}")
    if not isinstance(found.get("request"), Mapping) or not isinstance(found.get("facts"), Mapping):
        raise ReplayError(f"the decision event for `{request_id}` has no request or facts to replay")
    order = found.get("order")
    if order is not None and not (isinstance(order, list) and all(isinstance(key, str) for key in order)):
        raise ReplayError(f"the decision event for `{request_id}`: its `order` is not a list of deployments")
    return found


def replay(router: Router, event: Mapping[str, Any]) -> Replay:
    recorded = dict(event["facts"])
    try:
        facts = nest_facts(recorded, router.config.custom_facts)
        decision = router.decide(**_recorded_request(event), facts=facts)
    except DecisionError as e:
        if e.decision is None:
            raise
        decision = e.decision
    except (FactsError, InvalidFacts) as e:  # an events line edited by hand, or another config's
        raise ReplayError(
            f"the decision event for `{event.get('request_id')}` records facts that do not fit: {e}"
        ) from None
    unrecorded = tuple(k for k in decision.facts if k not in recorded)
    return Replay(event, decision, unrecorded)


def _recorded_request(event: Mapping[str, Any]) -> dict[str, Any]:
    """`Router.decide`'s arguments for the request an event recorded; a ReplayError if they are not
    what the executor writes (a file edited by hand, or cut short)."""
    request = event["request"]
    where = f"the decision event for `{event.get('request_id')}`"
    model = request.get("model")
    if not isinstance(model, str) or not model:
        raise ReplayError(f"{where} records no model")
    names: dict[str, list[str]] = {}
    for field in ("requires", "tags"):
        value = request.get(field) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise ReplayError(f"{where}: its `{field}` is not a list of names: {json.dumps(value)}")
        names[field] = value
    try:
        tokens = token_count("tokens", request.get("tokens") or 0)
        max_tokens = None if request.get("max_tokens") is None else token_count("max_tokens", request["max_tokens"])
    except ValueError as e:
        raise ReplayError(f"{where}: {e}") from None
    request_id = request.get("request_id") or event.get("request_id") or ""
    return {"model": model, **names, "tokens": tokens, "max_tokens": max_tokens, "request_id": str(request_id)}


def _events(path: Path, damaged: list[str]) -> Iterator[dict[str, Any]]:
    """The events of a JSON-lines file; a line that is not one is described in `damaged`."""
    try:
        lines = path.read_bytes().splitlines()  # JSON lines end at a newline only
    except OSError as e:
        raise ReplayError(f"cannot read {path}: {e.strerror}") from None
    for number, raw in enumerate(lines, 1):
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            column = len(raw[: e.start].decode("utf-8")) + 1
            damaged.append(f"{path}:{number}:{column}: not UTF-8 text: byte 0x{raw[e.start]:02x} here")
            continue
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError as e:
            damaged.append(f"{path}:{number}:{e.colno}: not a JSON event: {e.msg}")
            continue
        except RecursionError:  # no event nests hundreds of levels deep
            damaged.append(f"{path}:{number}:1: not a JSON event: nested too deeply")
            continue
        except ValueError:  # an integer of thousands of digits: Python reads at most 4,300
            damaged.append(f"{path}:{number}:1: not a JSON event: a number too long to read")
            continue
        if isinstance(event, dict) and isinstance(event.get("event"), str):
            yield event
        else:  # `[1, 2]`, `"text"`, `{"event": 5}`: JSON, but no event
            damaged.append(f"{path}:{number}:1: not a JSON event: an event is an object with an `event` name")


def _outcome(order: list[str], error: str | None) -> str:
    return f"refused [{error}]" if error else (", ".join(order) or "nothing")
