"""Decisions, table-driven: a policy, a request and dry-run facts in; an order or a refusal code out.

Every case runs through the public front door, `policyrouter.load(DIR).decide(...)`, against the
registry below (or a variant of it). An expected order lists `model@provider` keys; an expected
refusal is the stable error code as a string.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

import policyrouter

REGISTRY = """\
settings:
  timezone: UTC
  estimated_output_tokens: 1000
  unknown_price: deny

providers:
  work:
    litellm_provider: anthropic
    api_key_env: WORK_KEY
    quota: {limit: 1M, unit: tokens, window: 5h}
    rpm: 50
    tpm: 400k
  personal:
    litellm_provider: anthropic
    api_key_env: PERSONAL_KEY
    quota: {limit: 1M, unit: tokens, window: 5h}
  api:
    litellm_provider: anthropic
    api_key_env: ANTHROPIC_API_KEY
  team:
    litellm_provider: anthropic
    api_key_env: TEAM_KEY
    quota: {limit: 1M, unit: tokens, window: 5h, hard: false}
  perreq:
    litellm_provider: anthropic
    api_key_env: PERREQ_KEY
    quota: {limit: 100, unit: requests, window: day}
  openai:
    litellm_provider: openai
    api_key_env: OPENAI_API_KEY
    budget: {usd: 100, window: month, hard: true}
  google:
    litellm_provider: gemini
    api_key_env: GEMINI_API_KEY
  groq:
    litellm_provider: groq
    api_key_env: GROQ_API_KEY
  together:
    litellm_provider: together_ai
    api_key_env: TOGETHER_API_KEY
  local:
    litellm_provider: ollama
    base_url: http://127.0.0.1:11434
  mystery:
    litellm_provider: openai
    api_key_env: MYSTERY_KEY

models:
  sonnet:
    capabilities: [tools, vision, streaming]
    context_window: 200k
    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}
    deployments:
      - {provider: work, model_id: claude-sonnet-4}
      - {provider: personal, model_id: claude-sonnet-4}
  haiku:
    capabilities: [tools, streaming]
    context_window: 200k
    price: {input_per_mtok: 0.80, output_per_mtok: 4.00}
    deployments:
      - {provider: work, model_id: claude-haiku}
      - {provider: personal, model_id: claude-haiku}
      - {provider: api, model_id: claude-haiku}
  opus:
    capabilities: [tools, vision, streaming, reasoning]
    context_window: 200k
    price: {input_per_mtok: 15.00, output_per_mtok: 75.00}
    deployments:
      - {provider: work, model_id: claude-opus-4}
      - {provider: team, model_id: claude-opus-4}
      - {provider: perreq, model_id: claude-opus-4}
  claude-3-haiku:
    capabilities: [tools, streaming]
    price: {input_per_mtok: 0.25, output_per_mtok: 1.25}
    deployments:
      - {provider: work, model_id: claude-3-haiku}
      - {provider: personal, model_id: claude-3-haiku}
  claude-2:
    capabilities: [streaming]
    price: {input_per_mtok: 8, output_per_mtok: 24}
    deployments:
      - {provider: work, model_id: claude-2}
      - {provider: api, model_id: claude-2}
  gpt-4o:
    capabilities: [tools, vision, json, streaming]
    context_window: 128k
    price: {input_per_mtok: 2.50, output_per_mtok: 10.00}
    deployments:
      - {provider: openai, model_id: gpt-4o, rpm: 60, tpm: 100k}
  gemini-pro:
    capabilities: [tools, vision, json, streaming, pdf]
    context_window: 1M
    price: {input_per_mtok: 1.25, output_per_mtok: 10.00}
    deployments:
      - {provider: google, model_id: gemini-2.5-pro}
  llama:
    capabilities: [tools, streaming]
    context_window: 128k
    price: {input_per_mtok: 0.60, output_per_mtok: 0.60}
    deployments:
      - {provider: groq, model_id: llama-3.3-70b, weight: 1}
      - {provider: together, model_id: llama-3.3-70b, weight: 9,
         price: {input_per_mtok: 0.20, output_per_mtok: 0.20}}
      - {provider: local, model_id: llama3.3, price: {input_per_mtok: 0, output_per_mtok: 0}}
  local-coder:
    capabilities: [streaming]
    context_window: 32k
    price: {input_per_mtok: 0, output_per_mtok: 0}
    deployments:
      - {provider: local, model_id: qwen2.5-coder}
  mystery-model:
    capabilities: [tools, streaming]
    deployments:
      - {provider: mystery, model_id: mystery-model-x}

budgets:
  run: {usd: 5.00, hard: true}
  month: {usd: 200.00}
