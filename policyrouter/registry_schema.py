"""Reading `registry.yaml` into the frozen objects of `policyrouter.registry`.

`load_registry` is a short pipeline:

    read the text → parse YAML → validate each value → check relations → build the Registry

The YAML is parsed with ruamel's round-trip loader, so every key, value and list item still knows its
line and column. The pydantic models below describe the file exactly (an unknown key is an error) and
validate each value where it stands: types, quantities such as `400k`, windows, time zones, and
references to declared providers and capabilities. Checks that relate several valid parts (one
deployment per provider per model, unique budget names) run after. Every problem becomes an `_Issue`
at a path of keys and indexes, then a `Diagnostic` pointing at the offending text; all of them are
raised together as one `ConfigError`.
"""

from __future__ import annotations

import json
import math
import re
import types
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timezone, tzinfo
from pathlib import Path
from typing import Annotated, Any, Literal, TypeGuard, Union, get_args, get_origin
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    StrictBool,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import DuplicateKeyError
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.reader import ReaderError

from policyrouter.ast import NAME
from policyrouter.collector import without_collector
from policyrouter.diagnostics import Diagnostic, Source, Span, did_you_mean
from policyrouter.errors import ConfigError
from policyrouter.prices import lookup_price
from policyrouter.quantities import (
    CALENDAR_WINDOWS,
    QuantityError,
    finite_number,
    format_quantity,
    parse_count,
    parse_duration,
)
from policyrouter.registry import (
    ENV_REFERENCE,
    GLOBAL_BUDGETS,
    KNOWN_CAPABILITIES,
    Budget,
    Deployment,
    Model,
    Price,
    Provider,
    Quota,
    QuotaUnit,
    Registry,
    Settings,
    Window,
    meant_capability,
)
from policyrouter.registry_hints import foreign_key_help, window_help
from policyrouter.text_files import read_config_text
from policyrouter.yaml_text import load_yaml, problem_at, problem_help, problem_text

Loc = tuple[str | int, ...]  # a path of keys and list indexes into the YAML, as pydantic reports it

_DEFAULTS = Settings(timezone=timezone.utc)
_WINDOW_NAMES = ("run", *CALENDAR_WINDOWS)
MIN_WINDOW, MAX_WINDOW = 0.001, 3650 * 86400.0  # seconds: 1ms to ten years
_ENV_VAR_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
_LOWER_ENV_VAR_NAME = re.compile(r"[a-z_][a-z0-9_]*")
_SECRET_PREFIXES = ("sk-", "sk_", "pk-", "rk-", "gsk_", "xai-", "hf_", "ghp_", "AIza", "AKIA")
_STATE_SCHEMES = ("sqlite", "memory", "redis", "rediss", "unix")


# ---------------------------------------------------------------------------------------------------
# Values: each validator either returns the value or raises an error already worded for the user.


def _error(code: str, message: str, help: str | None = None, *, mask: bool = False) -> PydanticCustomError:
    """A validation error whose code, message and help become a diagnostic as they are."""
    return PydanticCustomError(code, "{message}", {"message": message, "help": help, "mask": mask})


def _describe(value: object) -> str:
    """A value the user wrote, as a diagnostic shows it."""
    if value is None:
        return "`null`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list" if value else "an empty list"
    if value == "":
        return "an empty string"
    if (tag := _tag_of(value)) is not None:
        return f"`{tag} {getattr(value, 'value', '')}`, a tagged value"
    if isinstance(value, float) and not math.isfinite(value):
        return f"`{value}`, which is not a finite number"
    if isinstance(value, int) and finite_number(value) is None:  # more digits than a float holds
        return f"`{str(value)[:37]}...`, which is too large"
    text = str(value)
    if len(text) > 40:
        text = text[:37] + "..."
    if isinstance(value, str) and (_reads_as_non_string(value) or any(c.isspace() and c != " " for c in text)):
        return "`" + json.dumps(text, ensure_ascii=False) + "`"  # quoted, a line break as `\n`
    return f"`{text}`"


def _reads_as_non_string(text: str) -> bool:
    """Whether a string reads like a number or boolean, so a diagnostic must show its quotes."""
    if text.lower() in ("true", "false", "null"):
        return True
    try:
        float(text)
    except ValueError:
        return False
    return True


def _names(names: Iterable[object]) -> str:
    return ", ".join(f"`{name}`" for name in names)


def _is_number(value: object) -> TypeGuard[float]:
    """A finite number: YAML's `.inf` and `.nan` would make every limit or none of them hold."""
    return finite_number(value) is not None


def _count(value: object) -> float:
    try:
        amount = parse_count(value)
    except QuantityError:
        if isinstance(value, str) and value.strip().startswith("-"):
            raise _error("registry-value", f"expected a non-negative count, got {_describe(value)}") from None
        hint = "`M` is million; `m` means minutes" if str(value).endswith("m") else None
        raise _error(
            "registry-type", f"expected a count such as `50`, `400k` or `1.5M`, got {_describe(value)}", hint
        ) from None
    if amount < 0:
        raise _error("registry-value", f"expected a non-negative count, got {_describe(value)}")
    return amount


def _limit(value: object) -> float:
    amount = _count(value)
    if amount == 0:
        raise _error(
            "registry-value",
            "expected a limit above 0",
            "a limit of 0 lets nothing through; for no limit, leave the setting out",
        )
    return amount


def _usd(value: object) -> float:
    if not _is_number(value):
        raise _error(
            "registry-type",
            f"expected a number of USD, got {_describe(value)}",
            "money is a plain number, such as `2.50`",
        )
    if value < 0:
        raise _error("registry-value", "expected a non-negative number of USD")
    return float(value)


