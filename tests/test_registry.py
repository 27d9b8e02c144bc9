"""Loading `registry.yaml`: good registries build the expected objects, bad ones give diagnostics.

Each bad registry is `tests/golden/registry/NAME.yaml`; its rendered diagnostics are compared verbatim
with `NAME.txt`. After a deliberate change, regenerate them with `UPDATE_GOLDEN=1 pytest
tests/test_registry.py` and read every changed file before keeping it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

import pytest

from policyrouter import prices
from policyrouter.diagnostics import render
from policyrouter.errors import ConfigError
from policyrouter.registry import (
    KNOWN_CAPABILITIES,
    Budget,
    Deployment,
    Price,
    Provider,
    Quota,
    Registry,
    Window,
)
from policyrouter.registry_schema import load_registry, registry_json_schema

GOLDEN = Path(__file__).parent / "golden" / "registry"
REPO = Path(__file__).parent.parent

SPEC_EXAMPLE = """\
settings:
  timezone: Europe/Berlin        # windows and hour/weekday facts; default UTC
  state: sqlite:///.policyrouter/state.db   # default (relative to the config dir)
  budget_mode: soft              # for budgets that don't say hard/soft; default soft
  estimated_output_tokens: 1000  # for cost estimates when a request gives no max_tokens
  unknown_price: deny            # deny | warn | allow

providers:
  work:
    litellm_provider: anthropic  # the litellm route prefix
    api_key_env: ANTHROPIC_API_KEY_WORK   # the NAME of the variable; keys never live in config
    base_url: null
    quota: {limit: 5M, unit: tokens, window: 5h}   # unit: tokens | requests | usd
    rpm: 50
    tpm: 400k
  personal:
    litellm_provider: anthropic
    api_key_env: ANTHROPIC_API_KEY_PERSONAL
    quota: {limit: 2M, unit: tokens, window: 5h}
  openai:
    litellm_provider: openai
    api_key_env: OPENAI_API_KEY
    budget: {usd: 100, window: month, hard: true}
  local:
    litellm_provider: ollama
    base_url: http://127.0.0.1:11434

models:
  sonnet:
    capabilities: [tools, vision, streaming]
    context_window: 200k
    max_output_tokens: 64k
    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}   # USD per million tokens
    deployments:
      - {provider: work, model_id: claude-sonnet-4-20250514}
      - {provider: personal, model_id: claude-sonnet-4-20250514}
  gpt-4o:
    capabilities: [tools, vision, json, streaming]
    context_window: 128k
    price: {input_per_mtok: 2.50, output_per_mtok: 10.00}
    deployments:
      - {provider: openai, model_id: gpt-4o, rpm: 60}
  local-coder:
    capabilities: [streaming]
    context_window: 32k
    price: {input_per_mtok: 0, output_per_mtok: 0}
    deployments:
      - {provider: local, model_id: qwen2.5-coder}

budgets:
  run:   {usd: 5.00, hard: true}
  month: {usd: 200.00}