"""

ALLOW_UNKNOWN_PRICE = REGISTRY.replace("unknown_price: deny", "unknown_price: allow")
WARN_UNKNOWN_PRICE = REGISTRY.replace("unknown_price: deny", "unknown_price: warn")
HARD_BUDGETS = REGISTRY.replace("  unknown_price: deny\n", "  unknown_price: deny\n  budget_mode: hard\n")
SHORT_OUTPUT = REGISTRY.replace("estimated_output_tokens: 1000", "estimated_output_tokens: 100")
BERLIN = REGISTRY.replace("timezone: UTC", "timezone: Europe/Berlin")
# `mystery` with a quota in USD, and no hard budget: the quota is the only limit its unknown price meets
USD_QUOTA = REGISTRY.replace("  run: {usd: 5.00, hard: true}\n", "").replace(
    "    api_key_env: MYSTERY_KEY\n", "    api_key_env: MYSTERY_KEY\n    quota: {limit: 10, unit: usd, window: day}\n"
)

CARD = "route sonnet when quota(work) > 20% prefer work else personal"


@dataclass(frozen=True)
class Case:
    name: str
    policy: str
    model: str
    expect: list[str] | str  # the order as `model@provider` keys, or a refusal code
    facts: Mapping[str, Any] = field(default_factory=dict)
    request: Mapping[str, Any] = field(default_factory=dict)  # requires, tokens, max_tokens, tags
    excluded: Mapping[str, str] | None = None  # every exclusion: `model@provider` → code
    registry: str = REGISTRY


def holds(name: str, condition: str, facts: Mapping[str, Any], value: bool, **request: Any) -> Case:
    """A case for one condition: `prefer personal` puts personal first exactly when it holds."""
    order = ["sonnet@personal", "sonnet@work"] if value else ["sonnet@work", "sonnet@personal"]
    return Case(name, f"route sonnet when {condition} prefer personal", "sonnet", order, facts, request)


SONNET = ["sonnet@work", "sonnet@personal"]
HAIKU = ["haiku@work", "haiku@personal", "haiku@api"]
LLAMA = ["llama@groq", "llama@together", "llama@local"]

CHAIN = """\
route sonnet fallback haiku
route haiku fallback gpt-4o
route gpt-4o fallback gemini-pro
"""
WHENS = """\
route haiku {
    when quota(work) > 50% prefer work
    when quota(personal) > 50% prefer personal
    otherwise prefer api
}
"""
GLOBS = """\
route claude-3-haiku only personal
route claude-* prefer api
route * avoid work
"""
# Routes that read one fact, some through the same comparison: each still decides by its own.
SHARED_FACT = """\
route sonnet when quota(work) < 50% prefer personal
route haiku when 50% < quota(work) prefer personal
route claude-3-haiku when quota(work) < 20% prefer personal
route opus when quota(work) < 50% prefer team
"""
LETS_BETWEEN_ROUTES = """\
let low = quota(work) < 50%
route sonnet when low prefer personal
let high = not low
route haiku when high prefer personal
route claude-3-haiku when low prefer personal
"""
TWICE = "route sonnet fallback haiku, gpt-4o\nroute haiku requires pdf fallback gpt-4o\n"
OPUS_PAUSED = 'route sonnet fallback opus, gpt-4o\nroute opus deny "opus is paused"\n'

# fmt: off
CASES = [
    # -- the card's line -------------------------------------------------------------------------
    Case("card: work keeps its margin", CARD, "sonnet", SONNET, {"quota": {"work": "50%"}}),
    Case("card: work under its margin", CARD, "sonnet", ["sonnet@personal", "sonnet@work"],
         {"quota": {"work": "15%"}}),
    Case("card: exactly 20% is not more than 20%", CARD, "sonnet", ["sonnet@personal", "sonnet@work"],
         {"quota": {"work": "20%"}}),
    Case("card: a share may be a fraction", CARD, "sonnet", ["sonnet@personal", "sonnet@work"],
         {"quota": {"work": 0.15}}),
    Case("card: fresh state has full quota", CARD, "sonnet", SONNET),
    Case("card: a used-up plan leaves the list", CARD, "sonnet", ["sonnet@personal"],
         {"quota": {"work": "0%"}}, excluded={"sonnet@work": "quota"}),
    # -- when … else, and else with no verb ------------------------------------------------------
    Case("else repeats only", "route sonnet when quota(work) > 20% only work else personal", "sonnet",
         ["sonnet@personal"], {"quota": {"work": "10%"}}, excluded={"sonnet@work": "only"}),
    Case("when only holds", "route sonnet when quota(work) > 20% only work else personal", "sonnet",
         ["sonnet@work"], {"quota": {"work": "30%"}}, excluded={"sonnet@personal": "only"}),
    Case("else repeats avoid", 'route haiku when tag("batch") avoid api else work', "haiku",
         ["haiku@personal", "haiku@api", "haiku@work"]),
    Case("when avoid holds", 'route haiku when tag("batch") avoid api else work', "haiku", HAIKU,
         request={"tags": ["batch"]}),
    Case("else repeats use", 'route sonnet when tag("cheap") use haiku else gpt-4o', "sonnet",
         ["gpt-4o@openai"]),
    Case("when use holds", 'route sonnet when tag("cheap") use haiku else gpt-4o', "sonnet", HAIKU,
         request={"tags": ["cheap"]}),
    Case("else with its own verb", 'route sonnet when tag("x") deny "no" else prefer personal', "sonnet",
         ["sonnet@personal", "sonnet@work"]),
    Case("when deny holds", 'route sonnet when tag("x") deny "no" else prefer personal', "sonnet", "denied",
         request={"tags": ["x"]}),
    # -- when chains, otherwise, bare actions ----------------------------------------------------
    Case("the first when that holds wins", WHENS, "haiku", HAIKU,
         {"quota": {"work": "60%", "personal": "60%"}}),
    Case("a later when", WHENS, "haiku", ["haiku@personal", "haiku@work", "haiku@api"],
         {"quota": {"work": "40%", "personal": "60%"}}),
    Case("otherwise when no when held", WHENS, "haiku", ["haiku@api", "haiku@work", "haiku@personal"],
         {"quota": {"work": "40%", "personal": "40%"}}),
    Case("no clause fires: strategy alone", 'route haiku when tag("x") prefer api', "haiku", HAIKU),
    Case("bare prefer", "route haiku prefer api", "haiku", ["haiku@api", "haiku@work", "haiku@personal"]),
    Case("prefer lists providers in order", "route haiku prefer api, personal", "haiku",
         ["haiku@api", "haiku@personal", "haiku@work"]),
    Case("only lists providers in order", "route haiku only api, work", "haiku", ["haiku@api", "haiku@work"],
         excluded={"haiku@personal": "only"}),
    Case("avoid puts them last, in order", "route haiku avoid personal, work", "haiku",
         ["haiku@api", "haiku@personal", "haiku@work"]),
    Case("only keeps the fallbacks", "route sonnet only personal fallback gpt-4o", "sonnet",
         ["sonnet@personal", "gpt-4o@openai"], excluded={"sonnet@work": "only"}),
    # -- requires --------------------------------------------------------------------------------
    Case("requires holds for the fallbacks", "route sonnet requires vision fallback haiku, gpt-4o", "sonnet",
         [*SONNET, "gpt-4o@openai"],
         excluded={"haiku@work": "capability", "haiku@personal": "capability", "haiku@api": "capability"}),
    Case("requires adds to the request's needs", "route sonnet requires vision fallback gpt-4o, gemini-pro",
         "sonnet", ["gpt-4o@openai", "gemini-pro@google"], request={"requires": ["json"]},
         excluded={"sonnet@work": "capability", "sonnet@personal": "capability"}),
    # -- use ---------------------------------------------------------------------------------------
    Case("use routes as the other model", "route sonnet use haiku", "sonnet", HAIKU),
    Case("use keeps this route's requires", "route sonnet {\n    requires vision\n    use haiku\n}", "sonnet",
         "unsupported_capability"),
    Case("use with a requires the target meets", "route sonnet {\n    requires tools\n    use haiku\n}",
         "sonnet", HAIKU),
    Case("use takes the target's fallbacks, not this route's",
         "route sonnet {\n    use haiku\n    fallback gpt-4o\n}\nroute haiku fallback claude-3-haiku", "sonnet",
         [*HAIKU, "claude-3-haiku@work", "claude-3-haiku@personal"]),
    Case("use chains", "route sonnet use haiku\nroute haiku use claude-3-haiku", "sonnet",
         ["claude-3-haiku@work", "claude-3-haiku@personal"]),
    # -- deny ------------------------------------------------------------------------------------
    Case("deny refuses", 'route opus deny "opus is paused"', "opus", "denied"),
    Case("deny through use refuses", 'route sonnet use opus\nroute opus deny "opus is paused"', "sonnet",
         "denied"),
    Case("deny through a fallback drops that model", OPUS_PAUSED, "sonnet", [*SONNET, "gpt-4o@openai"],
         excluded={"opus@work": "denied", "opus@team": "denied", "opus@perreq": "denied"}),
    Case("a conditional deny through a fallback",
         'route sonnet fallback opus\nroute opus when budget(month) < 10% deny "month nearly spent"', "sonnet",
         SONNET, {"spend": {"month": 190}},
         excluded={"opus@work": "denied", "opus@team": "denied", "opus@perreq": "denied"}),
    Case("a conditional deny that does not hold",
         'route sonnet fallback opus\nroute opus when budget(month) < 10% deny "month nearly spent"', "sonnet",
         [*SONNET, "opus@work", "opus@team", "opus@perreq"], {"spend": {"month": 100}}),
    # -- fallback ----------------------------------------------------------------------------------
    Case("fallbacks are recursive", CHAIN, "sonnet", [*SONNET, *HAIKU, "gpt-4o@openai", "gemini-pro@google"]),
    Case("a deployment appears once", "route sonnet fallback haiku, gpt-4o\nroute haiku fallback gpt-4o",
         "sonnet", [*SONNET, *HAIKU, "gpt-4o@openai"]),
    Case("fallbacks serve when the model cannot", "route sonnet fallback gpt-4o", "sonnet", ["gpt-4o@openai"],
         {"quota": {"work": "0%", "personal": "0%"}},
         excluded={"sonnet@work": "quota", "sonnet@personal": "quota"}),
    # -- strategies --------------------------------------------------------------------------------
    Case("in_order is registry order", "route llama strategy in_order", "llama", LLAMA),
    Case("round_robin at position 0", "route llama strategy round_robin", "llama", LLAMA),
    Case("round_robin at position 1", "route llama strategy round_robin", "llama",
         ["llama@together", "llama@local", "llama@groq"], {"round_robin": {"llama": 1}}),
    Case("round_robin wraps around", "route llama strategy round_robin", "llama",
         ["llama@local", "llama@groq", "llama@together"], {"round_robin": {"llama": 5}}),
    Case("round_robin orders what prefer left", "route llama {\n    strategy round_robin\n    prefer local\n}",
         "llama", ["llama@local", "llama@together", "llama@groq"], {"round_robin": {"llama": 1}}),
    Case("most_remaining: no quota counts as 100%", "route haiku strategy most_remaining", "haiku",
         ["haiku@api", "haiku@personal", "haiku@work"], {"quota": {"work": "50%", "personal": "80%"}}),
    Case("most_remaining: ties in registry order", "route haiku strategy most_remaining", "haiku", HAIKU),
    Case("most_remaining: equal shares tie", "route haiku strategy most_remaining", "haiku",
         ["haiku@api", "haiku@work", "haiku@personal"], {"quota": {"work": "80%", "personal": "80%"}}),
    Case("most_remaining with a soft quota", "route opus strategy most_remaining", "opus",
         ["opus@perreq", "opus@work", "opus@team"], {"quota": {"work": "30%", "team": "0%"}}),
    Case("cheapest uses deployment prices", "route llama strategy cheapest", "llama",
         ["llama@local", "llama@together", "llama@groq"], request={"tokens": 1000}),
    Case("fastest by latency", "route llama strategy fastest", "llama",
         ["llama@groq", "llama@local", "llama@together"],
         {"latency": {"groq": "300ms", "together": "2s", "local": "900ms"}}),
    Case("fastest puts a provider with no latency known last, though a condition read it as 0s",
         'route llama {\n strategy fastest\n when latency(together) > 10s deny "slow"\n}', "llama",
         ["llama@groq", "llama@local", "llama@together"], {"latency": {"groq": "300ms", "local": "900ms"}}),
    Case("a fallback whose condition reads a latency the strategy read first",
         "route sonnet strategy fastest fallback haiku\nroute haiku when latency(personal) > 10s avoid personal",
         "sonnet", [*SONNET, *HAIKU], {"latency": {"work": "2s"}}),
    Case("a fallback reached first through a route that requires more is routed again for its own",
         "route sonnet fallback gemini-pro, local-coder\nroute gemini-pro requires pdf fallback local-coder",
         "sonnet", ["local-coder@local"], {"quota": {"work": "0%", "personal": "0%"}, "cooldown": {"google": "1m"}},
         excluded={"sonnet@work": "quota", "sonnet@personal": "quota", "gemini-pro@google": "cooldown"}),
    Case("least_busy by calls in flight", "route llama strategy least_busy", "llama",
         ["llama@together", "llama@groq", "llama@local"], {"in_flight": {"groq": 5, "together": 2, "local": 9}}),
    # -- facts -----------------------------------------------------------------------------------
    holds("quota share", "quota(work) < 30%", {"quota": {"work": "25%"}}, True),
    holds("quota share, false", "quota(work) < 30%", {"quota": {"work": "35%"}}, False),
    holds("budget share given", "budget(month) < 15%", {"budget": {"month": "10%"}}, True),
    holds("budget share from spend", "budget(month) < 15%", {"spend": {"month": 180}}, True),
    holds("budget share from spend, false", "budget(month) < 15%", {"spend": {"month": 100}}, False),
    holds("$180 of $200 spent leaves 10%, not less", "budget(month) < 10%", {"spend": {"month": 180}}, False),
    holds("a share literal is the share given as a fraction", "quota(work) >= 1.1%", {"quota": {"work": 0.011}}, True),
    holds("provider budget from spend", "budget(openai) < 15%", {"spend": {"openai": 90}}, True),
    holds("spend money", "spend(run) > $1", {"spend": {"run": 1.20}}, True),
    holds("spend money as text", "spend(run) > $1", {"spend": {"run": "$0.50"}}, False),
    holds("spend from a budget share", "spend(month) >= $150", {"budget": {"month": "20%"}}, True),
    holds("nothing spent in a fresh state", "spend(run) > $0", {}, False),
    holds("rpm count", "rpm(work) >= 40", {"rpm": {"work": 45}}, True),
    holds("rpm count, false", "rpm(work) >= 40", {"rpm": {"work": 39}}, False),
    holds("tpm count with a suffix", "tpm(work) > 100k", {"tpm": {"work": "150k"}}, True),
    holds("errors", "errors(work) >= 3", {"errors": {"work": 3}}, True),
    holds("errors, false", "errors(work) >= 3", {"errors": {"work": 2}}, False),
    holds("latency duration", "latency(work) > 2s", {"latency": {"work": "2500ms"}}, True),
    holds("latency duration, false", "latency(work) > 2s", {"latency": {"work": "1500ms"}}, False),
    holds("tokens", "tokens > 8k", {}, True, tokens=9000),
    holds("tokens, false", "tokens > 8k", {}, False, tokens=8000),
    holds("tag", 'tag("batch")', {}, True, tags=["batch", "x"]),
    holds("tag, false", 'tag("batch")', {}, False, tags=["interactive"]),
    holds("not tag", 'not tag("interactive")', {}, True),
    holds("hour", "hour >= 22", {"hour": 23}, True),
    holds("hour, false", "hour >= 22", {"hour": 21}, False),
    holds("weekday in", "weekday in (6, 7)", {"weekday": 6}, True),
    holds("weekday in, false", "weekday in (6, 7)", {"weekday": 5}, False),
    holds("hour ==", "hour == 9", {"hour": 9}, True),
    holds("hour !=", "hour != 9", {"hour": 9}, False),
    holds("and", "quota(work) < 50% and quota(personal) > 50%", {"quota": {"work": "40%"}}, True),
    holds("and, false", "quota(work) < 50% and quota(personal) > 50%", {"quota": {"personal": "40%"}}, False),
    holds("or", 'tag("a") or tag("b")', {}, True, tags=["b"]),
    holds("parentheses", '(tag("a") or tag("b")) and not tag("c")', {}, False, tags=["a", "c"]),
    Case("a let names a condition", "let tight = budget(month) < 15%\nroute sonnet when tight prefer personal",
         "sonnet", ["sonnet@personal", "sonnet@work"], {"spend": {"month": 190}}),
    Case("routes sharing a comparison each apply it", SHARED_FACT, "opus", ["opus@team", "opus@work", "opus@perreq"],
         {"quota": {"work": "30%"}}),
    Case("a comparison written the other way round is another", SHARED_FACT, "haiku", HAIKU,
         {"quota": {"work": "30%"}}),
    Case("the same fact against another threshold", SHARED_FACT, "claude-3-haiku",
         ["claude-3-haiku@work", "claude-3-haiku@personal"], {"quota": {"work": "30%"}}),
    Case("a route sees the lets above it", LETS_BETWEEN_ROUTES, "haiku", HAIKU, {"quota": {"work": "30%"}}),
    Case("a later let leaves the earlier ones visible", LETS_BETWEEN_ROUTES, "claude-3-haiku",
         ["claude-3-haiku@personal", "claude-3-haiku@work"], {"quota": {"work": "30%"}}),
    # -- eligibility ---------------------------------------------------------------------------------
    Case("context window too small", "route sonnet fallback gemini-pro", "sonnet", ["gemini-pro@google"],
         request={"tokens": 250_000},
         excluded={"sonnet@work": "context_window", "sonnet@personal": "context_window"}),
    Case("hard quota with less left than needed", "", "sonnet", ["sonnet@personal"], {"quota": {"work": "0.1%"}},
         request={"tokens": 2000}, excluded={"sonnet@work": "quota"}),
    Case("hard quota with enough left", "", "sonnet", SONNET, {"quota": {"work": "0.1%"}},
         request={"tokens": 0, "max_tokens": 10}),
    Case("request quota with less than one request left", "", "opus", ["opus@work", "opus@team"],
         {"quota": {"perreq": "0.5%"}}, excluded={"opus@perreq": "quota"}),
    Case("request quota with two requests left", "", "opus", ["opus@work", "opus@team", "opus@perreq"],
         {"quota": {"perreq": "2%"}}),
    Case("a soft quota does not exclude", "route opus only team", "opus", ["opus@team"], {"quota": {"team": "0%"}},
         excluded={"opus@work": "only", "opus@perreq": "only"}),
    Case("hard budget", "", "sonnet", "budget_exceeded", {"spend": {"run": 4.99}}, {"tokens": 50_000},
         excluded={"sonnet@work": "budget", "sonnet@personal": "budget"}),
    Case("a free deployment stays eligible under a hard budget", "", "llama", ["llama@local"],
         {"spend": {"run": 4.99}}, {"tokens": 50_000},
         excluded={"llama@groq": "budget", "llama@together": "budget"}),
    Case("a hard budget given as a share", "", "llama", ["llama@local"], {"budget": {"run": "0%"}},
         excluded={"llama@groq": "budget", "llama@together": "budget"}),
    Case("a provider's hard budget", "", "gpt-4o", "budget_exceeded", {"spend": {"openai": 99.999}},
         excluded={"gpt-4o@openai": "budget"}),
    Case("a soft budget does not exclude", "", "sonnet", SONNET, {"spend": {"month": 250}}),
    Case("budget_mode hard makes unmarked budgets hard", "", "sonnet", "budget_exceeded",
         {"spend": {"month": 199.99}}, {"tokens": 10_000}, registry=HARD_BUDGETS),
    Case("estimated cost breaks the budget", "", "sonnet", "budget_exceeded", {"spend": {"run": 4.96}},
         {"tokens": 10_000}),  # 10k × $3/M + 1000 × $15/M = $0.045 > $0.04
    Case("estimated cost within the budget", "", "sonnet", SONNET, {"spend": {"run": 4.95}},
         {"tokens": 10_000}),  # $0.045 ≤ $0.05
    Case("max_tokens replaces the estimated output", "", "sonnet", SONNET, {"spend": {"run": 4.96}},
         {"tokens": 10_000, "max_tokens": 100}),  # $0.0315 ≤ $0.04
    Case("settings.estimated_output_tokens", "", "sonnet", SONNET, {"spend": {"run": 4.96}},
         {"tokens": 10_000}, registry=SHORT_OUTPUT),
    Case("unknown price under a hard budget, deny", "", "mystery-model", "budget_exceeded",
         excluded={"mystery-model@mystery": "unknown_price"}),
    Case("unknown price under a hard budget, allow", "", "mystery-model", ["mystery-model@mystery"],
         registry=ALLOW_UNKNOWN_PRICE),
    Case("unknown price under a hard budget, warn", "", "mystery-model", ["mystery-model@mystery"],
         registry=WARN_UNKNOWN_PRICE),
    # a quota in USD met a deployment without a price as if each call cost nothing: it never ran down
    Case("unknown price under a hard quota in USD, deny", "", "mystery-model", "budget_exceeded",
         excluded={"mystery-model@mystery": "unknown_price"}, registry=USD_QUOTA),
    Case("unknown price under a quota in USD, allow", "", "mystery-model", ["mystery-model@mystery"],
         registry=USD_QUOTA.replace("unknown_price: deny", "unknown_price: allow")),
    Case("unknown price under a used-up quota in USD", "", "mystery-model", "no_route", {"quota": {"mystery": 0}},
         excluded={"mystery-model@mystery": "quota"}, registry=USD_QUOTA),
    Case("provider rpm window full", "", "sonnet", ["sonnet@personal"], {"rpm": {"work": 50}},
         excluded={"sonnet@work": "rate_limit"}),
    Case("provider rpm window not yet full", "", "sonnet", SONNET, {"rpm": {"work": 49}}),
    Case("provider tpm window full", "", "sonnet", ["sonnet@personal"], {"tpm": {"work": "400k"}},
         excluded={"sonnet@work": "rate_limit"}),
    Case("deployment rpm window full", "route gpt-4o fallback gemini-pro", "gpt-4o", ["gemini-pro@google"],
         {"rpm": {"gpt-4o@openai": 60}}, excluded={"gpt-4o@openai": "rate_limit"}),
    Case("deployment tpm window full", "", "gpt-4o", "no_route", {"tpm": {"gpt-4o@openai": "100k"}},
         excluded={"gpt-4o@openai": "rate_limit"}),
    Case("cooling down", "", "sonnet", ["sonnet@personal"], {"cooldown": {"work": "30s"}},
         excluded={"sonnet@work": "cooldown"}),
    # -- refusals and which one ------------------------------------------------------------------
    Case("unknown model", CARD, "sonet", "unknown_model"),
    Case("no candidate has the capability", "route sonnet fallback gpt-4o", "sonnet", "unsupported_capability",
         request={"requires": ["pdf"]}),
    Case("every deployment ineligible", "", "sonnet", "no_route", {"quota": {"work": "0%", "personal": "0%"}},
         excluded={"sonnet@work": "quota", "sonnet@personal": "quota"}),
    Case("only can leave nothing", "route sonnet only personal", "sonnet", "no_route",
         {"quota": {"personal": "0%"}}, excluded={"sonnet@work": "only", "sonnet@personal": "quota"}),
    Case("a capable fallback stopped only by a budget", "route sonnet fallback gpt-4o", "sonnet",
         "budget_exceeded", {"spend": {"openai": 99.999}}, {"requires": ["json"]}),
    Case("a capable fallback stopped by a rate window", "route sonnet fallback gpt-4o", "sonnet", "no_route",
         {"rpm": {"gpt-4o@openai": 60}}, {"requires": ["json"]}),
    Case("quota spent and the fallback over budget", "route sonnet fallback gpt-4o", "sonnet", "budget_exceeded",
         {"quota": {"work": "0%", "personal": "0%"}, "spend": {"openai": 99.999}}),
    Case("the capable fallback is denied", 'route sonnet fallback opus\nroute opus deny "paused"', "sonnet",
         "no_route", request={"requires": ["reasoning"]}),
    # a model reached twice counts with what each route to it needed: gpt-4o lacks pdf, which only
    # haiku's route asks for; as sonnet's own fallback it can serve, so what stops it there decides
    Case("a model reached twice, stopped by a budget where it is capable", TWICE, "sonnet", "budget_exceeded",
         {"quota": {"work": "0%", "personal": "0%"}, "spend": {"openai": 99.999}},
         excluded={"sonnet@work": "quota", "sonnet@personal": "quota", "haiku@work": "capability",
                   "haiku@personal": "capability", "haiku@api": "capability", "gpt-4o@openai": "budget"}),
    Case("a model reached twice, stopped by a rate window where it is capable", TWICE, "sonnet", "no_route",
         {"rpm": {"gpt-4o@openai": 60}}, {"requires": ["json"]},
         excluded={"sonnet@work": "capability", "sonnet@personal": "capability", "haiku@work": "capability",
                   "haiku@personal": "capability", "haiku@api": "capability", "gpt-4o@openai": "rate_limit"}),
    Case("a denied fallback is capable of what its own path needs",
         'route sonnet fallback gpt-4o, opus\nroute gpt-4o requires pdf\nroute opus deny "paused"', "sonnet",
         "no_route", request={"requires": ["reasoning"]}),
    # -- targets: exact > longest literal glob > `*`; unmatched models in registry order -----------
    Case("an exact route beats globs", GLOBS, "claude-3-haiku", ["claude-3-haiku@personal"],
         excluded={"claude-3-haiku@work": "only"}),
    Case("a glob beats `*`", GLOBS, "claude-2", ["claude-2@api", "claude-2@work"]),
    Case("`*` takes the rest", GLOBS, "haiku", ["haiku@personal", "haiku@api", "haiku@work"]),
    Case("the longer literal glob wins", "route claude-* prefer api\nroute claude-3-* prefer personal",
         "claude-3-haiku", ["claude-3-haiku@personal", "claude-3-haiku@work"]),
    Case("the longer literal glob wins, written first", "route claude-3-* prefer personal\nroute claude-* only work",
         "claude-3-haiku", ["claude-3-haiku@personal", "claude-3-haiku@work"]),
    Case("an unmatched model: registry order", "route sonnet prefer personal", "llama", LLAMA),
    Case("an unmatched model: no fallback", "route claude-* fallback gpt-4o", "haiku", HAIKU),
]
# fmt: on


@pytest.fixture(scope="module")
def router_for(
    tmp_path_factory: pytest.TempPathFactory, write_config: Callable[..., Path]
) -> Callable[[str, str], policyrouter.Router]:
    """Load each (registry, policy) pair once for the whole module."""
    cache: dict[tuple[str, str], policyrouter.Router] = {}

    def get(registry: str, policy: str) -> policyrouter.Router:
        if (registry, policy) not in cache:
            directory = write_config(tmp_path_factory.mktemp("cfg"), registry, policy)
            cache[registry, policy] = policyrouter.load(directory)
        return cache[registry, policy]

    return get


def _decide(router: policyrouter.Router, case: Case) -> tuple[list[str] | str, dict[str, str]]:
    try:
        decision = router.decide(case.model, facts=dict(case.facts), **case.request)
    except policyrouter.DecisionError as e:
        excluded = {x.deployment.key: x.code for x in e.decision.excluded} if e.decision is not None else {}
        return e.code, excluded
    return [d.key for d in decision.order], {x.deployment.key: x.code for x in decision.excluded}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_decide(case: Case, router_for: Callable[[str, str], policyrouter.Router]) -> None:
    router = router_for(case.registry, case.policy)
    got, excluded = _decide(router, case)
    assert got == case.expect
    if case.excluded is not None:
        assert excluded == dict(case.excluded)


# -- refusal details --------------------------------------------------------------------------------


def _refusal(router: policyrouter.Router, model: str, **kwargs: Any) -> policyrouter.DecisionError:
    with pytest.raises(policyrouter.DecisionError) as info:
        router.decide(model, **kwargs)
    return info.value


@pytest.mark.parametrize(
    ("facts", "path", "words"),
    [
        ({5: 1}, "5", ["unknown fact `5`"]),
        ({None: "x"}, "None", ["unknown fact `None`"]),
        ({"quota": {3: "10%"}}, "quota.3", ["`3` is not a known name"]),
        ({"round_robin": {"sonnet": -math.inf}}, "round_robin.sonnet", ["count"]),
        ({"cooldown": {"work": math.inf}}, "cooldown.work", ["duration"]),
        ({"spend": {"run": math.nan}}, "spend.run", ["USD"]),
        ({"errors": {"work": math.nan}}, "errors.work", ["count"]),
        ({"errors": {"work": -1}}, "errors.work", ["`-1` is negative"]),
        ({"spend": {"run": -0.5}}, "spend.run", ["`-0.5` is negative"]),
        ({"cooldown": {"work": "-30s"}}, "cooldown.work", ["`-30s` is negative"]),
        ({"spend": {"run": "$-3"}}, "spend.run", ["`$-3` is negative"]),
        ({"rpm": {"work": -2}}, "rpm.work", ["`-2` is negative"]),
        ({"quota": {"openai": "10%"}}, "quota.openai", ["`openai` has no quota", "always 100%"]),
        ({"request_id": None}, "request_id", ["`request_id` is a string", "None"]),  # was the id "None"
        ({"errors": {"work": 10**400}}, "errors.work", ["count"]),
        ({"quota": {"work": 10**400}}, "quota.work", ["share"]),
        ({"latency": {"work": "9" * 400 + "ms"}}, "latency.work", ["is too large"]),
        ({"tokens": 5000}, "tokens", ["part of the request", "`tokens=` in Python", "`--tokens N`"]),
        ({"tag": {"batch": True}}, "tag", ["part of the request", "`tags=`", "`--tag T`", "request: {tags: …}"]),
        ({"rpm": {"sonet@work": 5}}, "rpm.sonet@work", ["did you mean `sonnet@work`?"]),
        ({"spend": {"persnal": 5}}, "spend.persnal", ["did you mean `personal`?"]),
        ({"budget": {"zzz": "5%"}}, "budget.zzz", ["expected one of: month, openai, run"]),
    ],
    ids=[
        "a number as a key",
        "None as a key",
        "a number as a name",
        "-inf",
        "inf",
        "nan money",
        "nan count",
        "negative count",
        "negative money",
        "negative duration text",
        "negative money text",
        "negative rate",
        "a quota of a provider without one",
        "a request id of None",
        "an int too large for a float",
        "a share too large for a float",
        "digits too many for a float",
        "tokens, read from the request",
        "a tag, read from the request",
        "a deployment's rate, misspelt",
        "a spend scope, misspelt",
        "a budget not declared",
    ],
)
def test_facts_that_do_not_fit_are_invalid_facts(
    router_for: Callable[..., policyrouter.Router], facts: dict[Any, Any], path: str, words: list[str]
) -> None:
    """A dry run's facts may come from YAML or any caller: keys of any kind, numbers of any value."""
    with pytest.raises(policyrouter.InvalidFacts) as info:
        router_for(REGISTRY, CARD).decide("sonnet", facts=facts)
    assert ".".join(info.value.path) == path
    for word in words:
        assert word in str(info.value)


