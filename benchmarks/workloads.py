"""What the benchmarks route: the same deployments, written for policyrouter and for litellm's Router.

N deployments of one model (`sonnet`) on N providers. The first two providers are called `work` and
`personal`, so the card's policy reads as written; the rest are `p2` … `p{N-1}`. Every provider has a
quota, so the facts a policy reads matter. The litellm side gets the same N deployments as N entries of
one `model_name`, each with its own key, id, rpm/tpm and price, so its usage and cost strategies have
data to work on.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # nothing of policyrouter at run time: the litellm memory probe imports this module
    from policyrouter.registry import Registry
    from policyrouter.state import StateStore

MODEL_ID = "claude-sonnet-4-20250514"
LITELLM_MODEL = f"anthropic/{MODEL_ID}"
MESSAGES = [{"role": "user", "content": "Write a haiku about routing tables."}]
QUOTA_LIMIT = 1_000_000_000  # tokens per 5h window: mock calls at thousands a second never use it up
API_KEY_ENV = "POLICYROUTER_BENCH_KEY"  # set by the harness; mock calls never send it anywhere

# One request per shipped example config: (directory under policies/, model, dry-run facts, tokens).
EXAMPLE_REQUESTS: tuple[tuple[str, str, dict[str, Any], int], ...] = (
    ("first-policy", "sonnet", {"quota": {"work": "15%"}}, 0),
    ("subscriptions", "sonnet", {"quota": {"work": "50%"}, "spend": {"run": 1.2}}, 2000),
    ("language-tour", "sonnet", {"quota": {"work": "50%"}}, 2000),
    ("swe-agent", "gpt-4o", {"errors": {"openai": 1}}, 3000),
)

# The card's policy, as the README writes it.
CARD_POLICY = "route sonnet when quota(work) > 20% prefer work else personal\n"

# A realistic block: five clauses, a `use` escape hatch on a spent budget, a strategy that reads every
# provider's quota, a hard budget checked on every deployment, and a fallback model.
BLOCK_POLICY = """\
route sonnet {
    requires tools
    strategy most_remaining
    when budget(month) < 10% and not tag("interactive") use haiku
    when quota(work) > 20% prefer work
    fallback gpt-4o
}
"""
POLICIES = {"card": CARD_POLICY, "block": BLOCK_POLICY}

# The state every decision sees: the work plan has 15% of its quota left, the personal one 60%, the
# others are fresh. Given as dry-run facts, and written into the live stores by `populate`.
QUOTA_LEFT = {"work": 0.15, "personal": 0.60}
STATIC_FACTS: dict[str, Any] = {"quota": {name: f"{share:.0%}" for name, share in QUOTA_LEFT.items()}}
MONTH_SPEND = 12.5  # USD, of a 200 USD month


def provider_names(n: int) -> list[str]:
    names = ["work", "personal", *(f"p{i}" for i in range(2, n))]
    return names[:n]


def deployments_registry(n: int, policy: str = "block") -> str:
    """registry.yaml with `sonnet` on `n` providers; for the block policy also `haiku` (its `use`) and
    `gpt-4o` on `openai` (its fallback)."""
    quota = f"quota: {{limit: {QUOTA_LIMIT // 1_000_000}M, unit: tokens, window: 5h}}"
    lines = ["settings:", "  timezone: UTC", "  estimated_output_tokens: 1000", "", "providers:"]
    for name in provider_names(n):
        lines.append(f"  {name}: {{litellm_provider: anthropic, api_key_env: {API_KEY_ENV}, {quota}}}")
    if policy == "block":
        lines.append(f"  openai: {{litellm_provider: openai, api_key_env: {API_KEY_ENV}}}")
    lines += [
        "",
        "models:",
        "  sonnet:",
        "    capabilities: [tools, vision, streaming]",
        "    context_window: 200k",
        "    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}",
        "    deployments:",
        *(f"      - {{provider: {name}, model_id: {MODEL_ID}}}" for name in provider_names(n)),
    ]
    if policy != "block":
        return "\n".join(lines) + "\n"
    lines += [
        "  haiku:",
        "    capabilities: [tools, streaming]",
        "    context_window: 200k",
        "    price: {input_per_mtok: 0.80, output_per_mtok: 4.00}",
        "    deployments:",
        *(f"      - {{provider: {name}, model_id: claude-3-5-haiku-20241022}}" for name in provider_names(n)[:2]),
        "  gpt-4o:",
        "    capabilities: [tools, vision, streaming]",
        "    context_window: 128k",
        "    price: {input_per_mtok: 2.50, output_per_mtok: 10.00}",
        "    deployments:",
        "      - {provider: openai, model_id: gpt-4o}",
        "",
        "budgets:",
        "  run: {usd: 1000000, hard: true}",
        "  month: {usd: 200}",
    ]
    return "\n".join(lines) + "\n"


def write_config(directory: Path, registry: str, policy: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "registry.yaml").write_text(registry, encoding="utf-8")
    (directory / "main.policy").write_text(policy, encoding="utf-8")
    return directory


def populate(store: StateStore, registry: Registry) -> None:
    """Write the state of `STATIC_FACTS` into a live store: settled quota use, some month spend."""
    by_provider = {d.provider: d for d in registry.models["sonnet"].deployments}
    for provider, share in QUOTA_LEFT.items():
        d = by_provider[provider]
        r = store.reserve(d, tokens=0, cost=0.0)
        used = QUOTA_LIMIT * (1.0 - share)
        store.settle(r, input_tokens=used, output_tokens=0, cost=MONTH_SPEND / len(QUOTA_LEFT), latency=0.8)


def litellm_model_list(n: int) -> list[dict[str, Any]]:
    """The same N deployments for litellm's Router: one `model_name`, N entries."""
    out = []
    for i, name in enumerate(provider_names(n)):
        out.append(
            {
                "model_name": "sonnet",
                "litellm_params": {
                    "model": LITELLM_MODEL,
                    "api_key": f"sk-bench-{name}",
                    "rpm": 1000 + 10 * i,
                    "tpm": 1_000_000 + 1000 * i,
                    "input_cost_per_token": 3e-6 * (1 + i / 100),
                    "output_cost_per_token": 15e-6 * (1 + i / 100),
                },
                "model_info": {"id": f"sonnet@{name}"},
            }
        )
    return out