def _weight(value: object) -> float:
    if not _is_number(value):
        raise _error("registry-type", f"expected a number, got {_describe(value)}")
    if value <= 0:
        raise _error("registry-value", "expected a weight above 0")
    return float(value)


def _window(value: object) -> Window:
    if isinstance(value, str):
        if value in _WINDOW_NAMES:
            return Window(value)
        seconds = _fixed_length(value)
        if seconds is not None:
            if not MIN_WINDOW <= seconds <= MAX_WINDOW:
                raise _error(
                    "registry-value",
                    f"a window is from `1ms` to `{MAX_WINDOW / 86400:.0f}d` long, got `{value}`",
                    "a window longer than a month is rarely meant: `month` resets on the 1st"
                    if seconds > MAX_WINDOW
                    else None,
                )
            return Window(value, seconds)
    raise _error(
        "registry-value" if isinstance(value, str) else "registry-type",
        f"expected a window: `run`, `day`, `week`, `month` or a length such as `1m` or `5h`, got {_describe(value)}",
        window_help(str(value), _WINDOW_NAMES) if isinstance(value, (str, int, float)) else None,
    )


def _fixed_length(text: str) -> float | None:
    """Seconds in a fixed-length window such as `5h`, or None when `text` is not one (a number
    without its unit is not: `30` could be seconds or minutes)."""
    if not text.strip()[-1:].isalpha():
        return None
    try:
        seconds = parse_duration(text)
    except QuantityError:
        return None
    return seconds if seconds > 0 else None