def test_a_budget_fact_where_no_budget_is_declared_says_so(router_for: Callable[..., policyrouter.Router]) -> None:
    # "expected one of: " listed nothing
    without = REGISTRY[: REGISTRY.index("budgets:")].replace("    budget: {usd: 100, window: month, hard: true}\n", "")
    with pytest.raises(policyrouter.InvalidFacts, match=r"registry.yaml declares no budgets"):
        router_for(without, CARD).decide("sonnet", facts={"budget": {"month": "5%"}})


def test_one_capability_or_tag_may_be_given_as_a_string(router_for: Callable[..., policyrouter.Router]) -> None:
    router = router_for(REGISTRY, CARD)
    one = router.decide("sonnet", requires="tools", tags="batch", facts={})
    listed = router.decide("sonnet", requires=["tools"], tags=["batch"], facts={})
    assert one.request.requires == listed.request.requires == frozenset({"tools"})
    assert one.request.tags == listed.request.tags == frozenset({"batch"})
    assert one.order == listed.order


def test_no_capabilities_or_tags_may_be_given_as_none(router_for: Callable[..., policyrouter.Router]) -> None:
    decision = router_for(REGISTRY, CARD).decide("sonnet", requires=None, tags=None, facts={})
    assert decision.request.requires == decision.request.tags == frozenset()


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"model": None}, ["`model`", "None"]),
        ({"model": 5}, ["`model`", "5"]),
        ({"requires": ["tools", 1]}, ["`requires`", "got 1 in it"]),
        ({"tags": [("batch",)]}, ["`tags`", "('batch',)"]),
        ({"facts": [("quota", "15%")]}, ["`facts`", "list"]),
        ({"request_id": 5}, ["`request_id`", "5"]),
    ],
    ids=[
        "model None",
        "model a number",
        "a capability a number",
        "a tag a tuple",
        "facts a list",
        "request id a number",
    ],
)
def test_arguments_of_the_wrong_kind_say_which(
    router_for: Callable[..., policyrouter.Router], arguments: dict[str, Any], words: list[str]
) -> None:
    call: dict[str, Any] = {"model": "sonnet", "facts": {}, **arguments}
    with pytest.raises(TypeError) as info:
        router_for(REGISTRY, CARD).decide(call.pop("model"), **call)
    for word in words:
        assert word in str(info.value)