# -- compile workloads ----------------------------------------------------------------------------

COMPILE_PROVIDERS = 10


def compile_registry(routes: int) -> str:
    """`routes` models m0 … m{routes-1}, each on two of ten providers with quotas."""
    lines = ["settings:", "  timezone: UTC", "", "providers:"]
    for p in range(COMPILE_PROVIDERS):
        lines.append(
            f"  p{p}: {{litellm_provider: anthropic, api_key_env: {API_KEY_ENV},"
            " quota: {limit: 5M, unit: tokens, window: 5h}}"
        )
    lines += ["", "models:"]
    for i in range(routes):
        a, b = i % COMPILE_PROVIDERS, (i + 1) % COMPILE_PROVIDERS
        lines.append(
            f"  m{i}: {{capabilities: [tools], price: {{input_per_mtok: 3, output_per_mtok: 15}},"
            f" deployments: [{{provider: p{a}, model_id: model-{i}}}, {{provider: p{b}, model_id: model-{i}}}]}}"
        )
    return "\n".join(lines) + "\n"


def compile_policy(routes: int) -> str:
    """One route per model: a condition on a quota, a preference, and (but for the first of every ten)
    a fallback to the first model of its ten, so the cycle check has edges to follow."""
    out = []
    for i in range(routes):
        a, b = i % COMPILE_PROVIDERS, (i + 1) % COMPILE_PROVIDERS
        head = i - i % 10
        fallback = f" fallback m{head}" if head != i else ""
        out.append(f"route m{i} when quota(p{a}) > 20% prefer p{a} else p{b}{fallback}")
    return "\n".join(out) + "\n"
