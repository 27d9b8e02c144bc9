"""Help for what other registries, and people, write otherwise than `registry.yaml` does.

People bring their model lists from litellm (`input_cost_per_token`), from a config that puts a
model's provider, id and limits on the model itself, or from feature requests that put a fallback
chain and a run budget beside the models. Each such key is an unknown key here; the help says where
the same thing is written, with the value carried over where it can be (a price per 1k tokens becomes
one per million). Windows are written as people say them (`1w`, `5h30m`, `5 hours`); the help gives
the form the registry reads.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from policyrouter.diagnostics import did_you_mean
from policyrouter.quantities import QuantityError, finite_number, parse_duration

# Where a model's own keys go in this registry.
_ON_A_DEPLOYMENT = {
    "provider": "`deployments: [{provider: P, model_id: ID}]`: one per provider that serves it",
    "model_id": "`deployments: [{provider: P, model_id: ID}]`: each provider has its own id for it",
    "litellm_provider": "`providers: {P: {litellm_provider: …}}`, and the model lists P under `deployments`",
    "api_key_env": "`providers: {P: {api_key_env: …}}`: keys belong to the provider",
    "base_url": "the provider (`providers: {P: {base_url: …}}`) or one deployment",
    "rpm": "a deployment (`deployments: [{provider: P, model_id: ID, rpm: 60}]`) or its provider",
    "tpm": "a deployment (`deployments: [{provider: P, model_id: ID, tpm: 400k}]`) or its provider",
    "weight": "a deployment (`deployments: [{provider: P, model_id: ID, weight: 2}]`)",
}
# Keys of a whole registry in other tools' configs.
_AT_THE_TOP = {
    "hard_stop_on_budget": "a budget is hard with `hard: true`, or every budget with `settings.budget_mode: hard`",
    "default": "a policy decides where each request goes; there is no default model",
}
_PRICE_SIDE = re.compile(r"input|prompt|output|completion")
_PRICE_WORD = re.compile(r"cost|price|usd|per_")


def foreign_key_help(section: str, key: str, value: object) -> str | None:
    """Where `key`, unknown in `section` (`model`, `deployment`, `provider`, `price` or `top`), is
    written here."""
    key = key.lower()
    side = _PRICE_SIDE.search(key)
    if side and _PRICE_WORD.search(key) and section in ("model", "deployment", "provider", "price"):
        per_million = _per_million(key, value)
        name = "input_per_mtok" if side.group() in ("input", "prompt") else "output_per_mtok"
        if section == "price":  # a misspelt `input_per_mtok` gets the closest name; a price per 1k, its value
            return None if per_million == "…" else f"a price is USD per million tokens: `{name}: {per_million}`"
        where = "under `price`" if section != "provider" else "under a model's or a deployment's `price`"
        return f"a price is USD per million tokens, {where}: `price: {{{name}: {per_million}}}`"
    if section == "model" and key in _ON_A_DEPLOYMENT:
        return f"a model's `{key}` goes on " + _ON_A_DEPLOYMENT[key]
    if section == "model" and key in ("fallback_chain", "fallbacks"):
        chain = [str(m) for m in value] if isinstance(value, list) and value else ["gpt-4o", "haiku"]
        return f"fallbacks are written in a policy, in the model's route: `fallback {', '.join(chain)}`"
    if section == "top" and key in ("fallback_chain", "fallbacks"):
        chain = [str(m) for m in value] if isinstance(value, list) and len(value) > 1 else ["gpt-4o", "haiku"]
        return f"fallbacks are written in a policy: `route {chain[0]} fallback {', '.join(chain[1:])}`"
    if section == "top" and key == "budget_usd_per_run":
        usd = finite_number(value)
        return f"a run's budget is `budgets: {{run: {{usd: {5.0 if usd is None else usd:g}, hard: true}}}}`"
    if section == "top":
        return _AT_THE_TOP.get(key)
    return None


def _per_million(key: str, value: object) -> str:
    """The price per million tokens that `value`, priced per what `key` says, comes to; `…` if unknown."""
    if "mtok" in key or "million" in key or "1m" in key:
        scale = 1.0
    elif "1k" in key or "thousand" in key:
        scale = 1e3
    elif "token" in key:
        scale = 1e6
    else:
        return "…"
    number = finite_number(value)
    return "…" if number is None else f"{number * scale:.6g}"


_LENGTH_PARTS = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)")


def window_help(text: str, names: Sequence[str]) -> str | None:
    """How to write the window that `text` likely means."""
    words = text.strip().lower()
    if re.fullmatch(r"\d+(\.\d+)?", words):
        return f"a length needs its unit: `{words}s`, `{words}m`, `{words}h` or `{words}d`"
    weeks = re.fullmatch(r"(\d*)\s*(w|wk|weeks?|weekly)", words)
    if weeks and weeks.group(1) not in ("", "1"):
        return f"a length in days: `{7 * int(weeks.group(1))}d`"
    if weeks:
        return "a week is `week` (calendar weeks, from Monday) or `7d` (a rolling length)"
    if re.fullmatch(r"\d*\s*(y|yr|years?|yearly|annual)", words):
        return "the longest calendar window is `month`; a year is `365d`"
    parts = _LENGTH_PARTS.findall(words)
    if len(parts) > 1 and "".join(n + u for n, u in parts) == words.replace(" ", ""):
        try:
            seconds = sum(parse_duration(n + u) for n, u in parts)
        except QuantityError:  # more digits than a float holds
            return None
        return f"a length has one unit: `{_trim_length(seconds)}`"
    if len(parts) == 1 and words != "".join(parts[0]):  # `5 hours`, `30mins`
        return f"a length is a number and a unit, such as `{''.join(parts[0])}`"
    return did_you_mean(text, names)


def _trim_length(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{round(seconds * 1000)}ms"