@pytest.mark.parametrize(
    ("asked", "hint"),
    [
        ("sonet", "; did you mean `sonnet`?"),
        (
            "sonnet@work",
            "; ask for the model `sonnet`: the policy picks the provider (a policy's `only work` pins one)",
        ),
        ("sonnet@home", "; ask for the model `sonnet`: the policy picks the provider"),
        ("claude-sonnet-4", "; ask for the model by its name: `sonnet` uses that id"),
        ("anthropic/claude-haiku", "; ask for the model by its name: `haiku` uses that id"),
        ("mistral-large", ""),
    ],
    ids=["a typo", "a deployment", "a deployment on no provider", "a model id", "litellm's model string", "nothing"],
)
def test_an_unknown_model_says_what_was_likely_meant(
    router_for: Callable[..., policyrouter.Router], asked: str, hint: str
) -> None:
    error = _refusal(router_for(REGISTRY, CARD), asked, facts={})
    assert error.code == "unknown_model"
    assert error.message == f"unknown model `{asked}`{hint}"


def test_unsupported_capability_names_it_and_the_models_that_offer_it(
    router_for: Callable[..., policyrouter.Router],
) -> None:
    error = _refusal(router_for(REGISTRY, CARD), "sonnet", requires=["pdf"], facts={})
    assert error.code == "unsupported_capability"
    assert "`pdf`" in error.message and "`gemini-pro`" in error.message
    assert error.details == {"capabilities": ["pdf"], "models": ["gemini-pro"]}