def _timezone_name(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: not even a zone key, such as `../x`
        raise _error(
            "registry-value",
            f"unknown time zone `{name}`",
            did_you_mean(name, sorted(available_timezones()))
            or "expected an IANA time zone name such as `Europe/Berlin` or `UTC`",
        ) from None
    return name


def _base_url(url: str) -> str:
    """An http(s) URL, written out: litellm takes it as it is, so `localhost:11434` or `${PROXY}` would
    only fail on the first call."""
    if ENV_REFERENCE.search(url):
        raise _error(
            "registry-value",
            "`${NAME}` is read only in `settings.state`; a `base_url` is the URL itself",
            "write the URL, e.g. `http://127.0.0.1:11434`",
        )
    if not re.fullmatch(r"https?://[^\s/]\S*", url):
        spaced = any(c.isspace() for c in url)
        raise _error(
            "registry-value",
            f"expected an http:// or https:// URL{', which has no spaces' if spaced else ''}, got {_describe(url)}",
            f"e.g. `http://{url}`" if "://" not in url and not spaced else "e.g. `http://127.0.0.1:11434`",
        )
    return url


def _state_url(url: str) -> str:
    scheme, separator, _ = url.partition("://")
    if not (separator and scheme in _STATE_SCHEMES):
        raise _error(
            "registry-value",
            f"expected a state URL such as `sqlite:///.policyrouter/state.db`, `memory://` or "
            f"`redis://127.0.0.1:6379/0`, got {_describe(url)}",
        )
    if "\0" in url:  # no file or host has one in its name
        raise _error("registry-value", "the state URL holds a NUL character")
    try:
        parts = urlsplit(url)
        passwords = [parts.password or "", *parse_qs(parts.query).get("password", [])]  # unix://…?password=
    except ValueError as e:  # `redis://[::1` and the like
        raise _error("registry-value", f"the state URL does not parse: {e}") from None
    if any(p and not ENV_REFERENCE.fullmatch(p) for p in passwords):
        raise _error(
            "registry-secret",
            "the state URL holds a password: secrets never live in config",
            "write `${REDIS_PASSWORD}` in its place, and set that environment variable",
            mask=True,
        )
    return url


def _env_var_name(value: str) -> str:
    """The NAME of the variable that holds a key. Anything that is not a name might be the key itself,
    so it is never repeated back: the diagnostic masks it in the snippet too."""
    looks_like_key = value.startswith(_SECRET_PREFIXES)
    if _ENV_VAR_NAME.fullmatch(value) and not looks_like_key:
        return value
    if _LOWER_ENV_VAR_NAME.fullmatch(value) and not looks_like_key:
        raise _error(
            "registry-value",
            "expected the name of an environment variable, in upper case",
            f"did you mean `{value.upper()}`?",
        )
    named = value.removeprefix("$").removeprefix("{").removesuffix("}")
    if value.startswith("$") and _ENV_VAR_NAME.fullmatch(named):  # `$OPENAI_API_KEY`, `${OPENAI_API_KEY}`
        raise _error(
            "registry-value",
            "expected the name of an environment variable, without `$`",
            f"write `{named}`",
        )
    raise _error(
        "registry-secret",
        "api_key_env names the environment variable, keys never live in config",
        "put the key in an environment variable and write the variable's name here, such as `OPENAI_API_KEY`",
        mask=True,
    )


def _capability_name(name: str) -> str:
    return _policy_name(
        name, f"expected a capability name such as `web_search`, got {_describe(name)}", "a capability name"
    )


def _declared_name(name: str) -> str:
    """A provider or model name, which policies name and deployment keys join with `@`."""
    return _policy_name(name, f"{_describe(name)} cannot be named in a policy", "a name", ", such as `gpt-4.1`")


def _policy_name(name: str, message: str, subject: str, example: str = "") -> str:
    """`name` if a policy can write it (the grammar's NAME), else a `registry-value` error."""
    if NAME.fullmatch(name):
        return name
    raise _error(
        "registry-value",
        message,
        f"{subject} starts with a letter or `_` and has letters, digits, `_`, `.` and `-`{example}",
    )


def _global_budget_name(name: str) -> str:
    if name in GLOBAL_BUDGETS:
        return name
    raise _error(
        "registry-unknown-key",
        f"unknown budget `{name}` in `budgets`",
        did_you_mean(name, GLOBAL_BUDGETS) or f"budgets here are named by their window: {_names(GLOBAL_BUDGETS)}",
    )


@dataclass(frozen=True)
class _Declared:
    """The names that values refer to. They are read leniently from the raw YAML before validation, so
    references are checked in the same pass as everything else; a malformed section reports itself."""

    providers: tuple[str, ...]
    capabilities: tuple[str, ...]

    @classmethod
    def scan(cls, data: object) -> _Declared:
        providers = _get(data, "providers")
        extra = _get(_get(data, "settings"), "capabilities")
        return cls(
            providers=tuple(name for name in providers if isinstance(name, str)) if isinstance(providers, dict) else (),
            capabilities=KNOWN_CAPABILITIES
            + (tuple(name for name in extra if isinstance(name, str)) if isinstance(extra, list) else ()),
        )

    @staticmethod
    def of(info: ValidationInfo) -> _Declared | None:
        """The declared names in this validation's context; None when validating without one."""
        return info.context.get("declared") if isinstance(info.context, dict) else None


def _get(data: object, key: str) -> object:
    return data.get(key) if isinstance(data, dict) else None


def _provider_ref(name: str, info: ValidationInfo) -> str:
    declared = _Declared.of(info)
    if declared is None or name in declared.providers:
        return name
    raise _error(
        "registry-unknown-provider",
        f"unknown provider `{name}`",
        did_you_mean(name, declared.providers)
        or (f"declared providers: {_names(declared.providers)}" if declared.providers else None)
        or "declare providers under `providers`",
    )


def _capability_ref(name: str, info: ValidationInfo) -> str:
    declared = _Declared.of(info)
    if declared is None or name in declared.capabilities:
        return name
    raise _error(
        "registry-unknown-capability",
        f"unknown capability `{name}`",
        (f"did you mean `{guess}`?" if (guess := meant_capability(name, declared.capabilities)) else None)
        or "declare new capabilities under `settings.capabilities`",
    )


_COUNT_SCHEMA = {
    "anyOf": [{"type": "number", "minimum": 0}, {"type": "string", "pattern": r"^\s*(\d+(\.\d+)?|\.\d+)[kKM]?\s*$"}]
}
_NOT_ZERO = r"(?=[\d.]*[1-9])"  # a digit other than 0 comes before the unit: `0k` and `0s` are no limit or window
_LIMIT_SCHEMA = {
    "anyOf": [
        {"type": "number", "exclusiveMinimum": 0},
        {"type": "string", "pattern": rf"^\s*{_NOT_ZERO}(\d+(\.\d+)?|\.\d+)[kKM]?\s*$"},
    ]
}
_WINDOW_SCHEMA = {
    "anyOf": [
        {"enum": list(_WINDOW_NAMES)},
        {"type": "string", "pattern": rf"^\s*{_NOT_ZERO}(\d+(\.\d+)?|\.\d+)(ms|s|m|h|d)\s*$"},
    ]
}

Count = Annotated[float, PlainValidator(_count), WithJsonSchema(_COUNT_SCHEMA)]
Limit = Annotated[float, PlainValidator(_limit), WithJsonSchema(_LIMIT_SCHEMA)]
Usd = Annotated[float, PlainValidator(_usd), WithJsonSchema({"type": "number", "minimum": 0})]
Weight = Annotated[float, PlainValidator(_weight), WithJsonSchema({"type": "number", "exclusiveMinimum": 0})]
WindowName = Annotated[Window, PlainValidator(_window), WithJsonSchema(_WINDOW_SCHEMA)]
NonEmptyStr = Annotated[str, StringConstraints(min_length=1)]
TimezoneName = Annotated[str, AfterValidator(_timezone_name)]
BaseUrl = Annotated[
    str, AfterValidator(_base_url), WithJsonSchema({"type": "string", "pattern": r"^(?!.*\$\{)https?://[^\s/]\S*$"})
]
StateUrl = Annotated[str, AfterValidator(_state_url)]
EnvVarName = Annotated[
    str, AfterValidator(_env_var_name), WithJsonSchema({"type": "string", "pattern": r"^[A-Z_][A-Z0-9_]*$"})
]
CapabilityName = Annotated[str, AfterValidator(_capability_name)]
CapabilityRef = Annotated[str, AfterValidator(_capability_ref)]
DeclaredName = Annotated[str, AfterValidator(_declared_name)]
ProviderRef = Annotated[str, AfterValidator(_provider_ref)]
GlobalBudgetName = Annotated[str, AfterValidator(_global_budget_name)]


# ---------------------------------------------------------------------------------------------------
# The file's shape. Field descriptions feed the JSON schema and the help of missing-key diagnostics.


# Factories for empty sections, rather than `list` and `dict` themselves: pydantic reads a factory's
# signature, and for a builtin that means parsing its text signature with `tokenize`, whose first use
# compiles a large regex: 1.5 ms of every cold start that validates a registry, for nothing else.
def _empty_list() -> list[Any]:
    return []


def _empty_dict() -> dict[Any, Any]:
    return {}


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SettingsSpec(_Spec):
    timezone: TimezoneName = Field(
        _DEFAULTS.timezone_name, description="the time zone of calendar windows and hour/weekday facts"
    )
    state: StateUrl = Field(
        _DEFAULTS.state,
        description="where counters live: `sqlite:///path` (relative to the config dir), `memory://` "
        "or `redis://host:port/db`",
    )
    budget_mode: Literal["soft", "hard"] = Field(
        _DEFAULTS.budget_mode, description="whether budgets that do not say `hard` are hard or soft"
    )
    estimated_output_tokens: Count = Field(
        _DEFAULTS.estimated_output_tokens,
        description="the output tokens a cost estimate assumes when a request gives no `max_tokens`",
    )
    unknown_price: Literal["deny", "warn", "allow"] = Field(
        _DEFAULTS.unknown_price, description="what to do with a deployment with no price under a hard budget"
    )
    on_state_error: Literal["closed", "open"] | None = Field(
        None, description="what to do when state is unreadable; default closed for hard budgets, else open"
    )
    capabilities: list[CapabilityName] = Field(
        default_factory=_empty_list, description="capability names beyond the built-in vocabulary"
    )


class QuotaSpec(_Spec):
    limit: Limit = Field(description="the allowance per window, in `unit`s")
    unit: QuotaUnit = Field(description="what the limit counts: `tokens`, `requests` or `usd`")
    window: WindowName = Field(description="when the allowance resets, such as `5h` or `day`")
    hard: StrictBool = Field(True, description="whether a used-up quota makes the provider ineligible")
    anchor: datetime | None = Field(None, description="when a fixed-length window first starts (ISO 8601)")

    @field_validator("anchor", mode="before")
    @classmethod
    def _anchor_is_a_time(cls, anchor: object) -> object:
        # pydantic would read a number as seconds since 1970, and so a text of digits (`'1736150400'`)
        if isinstance(anchor, (int, float)) or (isinstance(anchor, str) and anchor.strip().lstrip("+-").isdigit()):
            raise _error(
                "registry-type",
                f"expected a date and time such as `2025-01-06T09:00:00`, got {_describe(anchor)}",
            )
        return anchor

    @field_validator("anchor")
    @classmethod
    def _anchor_needs_fixed_window(cls, anchor: datetime | None, info: ValidationInfo) -> datetime | None:
        window = info.data.get("window")
        if anchor is not None and isinstance(window, Window) and window.kind != "fixed":
            raise _error(
                "registry-value",
                f"an `anchor` applies only to fixed-length windows such as `5h`, not `{window}`",
            )
        return anchor


class BudgetSpec(_Spec):
    usd: Usd = Field(description="the spending limit in USD")
    window: WindowName = Field(description="when spending resets, such as `day` or `month`")
    hard: StrictBool | None = Field(None, description="whether the budget is hard; default: `settings.budget_mode`")


class GlobalBudgetSpec(_Spec):
    usd: Usd = Field(description="the spending limit in USD")
    hard: StrictBool | None = Field(None, description="whether the budget is hard; default: `settings.budget_mode`")


class PriceSpec(_Spec):
    input_per_mtok: Usd = Field(description="USD per million input tokens")
    output_per_mtok: Usd = Field(description="USD per million output tokens")


class ProviderSpec(_Spec):
    litellm_provider: NonEmptyStr = Field(
        description="the litellm route prefix, such as `anthropic`, `openai` or `ollama`"
    )
    api_key_env: EnvVarName | None = Field(
        None, description="the NAME of the environment variable that holds the API key"
    )
    base_url: BaseUrl | None = Field(None, description="the API base URL, for self-hosted or proxied providers")
    quota: QuotaSpec | None = Field(None, description="the subscription's allowance per window")
    rpm: Limit | None = Field(None, description="the provider's requests per minute")
    tpm: Limit | None = Field(None, description="the provider's tokens per minute")
    budget: BudgetSpec | None = Field(None, description="a spending limit on everything this provider serves")


class DeploymentSpec(_Spec):
    provider: ProviderRef = Field(description="the name of a provider declared under `providers`")
    model_id: NonEmptyStr = Field(description="the provider's id for the model")
    price: PriceSpec | None = Field(None, description="this deployment's price, overriding the model's")
    rpm: Limit | None = Field(None, description="this deployment's own requests per minute")
    tpm: Limit | None = Field(None, description="this deployment's own tokens per minute")
    weight: Weight = Field(1.0, description="its share of traffic under weighted strategies")
    base_url: BaseUrl | None = Field(None, description="the API base URL, overriding the provider's")


class ModelSpec(_Spec):
    capabilities: list[CapabilityRef] = Field(default_factory=_empty_list, description="what the model can do")
    context_window: Limit | None = Field(None, description="the most tokens a request may hold")
    max_output_tokens: Limit | None = Field(None, description="the most tokens a response may hold")
    price: PriceSpec | None = Field(None, description="USD per million tokens, on every deployment")
    budget: BudgetSpec | None = Field(None, description="a spending limit on this model")
    deployments: list[DeploymentSpec] = Field(
        min_length=1, description="the providers that serve the model, each with its model id"
    )


class RegistrySpec(_Spec):
    """The whole of `registry.yaml`. Top-level keys starting with `x-` are left alone: a place for YAML
    anchors that the sections merge in (`<<: *anthropic`), as Compose files have."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"patternProperties": {"^x-": {}}})

    settings: SettingsSpec = Field(default_factory=SettingsSpec)
    providers: dict[DeclaredName, ProviderSpec] = Field(default_factory=_empty_dict)
    models: dict[DeclaredName, ModelSpec] = Field(default_factory=_empty_dict)
    budgets: dict[GlobalBudgetName, GlobalBudgetSpec] = Field(default_factory=_empty_dict)

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """A section with nothing under it (`budgets:`) is an empty section; an `x-` key is no section."""
        if not isinstance(data, dict):
            return data
        return {
            key: {} if value is None and key in cls.model_fields else value
            for key, value in data.items()
            if not (isinstance(key, str) and key.startswith("x-"))
        }


def registry_json_schema() -> dict[str, Any]:
    """The JSON schema of `registry.yaml`, for editors: what the validator takes, as far as a schema
    can say it (names, and sections left empty, are the validator's own checks)."""
    schema = RegistrySpec.model_json_schema()
    sections = schema["properties"]
    for section in ("providers", "models"):
        sections[section]["propertyNames"] = {"pattern": f"^{NAME.pattern}$"}
    sections["budgets"]["propertyNames"] = {"enum": list(GLOBAL_BUDGETS)}
    for section, spec in sections.items():  # `budgets:` with nothing under it is an empty section
        sections[section] = {"anyOf": [spec, {"type": "null"}]}
    return schema


# ---------------------------------------------------------------------------------------------------
# The pipeline.


def load_registry(path: Path) -> Registry:
    """Read, validate and build the registry at `path`; raise `ConfigError` with every problem found."""
    return registry_from_text(_read(path), path)


@without_collector
def registry_from_text(text: str, path: Path) -> Registry:
    """Validate and build the registry `text`, read from `path`; raise `ConfigError` with every problem."""
    source = Source(str(path), text, yaml=True)
    root = _parse_yaml(source)
    locator = _Locator(root, source)
    spec = _validate(root, locator)
    return _Builder(locator).registry(spec, path)


def _read(path: Path) -> str:
    try:
        return read_config_text(path, str(path), "registry-read")
    except FileNotFoundError:
        problem = Diagnostic("registry-not-found", "no registry file here", path=str(path))
    except OSError as exc:
        problem = Diagnostic("registry-read", f"cannot read the registry: {exc.strerror}", path=str(path))
    raise ConfigError([problem])


def _parse_yaml(source: Source) -> object:
    try:
        return load_yaml(source.text)
    except YAMLError as exc:
        raise ConfigError([yaml_problem(exc, source)]) from None


def yaml_problem(exc: YAMLError, source: Source) -> Diagnostic:
    """The diagnostic for YAML that ruamel cannot read: a duplicate key, or a syntax error."""
    return _duplicate_key(exc, source) if isinstance(exc, DuplicateKeyError) else _syntax_error(exc, source)


def _validate(root: object, locator: _Locator) -> RegistrySpec:
    """The valid spec; else a `ConfigError` with every problem in it. Relations between parts are
    checked once each part is valid."""
    data = {} if root is None else root
    try:
        spec = RegistrySpec.model_validate(data, context={"declared": _Declared.scan(data)})
    except ValidationError as exc:
        issues = [_issue_from_pydantic(error) for error in exc.errors(include_url=False)]
        raise ConfigError(_diagnostics(issues, locator)) from None
    issues = _check_relations(spec)
    if issues:
        raise ConfigError(_diagnostics(issues, locator))
    return spec


def _check_relations(spec: RegistrySpec) -> list[_Issue]:
    """Checks across parts that are each valid on their own."""
    return [*_duplicate_deployments(spec), *_clashing_budget_names(spec), *_outputs_over_window(spec)]


def _duplicate_deployments(spec: RegistrySpec) -> Iterator[_Issue]:
    for name, model in spec.models.items():
        seen: set[str] = set()
        for index, deployment in enumerate(model.deployments):
            if deployment.provider in seen:
                yield _Issue(
                    "registry-duplicate-deployment",
                    f"model `{name}` already has a deployment on provider `{deployment.provider}`",
                    ("models", name, "deployments", index, "provider"),
                    f"a provider serves a model once: there is one `{name}@{deployment.provider}`",
                )
            seen.add(deployment.provider)


def _outputs_over_window(spec: RegistrySpec) -> Iterator[_Issue]:
    """Output tokens count toward the context window, so an output limit above it is a slip (`64M`)."""
    for name, model in spec.models.items():
        window, output = model.context_window, model.max_output_tokens
        if window is not None and output is not None and output > window:
            yield _Issue(
                "registry-value",
                f"max_output_tokens ({format_quantity('count', output)}) is larger than "
                f"the context window ({format_quantity('count', window)})",
                ("models", name, "max_output_tokens"),
                "a reply counts toward the context window, so it cannot be larger",
            )


def _clashing_budget_names(spec: RegistrySpec) -> Iterator[_Issue]:
    """Budgets are named after their window, provider or model, and the names share one namespace."""
    owners: dict[str, str] = {}
    for name, loc, owner in _budget_declarations(spec):
        if name in owners:
            yield _Issue(
                "registry-duplicate-budget",
                f"budget `{name}` is declared by {owners[name]} and by {owner}",
                loc,
                "a budget is named after its provider or model; rename one of them",
                at_key=True,
            )
        owners.setdefault(name, owner)


def _budget_declarations(spec: RegistrySpec) -> Iterator[tuple[str, Loc, str]]:
    for name in spec.budgets:
        yield name, ("budgets", name), "`budgets`"
    for name, provider in spec.providers.items():
        if provider.budget is not None:
            yield name, ("providers", name, "budget"), f"provider `{name}`"
    for name, model in spec.models.items():
        if model.budget is not None:
            yield name, ("models", name, "budget"), f"model `{name}`"


# ---------------------------------------------------------------------------------------------------
# Problems: from pydantic's errors to issues at a `loc`, and from issues to diagnostics at a span.


@dataclass(frozen=True)
class _Issue:
    """A problem at `loc`, worded for the user, before it has a span."""

    code: str
    message: str
    loc: Loc
    help: str | None = None
    at_key: bool = False  # point at the key rather than its value
    mask: bool = False  # the value may be a secret: hide it in snippets


_EXPECTED: dict[str, tuple[str, str]] = {  # pydantic error type → (code, what was expected)
    "string_type": ("registry-type", "a string"),
    "bool_type": ("registry-type", "`true` or `false`"),
    "dict_type": ("registry-type", "a mapping"),
    "model_type": ("registry-type", "a mapping"),
    "model_attributes_type": ("registry-type", "a mapping"),
    "list_type": ("registry-type", "a list"),
    "datetime_type": ("registry-type", "a date and time such as `2025-01-06T09:00:00+01:00`"),
    "datetime_parsing": ("registry-value", "a date and time such as `2025-01-06T09:00:00+01:00`"),
    "datetime_from_date_parsing": ("registry-value", "a date and time such as `2025-01-06T09:00:00+01:00`"),
    "string_too_short": ("registry-value", "a non-empty string"),
    "too_short": ("registry-value", "at least one item"),
}


_LIST_EXAMPLES = {"deployments": "one `- {provider: …, model_id: …}` per line", "capabilities": "`[tools, vision]`"}


def _issue_from_pydantic(error: ErrorDetails) -> _Issue:
    loc: Loc = tuple(error["loc"])
    at_key = bool(loc) and loc[-1] == "[key]"  # a problem with a mapping's key, not its value
    if at_key:
        loc = loc[:-1]
    kind, value, ctx = error["type"], error["input"], error.get("ctx") or {}
    if kind.startswith("registry-"):  # raised by a validator above: already worded
        return _Issue(kind, ctx["message"], loc, ctx.get("help"), at_key, bool(ctx.get("mask")))
    if kind == "extra_forbidden":
        return _unknown_key(loc, value)
    if kind == "missing":
        return _missing_key(loc)
    if kind == "literal_error":
        return _not_one_of(loc, value)
    if kind in _EXPECTED:
        code, expected = _EXPECTED[kind]
        hint = _quote_help(value) if kind == "string_type" else None if at_key else _keys_help(loc)
        if kind == "too_short":
            hint = _about(loc)
        elif kind == "list_type" and loc:
            example = f"`[{value}]`" if isinstance(value, str) else _LIST_EXAMPLES.get(str(loc[-1]))
            hint = f"write a list: {example or 'one `- item` per line, or `[a, b]`'}"
        return _Issue(code, f"expected {expected}, got {_describe(value)}", loc, hint, at_key)
    message = error["msg"]
    return _Issue("registry-value", message[:1].lower() + message[1:], loc, at_key=at_key)


# The sections whose unknown keys may be another registry's way of saying something.
_SECTIONS = (
    (ModelSpec, "model"),
    (DeploymentSpec, "deployment"),
    (ProviderSpec, "provider"),
    (PriceSpec, "price"),
    (RegistrySpec, "top"),
)


def _unknown_key(loc: Loc, value: object) -> _Issue:
    key, parent = loc[-1], loc[:-1]
    keys = list(_fields_at(parent))
    where = f" in `{_dotted(parent)}`" if parent else ""
    expected = _annotation_at(parent)
    section = next((name for spec, name in _SECTIONS if expected is spec), None)
    return _Issue(
        "registry-unknown-key",
        f"unknown key `{key}`{where}",
        loc,
        (section and foreign_key_help(section, str(key), value))
        or did_you_mean(str(key), keys)
        or (f"expected one of {_names(keys)}" if keys else None),
        at_key=True,
    )


def _missing_key(loc: Loc) -> _Issue:
    key, parent = loc[-1], loc[:-1]
    where = f"`{_dotted(parent)}`" if parent else "the registry"
    return _Issue("registry-missing-key", f"missing key `{key}` in {where}", parent, _about(loc), at_key=True)


def _about(loc: Loc) -> str | None:
    """What the key at `loc` is for, from its field's description."""
    if not loc:
        return None
    field = _fields_at(loc[:-1]).get(str(loc[-1]))
    return f"`{loc[-1]}` is {field.description}" if field is not None and field.description else None


def _not_one_of(loc: Loc, value: object) -> _Issue:
    expected = _annotation_at(loc)
    choices = [str(choice) for choice in get_args(expected)] if get_origin(expected) is Literal else []
    return _Issue(
        "registry-value",
        f"expected one of {_names(choices)}, got {_describe(value)}",
        loc,
        did_you_mean(value, choices) if isinstance(value, str) else None,
    )


def _tag_of(value: object) -> str | None:
    """The tag a scalar was written with (`!!str anthropic`), which ruamel keeps; None for plain ones."""
    tag = getattr(getattr(value, "tag", None), "value", None)
    return tag.replace("tag:yaml.org,2002:", "!!") if isinstance(tag, str) and hasattr(value, "value") else None


def _quote_help(value: object) -> str | None:
    tag = _tag_of(value)
    if tag is not None:
        return f"write it without the tag `{tag}`, in quotes if need be"
    scalar = value is not None and not isinstance(value, (dict, list))
    return "put it in quotes to make it a string" if scalar else None


def _keys_help(loc: Loc) -> str | None:
    keys = list(_fields_at(loc))
    return f"its keys are {_names(keys)}" if keys else None


def _dotted(loc: Loc) -> str:
    """`models.sonnet.deployments[0]`"""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _fields_at(loc: Loc) -> dict[str, FieldInfo]:
    """The keys the schema allows in the mapping at `loc`; empty when that is not a fixed-key mapping."""
    expected = _annotation_at(loc)
    if isinstance(expected, type) and issubclass(expected, BaseModel):
        return expected.model_fields
    return {}


def _annotation_at(loc: Loc) -> Any:
    """The type the schema expects at `loc`, found by walking RegistrySpec's annotations."""
    expected: Any = RegistrySpec
    for part in loc:
        expected = _strip(expected)
        if isinstance(expected, type) and issubclass(expected, BaseModel):
            field = expected.model_fields.get(str(part))
            if field is None:
                return None
            expected = field.annotation
        elif get_origin(expected) is dict:
            expected = get_args(expected)[1]
        elif get_origin(expected) is list:
            expected = get_args(expected)[0]
        else:
            return None
    return _strip(expected)


def _strip(annotation: Any) -> Any:
    """`X` from `Annotated[X, ...]` and from `X | None`."""
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [arg for arg in get_args(annotation) if arg is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def _diagnostics(issues: list[_Issue], locator: _Locator) -> list[Diagnostic]:
    places = [locator.find(issue.loc, issue.at_key) for issue in issues]
    secrets = [place for place, issue in zip(places, issues, strict=True) if issue.mask]
    source = Source(locator.source.path, _mask(locator.source.text, secrets), yaml=True)
    return [
        Diagnostic(issue.code, issue.message, place.span(source), help=issue.help)
        for issue, place in zip(issues, places, strict=True)
    ]


def _duplicate_key(exc: DuplicateKeyError, source: Source) -> Diagnostic:
    place = _place_of_mark(exc, source)
    return Diagnostic(
        "registry-duplicate-key",
        f"duplicate key `{place.text(source)}`",
        place.span(source),
        help="a key appears once in a mapping",
    )


def _syntax_error(exc: YAMLError, source: Source) -> Diagnostic:
    at = problem_at(exc, source.text)
    if at is None:
        place = _Place(0, 0, 1)
    else:
        line, column = at
        width = 1 if isinstance(exc, ReaderError) else _width(source.line_text(line + 1), column, None)
        place = _Place(line, column, width)
    return Diagnostic(
        "registry-syntax", f"invalid YAML: {problem_text(exc)}", place.span(source), help=problem_help(exc, source.text)
    )


def _mask(text: str, places: Iterable[_Place]) -> str:
    """`text` with the characters at `places` replaced by `*`, so no snippet shows them."""
    lines = text.splitlines(keepends=True)
    for place in places:
        if place.line < len(lines):
            line = lines[place.line]
            lines[place.line] = line[: place.column] + "*" * place.width + line[place.column + place.width :]
    return "".join(lines)


# ---------------------------------------------------------------------------------------------------
# Positions: ruamel keeps 0-based (line, column) for every key, value and item.


@dataclass(frozen=True)
class _Place:
    """0-based line and column of some text, and its width in characters."""

    line: int
    column: int
    width: int

    def span(self, source: Source) -> Span:
        return Span(source, self.line + 1, self.column + 1, self.line + 1, self.column + 1 + self.width)

    def text(self, source: Source) -> str:
        return source.line_text(self.line + 1)[self.column : self.column + self.width]


# Where a plain (unquoted) scalar ends: a flow separator, a comment, a `key: ` colon, or the line's end.
_PLAIN_END = re.compile(r"\s*(?:[,\]}]|\s#|:\s|:$|$)")


class _Locator:
    """Finds the text a `loc` names in the YAML, using the positions ruamel keeps on every node."""

    def __init__(self, root: object, source: Source) -> None:
        self.root = root
        self.source = source

    def find(self, loc: Loc, at_key: bool = False) -> _Place:
        """The value at `loc`, or its key when `at_key`. Where the path leaves the YAML (a key that
        is not there), the key of the deepest part that is."""
        node: Any = self.root
        line, column, shown = 0, 0, None
        for depth, part in enumerate(loc):
            want_key = at_key or depth < len(loc) - 1
            position = _position(node, part, want_key)
            if position is None:
                break
            if node[part] is None and not want_key and isinstance(node, CommentedMap):
                key_position = _position(node, part, key=True)  # ruamel puts a null value at the next token
                if key_position is not None:
                    position, want_key = key_position, True
            line, column = position
            shown = part if want_key and not isinstance(part, int) else node[part]
            node = node[part]
        return _Place(line, column, _width(self.source.line_text(line + 1), column, shown))

    def span(self, loc: Loc) -> Span:
        """The span of the key at `loc` (or the item, in a list), for the objects built from it."""
        return self.find(loc, at_key=True).span(self.source)


def _place_of_mark(exc: MarkedYAMLError, source: Source) -> _Place:
    """Where the YAML parser stopped."""
    mark = exc.problem_mark
    if mark is None:
        return _Place(0, 0, 1)
    return _Place(mark.line, mark.column, _width(source.line_text(mark.line + 1), mark.column, None))


def _position(node: object, part: str | int, key: bool) -> tuple[int, int] | None:
    try:
        if isinstance(node, CommentedMap) and part in node:
            return node.lc.key(part) if key else node.lc.value(part)
        if isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            return node.lc.item(part)
    except (KeyError, TypeError):  # a key merged in with `<<:` has no position of its own
        return None
    return None


def _width(line: str, column: int, shown: object) -> int:
    """How many characters of `line` from `column` spell `shown`: the scalar's own text where it is
    there as written, else the YAML token that starts at `column`."""
    rest = line[column:]
    if isinstance(shown, str) and shown and rest.startswith(shown):
        return len(shown)
    if not rest.strip():
        return 1
    if rest[0] in "'\"":
        close = rest.find(rest[0], 1)
        return close + 1 if close > 0 else len(rest.rstrip())
    if rest[0] in "[{":
        return _bracketed_width(rest)
    end = _PLAIN_END.search(rest, 1)
    return max(1, end.start() if end else len(rest))


def _bracketed_width(rest: str) -> int:
    """The width of a flow mapping or sequence, when it closes on this line."""
    depth = 0
    for index, char in enumerate(rest):
        depth += char in "[{"
        depth -= char in "]}"
        if depth == 0:
            return index + 1
    return len(rest.rstrip())


# ---------------------------------------------------------------------------------------------------
# Building the frozen registry from a valid spec.


class _Builder:
    """Turns a valid `RegistrySpec` into a `Registry`, giving each object the span of its key."""

    def __init__(self, locator: _Locator) -> None:
        self._locator = locator

    def registry(self, spec: RegistrySpec, path: Path) -> Registry:
        settings = self.settings(spec.settings)
        providers = {name: self.provider(name, p, settings) for name, p in spec.providers.items()}
        models = {name: self.model(name, m, providers, settings) for name, m in spec.models.items()}
        budgets = [
            *(self.budget(name, "global", b, ("budgets", name), settings) for name, b in spec.budgets.items()),
            *(p.budget for p in providers.values() if p.budget is not None),
            *(m.budget for m in models.values() if m.budget is not None),
        ]
        return Registry(settings, providers, models, {b.name: b for b in budgets}, path)

    def settings(self, spec: SettingsSpec) -> Settings:
        return Settings(
            timezone=ZoneInfo(spec.timezone),
            timezone_name=spec.timezone,
            state=spec.state,
            budget_mode=spec.budget_mode,
            estimated_output_tokens=round(spec.estimated_output_tokens),
            unknown_price=spec.unknown_price,
            on_state_error=spec.on_state_error,
            capabilities=frozenset(KNOWN_CAPABILITIES) | frozenset(spec.capabilities),
        )

    def provider(self, name: str, spec: ProviderSpec, settings: Settings) -> Provider:
        budget = None
        if spec.budget is not None:
            budget = self.budget(name, "provider", spec.budget, ("providers", name, "budget"), settings)
        return Provider(
            name=name,
            litellm_provider=spec.litellm_provider,
            api_key_env=spec.api_key_env,
            base_url=spec.base_url,
            quota=_quota(spec.quota, settings.timezone) if spec.quota is not None else None,
            rpm=spec.rpm,
            tpm=spec.tpm,
            budget=budget,
            span=self._locator.span(("providers", name)),
        )

    def model(self, name: str, spec: ModelSpec, providers: dict[str, Provider], settings: Settings) -> Model:
        budget = None
        if spec.budget is not None:
            budget = self.budget(name, "model", spec.budget, ("models", name, "budget"), settings)
        deployments = tuple(
            self.deployment(name, spec, index, d, providers[d.provider]) for index, d in enumerate(spec.deployments)
        )
        return Model(
            name=name,
            capabilities=frozenset(spec.capabilities),
            context_window=spec.context_window,
            max_output_tokens=spec.max_output_tokens,
            price=_price(spec.price),
            deployments=deployments,
            budget=budget,
            span=self._locator.span(("models", name)),
        )

    def deployment(
        self, model_name: str, model: ModelSpec, index: int, spec: DeploymentSpec, provider: Provider
    ) -> Deployment:
        price, price_source = _deployment_price(spec, model, provider)
        return Deployment(
            model=model_name,
            provider=provider.name,
            model_id=spec.model_id,
            litellm_model=f"{provider.litellm_provider}/{spec.model_id}",
            capabilities=frozenset(model.capabilities),
            context_window=model.context_window,
            price=price,
            price_source=price_source,
            rpm=spec.rpm,
            tpm=spec.tpm,
            weight=spec.weight,
            base_url=spec.base_url if spec.base_url is not None else provider.base_url,
            api_key_env=provider.api_key_env,
            index=index,
            span=self._locator.span(("models", model_name, "deployments", index)),
        )

    def budget(
        self,
        name: str,
        scope: Literal["global", "provider", "model"],
        spec: BudgetSpec | GlobalBudgetSpec,
        loc: Loc,
        settings: Settings,
    ) -> Budget:
        """A budget; one under `budgets:` is named by its window."""
        return Budget(
            name=name,
            usd=spec.usd,
            window=spec.window if isinstance(spec, BudgetSpec) else Window(name),
            hard=settings.budget_mode == "hard" if spec.hard is None else spec.hard,
            scope=scope,
            span=self._locator.span(loc),
        )


def _quota(spec: QuotaSpec, zone: tzinfo) -> Quota:
    window = spec.window if spec.anchor is None else replace(spec.window, anchor=_aware(spec.anchor, zone))
    return Quota(limit=spec.limit, unit=spec.unit, window=window, hard=spec.hard)


def _aware(moment: datetime, zone: tzinfo) -> datetime:
    """A plain datetime (not ruamel's subclass), in the registry's time zone when it names none."""
    plain = datetime.fromisoformat(moment.isoformat())
    return plain if plain.tzinfo is not None else plain.replace(tzinfo=zone)


def _price(spec: PriceSpec | None) -> Price | None:
    if spec is None:
        return None
    return Price(input_per_mtok=spec.input_per_mtok, output_per_mtok=spec.output_per_mtok)


def _deployment_price(
    spec: DeploymentSpec, model: ModelSpec, provider: Provider
) -> tuple[Price | None, Literal["registry", "cost_map"] | None]:
    """The deployment's own price, else its model's, else litellm's local cost map's, else unknown."""
    own = _price(spec.price or model.price)
    if own is not None:
        return own, "registry"
    looked_up = lookup_price(provider.litellm_provider, spec.model_id)
    if looked_up is not None:
        return looked_up, "cost_map"
    return None, None
