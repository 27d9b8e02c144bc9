"""The model registry as the router uses it: frozen objects built once from `registry.yaml`.

`policyrouter.registry_schema` reads and validates the YAML and builds these; everything after
loading (compiler, evaluator, state, executor) reads only these objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Literal

from policyrouter.diagnostics import Span, closest

KNOWN_CAPABILITIES = ("tools", "vision", "json", "streaming", "reasoning", "audio", "pdf", "prompt_caching")
# What other tools and model cards call a capability, for the hint on a name that is none of ours.
CAPABILITY_SYNONYMS = {
    word: ours
    for ours, words in (
        ("tools", ("function_calling", "function_call", "functions", "tool_use", "tool_calling", "tool_calls")),
        ("vision", ("image", "images", "image_input", "multimodal")),
        ("json", ("json_mode", "json_output", "structured_output", "structured_outputs", "response_format")),
        ("streaming", ("stream",)),
        ("reasoning", ("thinking", "extended_thinking")),
        ("prompt_caching", ("caching", "cache", "prompt_cache")),
    )
    for word in words
}
GLOBAL_BUDGETS = ("run", "day", "week", "month")
# `${NAME}` in `settings.state`: the value of an environment variable, put in when the store is opened,
# so a password can stay out of the config.
ENV_REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")

QuotaUnit = Literal["tokens", "requests", "usd"]


def meant_capability(name: str, vocabulary: Iterable[str]) -> str | None:
    """The capability of `vocabulary` that `name` likely means: ours for another tool's word
    (`function_calling` is `tools`), else the closest name."""
    names = sorted(vocabulary)
    synonym = CAPABILITY_SYNONYMS.get(name.lower())
    return synonym if synonym in names else closest(name, names)


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens."""

    input_per_mtok: float
    output_per_mtok: float

    def cost(self, input_tokens: float, output_tokens: float) -> float:
        return (input_tokens * self.input_per_mtok + output_tokens * self.output_per_mtok) / 1e6


@dataclass(frozen=True, slots=True)
class Window:
    """When a counter resets: fixed length (`1m`, `5h`; `seconds` set, optional `anchor`),
    calendar (`day`, `week`, `month`, in the registry's timezone) or `run`."""

    name: str
    seconds: float | None = None
    anchor: datetime | None = None

    @property
    def kind(self) -> Literal["fixed", "calendar", "run"]:
        if self.name == "run":
            return "run"
        return "fixed" if self.seconds is not None else "calendar"

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class Quota:
    """A subscription's allowance per window; hard unless it says otherwise."""

    limit: float
    unit: QuotaUnit
    window: Window
    hard: bool = True


@dataclass(frozen=True, slots=True)
class Budget:
    """A spending limit in USD. `name` is its scope: `run`, `day`, `week`, `month`, or the provider
    or model that declares it."""

    name: str
    usd: float
    window: Window
    hard: bool
    scope: Literal["global", "provider", "model"] = "global"
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Provider:
    name: str
    litellm_provider: str
    api_key_env: str | None = None
    base_url: str | None = None
    quota: Quota | None = None
    rpm: float | None = None
    tpm: float | None = None
    budget: Budget | None = None
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Deployment:
    """One model on one provider. Prints as `model@provider`."""

    model: str
    provider: str
    model_id: str
    litellm_model: str  # `litellm_provider/model_id`
    capabilities: frozenset[str]
    context_window: float | None
    price: Price | None
    price_source: Literal["registry", "cost_map"] | None
    rpm: float | None = None  # this deployment's own limit, overriding none of the provider's
    tpm: float | None = None
    weight: float = 1.0
    base_url: str | None = None
    api_key_env: str | None = None
    index: int = 0  # position among the model's deployments: registry order
    span: Span | None = field(default=None, compare=False)
    key: str = field(init=False, compare=False)  # `model@provider`

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.model}@{self.provider}")

    def __repr__(self) -> str:
        return f"<Deployment {self.key}: {self.litellm_model}>"

    def __str__(self) -> str:
        return self.key


@dataclass(frozen=True, slots=True)
class Model:
    name: str
    capabilities: frozenset[str]
    context_window: float | None
    max_output_tokens: float | None
    price: Price | None
    deployments: tuple[Deployment, ...]
    budget: Budget | None = None
    span: Span | None = field(default=None, compare=False)


@dataclass(frozen=True, slots=True)
class Settings:
    timezone: tzinfo
    timezone_name: str = "UTC"
    state: str = "sqlite:///.policyrouter/state.db"  # may hold `${NAME}` references (ENV_REFERENCE)
    budget_mode: Literal["soft", "hard"] = "soft"
    estimated_output_tokens: int = 1000
    unknown_price: Literal["deny", "warn", "allow"] = "deny"
    on_state_error: Literal["closed", "open"] | None = None  # None: closed for hard budgets, else open
    capabilities: frozenset[str] = frozenset(KNOWN_CAPABILITIES)


@dataclass(frozen=True, slots=True)
class Registry:
    settings: Settings
    providers: Mapping[str, Provider]
    models: Mapping[str, Model]
    budgets: Mapping[str, Budget]  # every budget by scope name: global, provider and model ones
    path: Path | None = None
    deployments: Mapping[str, Deployment] = field(init=False, repr=False, compare=False)  # by key
    global_budgets: tuple[Budget, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "deployments", {d.key: d for m in self.models.values() for d in m.deployments})
        object.__setattr__(self, "global_budgets", tuple(b for b in self.budgets.values() if b.scope == "global"))

    @property
    def config_dir(self) -> Path:
        return self.path.parent if self.path is not None else Path.cwd()

    def budgets_for(self, deployment: Deployment) -> tuple[Budget, ...]:
        """The budgets a call on this deployment spends from: the global ones, its provider's, its model's."""
        out = list(self.global_budgets)
        provider_budget = self.providers[deployment.provider].budget
        if provider_budget is not None:
            out.append(provider_budget)
        model_budget = self.models[deployment.model].budget
        if model_budget is not None:
            out.append(model_budget)
        return tuple(out)