def test_a_model_reached_twice_over_a_budget_is_named_once(router_for: Callable[..., policyrouter.Router]) -> None:
    policy = "route haiku fallback sonnet, gpt-4o\nroute sonnet requires vision fallback gpt-4o"
    error = _refusal(router_for(REGISTRY, policy), "haiku", facts={"spend": {"run": 5}})
    assert error.code == "budget_exceeded"
    assert error.message.count("gpt-4o@openai") == 1


def test_a_model_that_offers_it_but_is_routed_elsewhere_says_where(
    router_for: Callable[..., policyrouter.Router],
) -> None:
    # "no deployment of `sonnet` … offers `vision`; models that do: `sonnet`": its deployments were never asked
    error = _refusal(router_for(REGISTRY, "route sonnet use haiku"), "sonnet", requires=["vision"], facts={})
    assert error.code == "unsupported_capability"
    assert error.message.endswith("; `sonnet` is routed as `haiku` (`use haiku`)")


def test_a_requested_name_that_is_no_capability_gets_the_closest_one(
    router_for: Callable[..., policyrouter.Router],
) -> None:
    error = _refusal(router_for(REGISTRY, CARD), "sonnet", requires=["tool", "pdf", "xyzzy"], facts={})
    assert error.code == "unsupported_capability"
    assert error.message.startswith("no deployment of `sonnet` or its fallbacks offers all of `pdf`, `tool`, `xyzzy`;")
    assert error.message.endswith(
        "; `tool` is not a capability name (did you mean `tools`?); `xyzzy` is not a capability name"
    )
    # what other tools call a capability: too far from ours to be a typo of it
    error = _refusal(router_for(REGISTRY, CARD), "sonnet", requires=["function_calling", "images"], facts={})
    assert error.message.endswith(
        "; `function_calling` is not a capability name (did you mean `tools`?)"
        "; `images` is not a capability name (did you mean `vision`?)"
    )