"""


def load_text(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> Registry:
    """Load `text` as `registry.yaml`, by the relative path a CLI user would give."""
    monkeypatch.chdir(tmp_path)
    Path("registry.yaml").write_text(textwrap.dedent(text), encoding="utf-8")
    return load_registry(Path("registry.yaml"))


def diagnostics_of(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_text(tmp_path, monkeypatch, text)
    return caught.value


# ---------------------------------------------------------------------------------------------------
# The spec's example


@pytest.fixture
def example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Registry:
    return load_text(tmp_path, monkeypatch, SPEC_EXAMPLE)


def test_example_settings(example: Registry) -> None:
    s = example.settings
    assert s.timezone == ZoneInfo("Europe/Berlin")
    assert s.timezone_name == "Europe/Berlin"
    assert (s.state, s.budget_mode, s.estimated_output_tokens, s.unknown_price, s.on_state_error) == (
        "sqlite:///.policyrouter/state.db",
        "soft",
        1000,
        "deny",
        None,
    )
    assert s.capabilities == frozenset(KNOWN_CAPABILITIES)
    assert example.path == Path("registry.yaml")


def test_example_providers(example: Registry) -> None:
    five_hours = Window("5h", 5 * 3600.0)
    assert list(example.providers) == ["work", "personal", "openai", "local"]
    assert example.providers["work"] == Provider(
        name="work",
        litellm_provider="anthropic",
        api_key_env="ANTHROPIC_API_KEY_WORK",
        quota=Quota(limit=5e6, unit="tokens", window=five_hours, hard=True),
        rpm=50,
        tpm=400e3,
    )
    assert example.providers["personal"].quota == Quota(limit=2e6, unit="tokens", window=five_hours)
    assert example.providers["openai"].budget == Budget(
        name="openai", usd=100.0, window=Window("month"), hard=True, scope="provider"
    )
    assert example.providers["local"] == Provider(
        name="local", litellm_provider="ollama", base_url="http://127.0.0.1:11434"
    )


def test_example_models_and_deployments(example: Registry) -> None:
    assert list(example.models) == ["sonnet", "gpt-4o", "local-coder"]
    sonnet = example.models["sonnet"]
    assert sonnet.capabilities == {"tools", "vision", "streaming"}
    assert (sonnet.context_window, sonnet.max_output_tokens) == (200e3, 64e3)
    assert sonnet.price == Price(3.0, 15.0)
    assert [d.key for d in sonnet.deployments] == ["sonnet@work", "sonnet@personal"]
    assert sonnet.deployments[1] == Deployment(
        model="sonnet",
        provider="personal",
        model_id="claude-sonnet-4-20250514",
        litellm_model="anthropic/claude-sonnet-4-20250514",
        capabilities=frozenset({"tools", "vision", "streaming"}),
        context_window=200e3,
        price=Price(3.0, 15.0),
        price_source="registry",
        api_key_env="ANTHROPIC_API_KEY_PERSONAL",
        index=1,
    )
    (gpt,) = example.models["gpt-4o"].deployments
    assert (gpt.litellm_model, gpt.rpm, gpt.tpm, gpt.weight) == ("openai/gpt-4o", 60, None, 1.0)
    (coder,) = example.models["local-coder"].deployments
    assert (coder.price, coder.base_url, coder.api_key_env) == (Price(0, 0), "http://127.0.0.1:11434", None)


def test_example_budgets(example: Registry) -> None:
    assert example.budgets == {
        "run": Budget("run", 5.0, Window("run"), hard=True, scope="global"),
        "month": Budget("month", 200.0, Window("month"), hard=False, scope="global"),
        "openai": Budget("openai", 100.0, Window("month"), hard=True, scope="provider"),
    }
    gpt = example.models["gpt-4o"].deployments[0]
    assert [b.name for b in example.budgets_for(gpt)] == ["run", "month", "openai"]


def test_objects_carry_the_span_of_their_key(example: Registry) -> None:
    work = example.providers["work"]
    assert work.span is not None
    assert (str(work.span), work.span.text) == ("registry.yaml:9:3", "work")
    deployment = example.models["gpt-4o"].deployments[0]
    assert deployment.span is not None
    assert deployment.span.text == "{provider: openai, model_id: gpt-4o, rpm: 60}"
    budget = example.budgets["month"]
    assert budget.span is not None and budget.span.text == "month"


# ---------------------------------------------------------------------------------------------------
# Defaults and overrides


def test_x_keys_at_the_top_hold_anchors_the_sections_merge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load_text(
        tmp_path,
        monkeypatch,
        """
        x-anthropic: &anthropic {litellm_provider: anthropic, quota: {limit: 5M, unit: tokens, window: 5h}}
        providers:
          work: {<<: *anthropic, api_key_env: KEY_WORK}
          personal: {<<: *anthropic, api_key_env: KEY_PERSONAL}
        """,
    )
    assert list(registry.providers) == ["work", "personal"]
    assert {p.litellm_provider for p in registry.providers.values()} == {"anthropic"}
    assert [p.api_key_env for p in registry.providers.values()] == ["KEY_WORK", "KEY_PERSONAL"]
    error = diagnostics_of(tmp_path, monkeypatch, "y-anthropic: {}\n")  # only `x-` is left alone
    assert [d.code for d in error.diagnostics] == ["registry-unknown-key"]


def test_empty_registry_has_the_documented_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load_text(tmp_path, monkeypatch, "# nothing yet\nbudgets:\n")
    assert registry.settings.timezone_name == "UTC"
    assert registry.settings.state == "sqlite:///.policyrouter/state.db"
    assert (registry.settings.budget_mode, registry.settings.unknown_price) == ("soft", "deny")
    assert (registry.providers, registry.models, registry.budgets) == ({}, {}, {})


def test_deployment_overrides_and_hard_budget_mode(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load_text(
        tmp_path,
        monkeypatch,
        """
        settings: {budget_mode: hard, capabilities: [web_search], estimated_output_tokens: 2k}
        providers:
          proxy: {litellm_provider: openai, base_url: http://proxy, budget: {usd: 10, window: day}}
        models:
          m:
            capabilities: [web_search]
            price: {input_per_mtok: 1, output_per_mtok: 2}
            budget: {usd: 1, window: 1h, hard: false}
            deployments:
              - {provider: proxy, model_id: x, price: {input_per_mtok: 0.5, output_per_mtok: 1},
                 weight: 3, tpm: 1.5M, base_url: http://other}
        budgets:
          day: {usd: 50}
        """,
    )
    assert registry.settings.estimated_output_tokens == 2000
    assert "web_search" in registry.settings.capabilities
    (d,) = registry.models["m"].deployments
    assert (d.price, d.price_source, d.weight, d.tpm, d.base_url) == (
        Price(0.5, 1.0),
        "registry",
        3.0,
        1.5e6,
        "http://other",
    )
    assert registry.budgets["day"].hard is True  # from budget_mode
    assert registry.budgets["proxy"].hard is True
    assert registry.budgets["m"] == Budget("m", 1.0, Window("1h", 3600.0), hard=False, scope="model")


def test_price_falls_back_to_the_cost_map_then_unknown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load_text(
        tmp_path,
        monkeypatch,
        """
        providers:
          openai: {litellm_provider: openai}
          local: {litellm_provider: ollama}
        models:
          gpt-4o: {deployments: [{provider: openai, model_id: gpt-4o}]}
          mystery: {deployments: [{provider: local, model_id: no-such-model-anywhere}]}
        """,
    )
    gpt = registry.models["gpt-4o"].deployments[0]
    assert gpt.price_source == "cost_map" and gpt.price is not None and gpt.price.input_per_mtok > 0
    assert registry.models["gpt-4o"].price is None
    mystery = registry.models["mystery"].deployments[0]
    assert (mystery.price, mystery.price_source) == (None, None)


def test_quota_anchor_is_in_the_registry_timezone_unless_it_names_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = load_text(
        tmp_path,
        monkeypatch,
        """
        settings: {timezone: Europe/Berlin}
        providers:
          a: {litellm_provider: x, quota: {limit: 100, unit: requests, window: 5h, anchor: 2025-01-06T09:00:00}}
          b: {litellm_provider: x, quota: {limit: 5, unit: usd, window: 1d, anchor: "2025-01-06T09:00:00Z"}}
        """,
    )
    a, b = (registry.providers[name].quota for name in "ab")
    assert a is not None and b is not None
    assert a.window.anchor == datetime(2025, 1, 6, 9, tzinfo=ZoneInfo("Europe/Berlin"))
    assert b.window == Window("1d", 86400.0, datetime(2025, 1, 6, 9, tzinfo=timezone.utc))
    assert type(b.window.anchor) is datetime
    assert b.window.anchor.utcoffset() == timedelta(0)


# ---------------------------------------------------------------------------------------------------
# Bad registries: golden diagnostics

BAD_REGISTRIES: list[tuple[str, list[str]]] = [  # case name, the codes it must report
    ("unknown-key", ["registry-unknown-key"]),
    ("price-type", ["registry-type"]),
    ("negative-price", ["registry-value"]),
    ("zero-limit", ["registry-value", "registry-value", "registry-value", "registry-value"]),
    ("output-over-window", ["registry-value"]),
    ("name-a-policy-cannot-use", ["registry-value", "registry-value", "registry-value"]),
    ("not-finite", ["registry-type"] * 6),
    ("unknown-provider", ["registry-unknown-provider"]),
    ("unknown-capability", ["registry-unknown-capability"]),
    ("quota-unit", ["registry-value"]),
    ("bad-window", ["registry-value"] * 5),
    ("window-length", ["registry-value", "registry-value", "registry-value", "registry-type", "registry-value"]),
    ("base-url", ["registry-value", "registry-value"]),
    (
        "keys-of-other-registries",
        [
            "registry-unknown-key",
            "registry-missing-key",
            *["registry-unknown-key"] * 4,
            "registry-unknown-capability",
            *["registry-unknown-key"] * 3,
        ],
    ),
    ("malformed-yaml", ["registry-syntax"]),
    ("missing-key", ["registry-missing-key", "registry-missing-key"]),
    ("bad-timezone", ["registry-value"]),
    ("budget-name", ["registry-unknown-key"]),
    ("api-key-in-config", ["registry-secret"]),
    ("state-password", ["registry-secret"]),
    ("lowercase-env-name", ["registry-value"]),
    ("duplicate-deployment", ["registry-duplicate-deployment"]),
    ("duplicate-key", ["registry-duplicate-key"]),
    ("date-that-is-no-date", ["registry-syntax"]),
    ("surrogate-escape", ["registry-syntax"]),
    ("tab-inside-a-line", ["registry-syntax"]),
    ("tagged-value", ["registry-type"]),
    ("duplicate-budget", ["registry-duplicate-budget"]),
    ("wrong-shapes", ["registry-value", "registry-type", "registry-type", "registry-type", "registry-value"]),
    (
        "many-errors",
        [
            "registry-unknown-key",
            "registry-type",
            "registry-value",
            "registry-type",
            "registry-unknown-capability",
            "registry-missing-key",
            "registry-value",
            "registry-unknown-provider",
            "registry-type",
        ],
    ),
]


@pytest.mark.parametrize(("name", "codes"), BAD_REGISTRIES, ids=[name for name, _ in BAD_REGISTRIES])
def test_bad_registry(name: str, codes: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = diagnostics_of(tmp_path, monkeypatch, (GOLDEN / f"{name}.yaml").read_text(encoding="utf-8"))
    rendered = render(error.diagnostics) + "\n"
    assert [d.code for d in sorted(error.diagnostics, key=lambda d: d.sort_key())] == codes
    assert all(d.span is not None and d.span.path == "registry.yaml" for d in error.diagnostics)
    assert "Traceback" not in rendered and "pydantic" not in rendered.lower()
    golden = GOLDEN / f"{name}.txt"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(rendered, encoding="utf-8")
    assert golden.exists(), f"no golden file {golden.name}: run with UPDATE_GOLDEN=1 and check it by eye"
    assert rendered == golden.read_text(encoding="utf-8")


def test_every_golden_input_is_a_case() -> None:
    assert sorted(p.stem for p in GOLDEN.glob("*.yaml")) == sorted(name for name, _ in BAD_REGISTRIES)


def test_a_key_in_api_key_env_is_never_shown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-proj-Xq7TOPSECRETvalue9"
    assert secret in (GOLDEN / "api-key-in-config.yaml").read_text(encoding="utf-8")
    error = diagnostics_of(tmp_path, monkeypatch, (GOLDEN / "api-key-in-config.yaml").read_text(encoding="utf-8"))
    for fmt in ("text", "json", "github"):
        assert "TOPSECRET" not in render(error.diagnostics, fmt)
    assert "TOPSECRET" not in str(error)


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        ("redis://10.0.0.5:6379/0", False),
        ("rediss://default@redis.example.com:6380/0", False),  # a user name alone
        ("rediss://default:${REDIS_PASSWORD}@redis.example.com:6380/0", False),
        ("redis://:${REDIS_PASSWORD}@10.0.0.5:6379/0", False),
        ("sqlite:///state@home:x/state.db", False),  # a path, not a password
        ("redis://:hunter2@10.0.0.5:6379/0", True),
        ("rediss://default:Xk9-pass@redis.example.com:6380/0", True),
        ("unix:///run/redis.sock?db=0&password=hunter2", True),
        ("redis://:${REDIS_PASSWORD}x@10.0.0.5:6379/0", True),  # not only a reference
    ],
)
def test_a_password_in_the_state_url_is_a_secret(
    url: str, secret: bool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = f"settings:\n  state: {url}\n"
    if not secret:
        assert load_text(tmp_path, monkeypatch, text).settings.state == url
        return
    error = diagnostics_of(tmp_path, monkeypatch, text)
    assert [d.code for d in error.diagnostics] == ["registry-secret"]
    parts = urlsplit(url)
    password = parts.password or parse_qs(parts.query)["password"][0]
    for fmt in ("text", "json", "github"):
        assert password not in render(error.diagnostics, fmt)


def test_a_state_url_that_does_not_parse_is_placed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = diagnostics_of(tmp_path, monkeypatch, 'settings:\n  state: "redis://[::1/0"\n')
    (problem,) = error.diagnostics
    assert (problem.code, problem.message) == ("registry-value", "the state URL does not parse: Invalid IPv6 URL")
    assert problem.span is not None and (problem.span.line, problem.span.column) == (2, 10)


# (a provider's line, or settings' state, the diagnostic): each was taken as something else
ODD_VALUES = [
    # `$NAME` was called a secret in config, masked, with no word of the `$`
    ("    api_key_env: $OPENAI_API_KEY\n", "registry-value", "without `$`", "write `OPENAI_API_KEY`"),
    ("    api_key_env: ${OPENAI_API_KEY}\n", "registry-value", "without `$`", "write `OPENAI_API_KEY`"),
    # a text of digits was read as seconds since 1970, as a number is not
    ("    quota: {limit: 5M, unit: tokens, window: 5h, anchor: '1736150400'}\n", "registry-type", "a date", None),
    # a URL with a space was taken; one with a line break was shown with the break in the message
    ("    base_url: 'http://x y'\n", "registry-value", "which has no spaces", "e.g. `http://127.0.0.1:11434`"),
    ("    base_url: |\n      http://x\n", "registry-value", 'got `"http://x\\n"`', "e.g. `http://127.0.0.1:11434`"),
]


@pytest.mark.parametrize(
    ("line", "code", "said", "help"), ODD_VALUES, ids=["$NAME", "${NAME}", "digits as a date", "space", "line break"]
)
def test_odd_values_get_the_diagnostic_that_says_what_to_write(
    line: str, code: str, said: str, help: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "providers:\n  work:\n    litellm_provider: anthropic\n" + line
    (problem,) = diagnostics_of(tmp_path, monkeypatch, text).diagnostics
    assert problem.code == code and said in problem.message
    assert help is None or problem.help == help


def test_a_state_url_with_a_nul_is_refused_where_it_is_written(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # `check` took it; `status` then raised "embedded null byte"
    (problem,) = diagnostics_of(tmp_path, monkeypatch, 'settings:\n  state: "sqlite:///a\\0b.db"\n').diagnostics
    assert (problem.code, problem.message) == ("registry-value", "the state URL holds a NUL character")


def test_one_deployment_written_as_a_mapping_gets_the_list_form(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = "providers:\n  work: {litellm_provider: x}\nmodels:\n  m:\n    deployments: {provider: work, model_id: m}\n"
    (problem,) = diagnostics_of(tmp_path, monkeypatch, text).diagnostics
    assert problem.message == "expected a list, got a mapping"
    assert problem.help == "write a list: one `- {provider: …, model_id: …}` per line"


def test_missing_file_has_a_path_and_no_span(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_registry(tmp_path / "nowhere" / "registry.yaml")
    (diagnostic,) = caught.value.diagnostics
    assert diagnostic.code == "registry-not-found"
    assert diagnostic.span is None
    assert diagnostic.path == str(tmp_path / "nowhere" / "registry.yaml")


def test_relations_are_checked_only_once_values_are_valid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = diagnostics_of(
        tmp_path,
        monkeypatch,
        """
        providers: {p: {litellm_provider: x, rpm: lots}}
        models:
          m: {deployments: [{provider: p, model_id: a}, {provider: p, model_id: b}]}
        """,
    )
    assert [d.code for d in error.diagnostics] == ["registry-type"]


# The YAML is read first without the scanner that keeps comments, and again by the full round-trip
# loader where that fails: these texts are read differently by the two, and must read as the full one.


def test_a_value_only_the_full_reader_takes_still_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registry = load_text(
        tmp_path,
        monkeypatch,
        """\
        providers:
          local: {litellm_provider: ollama}
        models:
          coder:
            deployments:
              - {provider: local, model_id: :latest}   # `:latest` is a plain scalar here
        """,
    )
    assert registry.models["coder"].deployments[0].model_id == ":latest"
    assert str(registry.providers["local"].span) == "registry.yaml:2:3"


def test_broken_yaml_is_reported_where_the_full_reader_stops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    error = diagnostics_of(tmp_path, monkeypatch, "providers:\n  work: {litellm_p}rovider: anthropic}\n")
    assert render(error.diagnostics) == (
        "registry.yaml:2:27: error[registry-syntax]: invalid YAML: mapping values are not allowed here\n"
        "  |\n"
        "2 |   work: {litellm_p}rovider: anthropic}\n"
        "  |                           ^^^^^^^^^^^"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("providers:\n  work: {litellm_provider: anth\x00ropic}\n", "2:32"),
        ("\x07providers: {}\n", "1:1"),
        ("# one\u2028two\nproviders: {}\x1b\n", "3:14"),  # lines counted as the snippet counts them
    ],
)
def test_a_character_yaml_does_not_allow_is_placed_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, where: str
) -> None:
    (error,) = diagnostics_of(tmp_path, monkeypatch, text).diagnostics
    assert error.location == f"registry.yaml:{where}"
    assert error.message.startswith("invalid YAML: unacceptable character #x") and "position" not in error.message
    assert error.help is not None and "printable" in error.help
    caret = render([error]).splitlines()[-2]
    assert caret.endswith("^") and caret.count("^") == 1


def test_json_schema_describes_the_file() -> None:
    schema = registry_json_schema()
    assert list(schema["properties"]) == ["settings", "providers", "models", "budgets"]
    provider = schema["$defs"]["ProviderSpec"]
    assert provider["additionalProperties"] is False
    assert provider["required"] == ["litellm_provider"]


# ---------------------------------------------------------------------------------------------------
# Prices from litellm's local cost map


def test_lookup_price_reads_the_local_cost_map() -> None:
    price = prices.lookup_price("openai", "gpt-4o")
    assert price is not None
    assert 0 < price.input_per_mtok < price.output_per_mtok < 1000  # per million tokens, not per token
    assert prices.lookup_price("openai", "no-such-model-anywhere") is None
    assert prices.lookup_price("no-such-provider", "no-such-model-anywhere") is None


def test_lookup_price_prefers_the_provider_entry(monkeypatch: pytest.MonkeyPatch) -> None:
    cost_map = {
        "m": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06},
        "azure/m": {"litellm_provider": "azure", "input_cost_per_token": 3e-06, "output_cost_per_token": 4e-06},
        "n": {"litellm_provider": "openai", "input_cost_per_token": 1.1e-07, "output_cost_per_token": 0},
        "free-text": {"litellm_provider": "openai", "input_cost_per_token": "n/a"},
    }
    monkeypatch.setattr(prices, "_cost_map", lambda: cost_map)
    assert prices.lookup_price("azure", "m") == Price(3.0, 4.0)
    assert prices.lookup_price("openai", "m") == Price(1.0, 2.0)
    assert prices.lookup_price("openai", "n") == Price(0.11, 0.0)
    assert prices.lookup_price("bedrock", "m") is None  # a bare id is another provider's price
    assert prices.lookup_price("openai", "free-text") is None


def test_prices_and_registry_do_not_import_litellm(tmp_path: Path) -> None:
    (tmp_path / "registry.yaml").write_text(
        "providers: {openai: {litellm_provider: openai}}\n"
        "models: {gpt-4o: {deployments: [{provider: openai, model_id: gpt-4o}]}}\n",
        encoding="utf-8",
    )
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from policyrouter.prices import lookup_price
        from policyrouter.registry_schema import load_registry
        assert lookup_price("openai", "gpt-4o") is not None
        registry = load_registry(Path({str(tmp_path / "registry.yaml")!r}))
        assert registry.models["gpt-4o"].deployments[0].price_source == "cost_map"
        assert "litellm" not in sys.modules, "litellm was imported"
        """
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize(
    ("section", "key", "value", "help"),
    [
        ("model", "usd_per_1k_output", 15e-3, "`price: {output_per_mtok: 15}`"),
        ("deployment", "input_cost_per_token", 2.5e-6, "`price: {input_per_mtok: 2.5}`"),
        ("model", "usd_per_1k_input", 10**400, "`price: {input_per_mtok: …}`"),  # raised OverflowError
        ("top", "budget_usd_per_run", 10**400, "`budgets: {run: {usd: 5, hard: true}}`"),
        ("top", "fallback_chain", ["a", "b", "c"], "`route a fallback b, c`"),
        ("provider", "rpm_limit", 5, None),
        # in `price:` a price per 1k said `did you mean input_per_mtok?`: a price 1,000 times too low
        ("price", "input_per_1k", 5e-3, "`input_per_mtok: 5`"),
        ("price", "output_cost_per_token", 1.5e-5, "`output_per_mtok: 15`"),
        ("price", "input_per_mtk", 0.15, None),  # a misspelling: the closest name is the help
        ("model", "fallback_chain", ["b", "c"], "in the model's route: `fallback b, c`"),
    ],
)
def test_keys_of_other_registries_say_where_they_go(section: str, key: str, value: object, help: str | None) -> None:
    from policyrouter.registry_hints import foreign_key_help

    found = foreign_key_help(section, key, value)
    assert found == help if help is None else help in (found or "")


@pytest.mark.parametrize(
    ("text", "help"),
    [
        ("5h30m", "a length has one unit: `330m`"),
        ("2 weeks", "a length in days: `14d`"),
        ("9" * 400 + "h30m", None),  # the hint's arithmetic raised, and the error read as the hint's
    ],
)
def test_windows_as_people_write_them_get_the_form_to_write(text: str, help: str | None) -> None:
    from policyrouter.registry_hints import window_help

    assert window_help(text, ("run", "day", "week", "month")) == help