def test_denied_carries_the_message(router_for: Callable[..., policyrouter.Router]) -> None:
    error = _refusal(router_for(REGISTRY, 'route opus deny "opus is paused"'), "opus", facts={})
    assert (error.code, error.message) == ("denied", "opus is paused")


def test_a_refusal_keeps_its_decision(router_for: Callable[..., policyrouter.Router]) -> None:
    error = _refusal(router_for(REGISTRY, ""), "sonnet", facts={"quota": {"work": "0%", "personal": "0%"}})
    assert error.code == "no_route"
    assert error.decision is not None and error.decision.order == ()
    assert error.decision.to_dict()["error"] == {"code": "no_route", "message": error.message}
    reasons = {x.deployment.key: x.reason for x in error.decision.excluded}
    assert "used up" in reasons["sonnet@work"]


def test_a_full_rate_window_says_when_it_frees(router_for: Callable[..., policyrouter.Router]) -> None:
    decision = router_for(REGISTRY, "").decide("sonnet", facts={"rpm": {"work": 50}})
    (exclusion,) = decision.excluded
    assert exclusion.code == "rate_limit" and "frees at" in exclusion.reason


def test_a_deny_through_a_fallback_keeps_its_message(router_for: Callable[..., policyrouter.Router]) -> None:
    decision = router_for(REGISTRY, OPUS_PAUSED).decide("sonnet", facts={})
    assert {x.reason.split(": ")[-1] for x in decision.excluded} == {"opus is paused"}


# -- cycles -----------------------------------------------------------------------------------------


def test_a_fallback_cycle_is_an_error(make_config: Callable[..., Path]) -> None:
    directory = make_config(REGISTRY, "route sonnet fallback haiku\nroute haiku fallback sonnet")
    with pytest.raises(policyrouter.ConfigError) as info:
        policyrouter.load(directory)
    assert {d.code for d in info.value.diagnostics} == {"fallback-cycle"}


def test_a_bare_use_cycle_is_an_error(make_config: Callable[..., Path]) -> None:
    directory = make_config(REGISTRY, "route sonnet use haiku\nroute haiku use sonnet")
    with pytest.raises(policyrouter.ConfigError) as info:
        policyrouter.load(directory)
    assert "use-cycle" in {d.code for d in info.value.diagnostics}


def test_cycles_are_cut_at_run_time(router_for: Callable[..., policyrouter.Router]) -> None:
    """Compile refuses cycles; the evaluator must still end if handed one (each model visited once)."""
    router = router_for(REGISTRY, "route sonnet fallback haiku\nroute haiku fallback gpt-4o")
    program = router.program
    haiku = program.plans["haiku"]
    looped = dataclasses.replace(haiku.route, fallbacks=("sonnet", "gpt-4o"))
    plans = {**program.plans, "haiku": dataclasses.replace(haiku, route=looped)}
    original = router.program
    router.program = dataclasses.replace(program, plans=plans)
    try:
        order = [d.key for d in router.decide("sonnet", facts={}).order]
        assert order == [*SONNET, *HAIKU, "gpt-4o@openai"]
        assert [d.key for d in router.decide("haiku", facts={}).order] == [*HAIKU, *SONNET, "gpt-4o@openai"]
    finally:
        router.program = original


@pytest.mark.parametrize("hop", ["fallback", "use"])
def test_a_chain_longer_than_pythons_stack_is_decided(make_config: Callable[..., Path], hop: str) -> None:
    # each hop was a recursive call: a chain of 1,000 loaded, then every decision raised RecursionError
    n = 1500
    models = "".join(f"  m{i}: {{deployments: [{{provider: p, model_id: m{i}}}]}}\n" for i in range(n))
    registry = "providers:\n  p: {litellm_provider: openai, api_key_env: P_KEY}\nmodels:\n" + models
    policy = "".join(f"route m{i} {hop} m{i + 1}\n" for i in range(n - 1))
    decision = policyrouter.load(make_config(registry, policy)).decide("m0", facts={})
    if hop == "fallback":
        assert [d.key for d in decision.order] == [f"m{i}@p" for i in range(n)]
    else:
        assert [d.key for d in decision.order] == [f"m{n - 1}@p"]
    assert len(decision.steps) == n


# -- strategies that need many requests ---------------------------------------------------------------


def test_weighted_is_reproducible_from_the_request_id(router_for: Callable[..., policyrouter.Router]) -> None:
    router = router_for(REGISTRY, "route llama strategy weighted")
    orders = {tuple(d.key for d in router.decide("llama", facts={}, request_id=f"r-{i}").order) for i in range(40)}
    assert len(orders) > 1  # the id matters
    for i in range(20):
        first = router.decide("llama", facts={}, request_id=f"r-{i}").order
        assert router.decide("llama", facts={}, request_id=f"r-{i}").order == first
        assert router.decide("llama", facts={"request_id": f"r-{i}"}).order == first


def test_weighted_puts_the_heavier_weight_first_more_often(router_for: Callable[..., policyrouter.Router]) -> None:
    router = router_for(REGISTRY, "route llama strategy weighted")
    firsts = Counter(router.decide("llama", facts={}, request_id=f"id-{i}").order[0].provider for i in range(400))
    # together has weight 9 of 11: first about 82% of the time
    assert firsts["together"] > 0.65 * 400
    assert firsts["together"] > firsts["groq"] + firsts["local"]
    assert firsts["groq"] > 0 and firsts["local"] > 0


def test_round_robin_rotates_per_model(router_for: Callable[..., policyrouter.Router]) -> None:
    router = router_for(REGISTRY, "route claude-* strategy round_robin")
    facts = {"round_robin": {"claude-2": 1}}
    assert [d.key for d in router.decide("claude-2", facts=facts).order] == ["claude-2@api", "claude-2@work"]
    assert [d.key for d in router.decide("claude-3-haiku", facts=facts).order] == [
        "claude-3-haiku@work",
        "claude-3-haiku@personal",
    ]


# -- hour and weekday come from the clock, in the registry's timezone ---------------------------------

CLOCK_POLICY = "route sonnet when hour >= 23 and weekday == 1 prefer personal"
MONDAY_2230_UTC = datetime(2025, 1, 6, 22, 30, tzinfo=timezone.utc)  # 23:30 on a Monday in Berlin


@pytest.mark.parametrize(
    ("registry", "facts", "first"),
    [
        (BERLIN, {}, "sonnet@personal"),
        (REGISTRY, {}, "sonnet@work"),  # 22:30 in UTC
        (BERLIN, {"hour": 3}, "sonnet@work"),  # a given fact overrides the clock
        (BERLIN, {"weekday": 2}, "sonnet@work"),
    ],
    ids=["berlin", "utc", "hour given", "weekday given"],
)
def test_clock_facts(make_config: Callable[..., Path], registry: str, facts: dict[str, Any], first: str) -> None:
    router = policyrouter.load(make_config(registry, CLOCK_POLICY), clock=lambda: MONDAY_2230_UTC)
    assert router.decide("sonnet", facts=facts).order[0].key == first


# -- what a decision is -------------------------------------------------------------------------------


def test_to_dict(router_for: Callable[..., policyrouter.Router]) -> None:
    decision = router_for(REGISTRY, CARD).decide("sonnet", facts={"quota": {"work": "50%"}})
    out = decision.to_dict()
    assert set(out) == {"request", "order", "excluded", "rule", "steps", "facts"}
    assert out["order"] == [
        {
            "model": "sonnet",
            "provider": "work",
            "model_id": "claude-sonnet-4",
            "litellm_model": "anthropic/claude-sonnet-4",
        },
        {
            "model": "sonnet",
            "provider": "personal",
            "model_id": "claude-sonnet-4",
            "litellm_model": "anthropic/claude-sonnet-4",
        },
    ]
    assert out["excluded"] == []
    assert out["rule"].endswith("main.policy:1:14")  # the `when` clause that decided
    assert out["facts"]["quota.work"] == 0.5
    (step,) = out["steps"]
    assert step["conditions"][0]["condition"] == "quota(work) > 20%"
    assert step["conditions"][0]["value"] is True


def test_to_dict_lists_exclusions(router_for: Callable[..., policyrouter.Router]) -> None:
    decision = router_for(REGISTRY, CARD).decide("sonnet", facts={"quota": {"work": "0%"}})
    (excluded,) = decision.to_dict()["excluded"]
    assert excluded["deployment"] == "sonnet@work" and excluded["code"] == "quota"


def test_a_deployment_prints_as_model_at_provider(router_for: Callable[..., policyrouter.Router]) -> None:
    first = router_for(REGISTRY, CARD).decide("sonnet", facts={}).order[0]
    assert (first.model, first.provider, first.model_id) == ("sonnet", "work", "claude-sonnet-4")
    assert str(first) == "sonnet@work"


def test_explain_mentions_each_evaluated_condition_with_its_value(
    router_for: Callable[..., policyrouter.Router],
) -> None:
    decision = router_for(REGISTRY, WHENS).decide("haiku", facts={"quota": {"work": "40%", "personal": "60%"}})
    lines = decision.explain().splitlines()
    assert lines[0].startswith("haiku") and "haiku@personal, haiku@work, haiku@api" in lines[0]
    first = next(line for line in lines if "quota(work) > 50%" in line)
    second = next(line for line in lines if "quota(personal) > 50%" in line)
    assert "false" in first and "40%" in first
    assert "true" in second and "60%" in second
    assert not any("otherwise" in line for line in lines)  # never reached


@pytest.mark.parametrize("condition", ["true", "quota(work) >= 0%"])
def test_explain_shows_a_condition_settled_true_when_compiled(
    router_for: Callable[..., policyrouter.Router], condition: str
) -> None:
    # folded into a bare action, it was left out of `explain`: the `when` seemed not to be there
    decision = router_for(REGISTRY, f"route sonnet when {condition} prefer personal").decide("sonnet", facts={})
    assert [(r.clause.condition_text, r.value) for r in decision.steps[0].conditions] == [(condition, True)]
    assert f"  when {condition}  → true" in decision.explain()


def test_explain_of_a_refusal_names_the_code_and_the_reasons(
    router_for: Callable[..., policyrouter.Router],
) -> None:
    error = _refusal(router_for(REGISTRY, CARD), "sonnet", facts={"quota": {"work": "0%", "personal": "0%"}})
    text = error.decision.explain()
    assert "no_route" in text
    assert "sonnet@work" in text and "sonnet@personal" in text and "used up" in text


@pytest.mark.parametrize(
    ("policy", "model", "facts", "kwargs"),
    [
        (CARD, "sonnet", {"quota": {"work": "15%"}}, {}),
        ("let tight = budget(month) < 15%\n" + WHENS, "haiku", {"spend": {"month": 150}}, {"tokens": 2000}),
        ("route llama strategy weighted", "llama", {"request_id": "r-7"}, {}),
        (OPUS_PAUSED, "sonnet", {"quota": {"work": "0%"}}, {"requires": ["tools"]}),
    ],
    ids=["card", "whens", "weighted", "fallbacks"],
)
def test_same_facts_same_decision(
    router_for: Callable[..., policyrouter.Router],
    policy: str,
    model: str,
    facts: dict[str, Any],
    kwargs: dict[str, Any],
) -> None:
    router = router_for(REGISTRY, policy)
    first = router.decide(model, facts=facts, **kwargs)
    again = router.decide(model, facts=facts, **kwargs)
    assert first == again
    assert first.to_dict() == again.to_dict()
    assert first.explain() == again.explain()


@pytest.mark.parametrize("tokens", [-1, math.nan, math.inf, 2**53 + 1, 10**400, True, "8k", 1.5])
def test_a_token_count_out_of_range_is_a_value_error(
    router_for: Callable[..., policyrouter.Router], tokens: object
) -> None:
    # 10**400 raised OverflowError where it was priced; a count is booked as a float, exact to 2**53.
    router = router_for(REGISTRY, CARD)
    for argument in ("tokens", "max_tokens"):
        with pytest.raises(ValueError, match=f"`{argument}` is a whole number of tokens, 0 or more"):
            router.decide("sonnet", facts={}, **{argument: tokens})
    with pytest.raises(policyrouter.DecisionError, match="context window 200k < 9007199254740992 tokens"):
        router.decide("sonnet", facts={}, tokens=2**53, max_tokens=0)  # taken, and too long for any window


@pytest.mark.parametrize(
    ("option", "error", "message"),
    [
        ({"state": 123}, TypeError, "`state` is a store URL such as 'memory://', or a StateStore; got int"),
        ({"executor": "fast"}, TypeError, "`executor` is an ExecutorOptions; got str"),
        ({"staleness": -1}, ValueError, "`staleness` is how many seconds live facts may be old: 0 or more"),
        ({"staleness": math.nan}, ValueError, "`staleness`"),
        ({"clock": 5}, TypeError, "`clock` is a function that returns the time; got int"),
        ({"clock": lambda: 5}, TypeError, "`clock` returns an aware datetime"),
        ({"clock": lambda: datetime(2026, 3, 16, 9)}, TypeError, "it gave datetime.datetime(2026, 3, 16, 9, 0)"),
        ({"run_id": 5}, TypeError, "a run id is a string"),
        ({"run_id": ""}, ValueError, "`run_id`: run id `` must be 1-128 letters"),
    ],
    ids=[
        "state",
        "executor",
        "negative staleness",
        "nan staleness",
        "clock",
        "clock value",
        "naive clock",
        "run id",
        "empty run id",
    ],
)
def test_options_of_load_are_checked_where_they_are_given(
    tmp_path: Path, write_config: Callable[..., Path], option: dict[str, Any], error: type[Exception], message: str
) -> None:
    # Each loaded; the first decision or call then raised AttributeError, or a naive clock read as local time.
    directory = write_config(tmp_path, REGISTRY, CARD)
    with pytest.raises(error) as info:
        policyrouter.load(directory, **option)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda r: r.decide("sonnet", requires=5, facts={}),
            TypeError,
            "`requires` is a list of names (strings); got 5",
        ),
        (lambda r: r.decide("sonnet", tags=[1], facts={}), TypeError, "`tags` is a list of names (strings); got 1 in"),
        (lambda r: r.run(5), TypeError, "a run id is a string"),
        (lambda r: r.run("bad id"), ValueError, "run id `bad id` must be 1-128 letters"),
        (lambda r: r.run("nightly-42\n"), ValueError, "must be 1-128 letters"),  # was a run of its own
        (lambda r: policyrouter.load(None), TypeError, "`directory` is the path of a config directory"),
        (lambda r: policyrouter.load(".", facts=5), TypeError, "`facts` maps names to `policyrouter.Fact"),
    ],
    ids=[
        "requires not a list",
        "a tag not a string",
        "run id not a string",
        "run id with a space",
        "run id with a newline",
        "load of None",
        "load with facts not a mapping",
    ],
)
def test_arguments_of_the_wrong_kind_say_what_they_should_be(
    router_for: Callable[..., policyrouter.Router], call: Callable[..., object], error: type[Exception], message: str
) -> None:
    # `requires=5` said "'int' object is not iterable"; `run(5)` "expected string or bytes-like object".
    with pytest.raises(error) as info:
        call(router_for(REGISTRY, CARD))
    assert message in str(info.value)
