"""The numbers the books need: a request's estimated tokens, a reply's actual usage, and its cost.

- Estimates (for the decision and the reservation) are cheap on purpose: about four characters per
  token over the text of the messages (and tools), plus a few tokens per message. No tokenizer runs on
  the request path; the books are corrected with the provider's own usage when the reply arrives.
- Output tokens include reasoning tokens: providers bill them as output. OpenAI-style usage already
  counts them in `completion_tokens`; when a provider reports more reasoning tokens than completion
  tokens, they are taken as separate and added.
- Cost: the registry's price for the deployment that served; else litellm's local cost map for the
  model the reply says it used (a provider may serve a dated snapshot), else for the deployment's
  model id; else unknown (None), and `settings.unknown_price` says what that means.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from policyrouter.prices import lookup_price
from policyrouter.registry import Deployment, Price, Registry

CHARS_PER_TOKEN = 4
TOKENS_PER_MESSAGE = 4


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one call. `estimated`: counted by us, not reported by the provider."""

    input_tokens: int
    output_tokens: int  # reasoning included
    reasoning_tokens: int = 0
    estimated: bool = False

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "input": self.input_tokens,
            "output": self.output_tokens,
            "reasoning": self.reasoning_tokens,
        }
        if self.estimated:
            out["estimated"] = True
        return out


def estimate_tokens(messages: Sequence[Any], tools: Sequence[Any] | None = None) -> int:
    """About four characters a token over the text of `messages` (and `tools`), a few more per message."""
    chars = 0
    for message in messages:
        content = message.get("content") if isinstance(message, Mapping) else getattr(message, "content", None)
        chars += _text_length(content)
        calls = message.get("tool_calls") if isinstance(message, Mapping) else None
        if calls:
            chars += len(json.dumps(calls, default=str))
    if tools:
        chars += len(json.dumps(tools, default=str))
    return -(-chars // CHARS_PER_TOKEN) + TOKENS_PER_MESSAGE * len(messages)


def _text_length(content: object) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, Sequence):
        total = 0
        for part in content:
            if isinstance(part, Mapping) and isinstance(part.get("text"), str):
                total += len(part["text"])
            elif isinstance(part, str):
                total += len(part)
        return total
    return 0


def text_tokens(chars: int) -> int:
    return -(-chars // CHARS_PER_TOKEN)


def usage_of(response: Any) -> Usage | None:
    """The usage a reply (or a stream's final chunk) reports, or None when it reports none."""
    usage = getattr(response, "usage", None)
    if usage is None and isinstance(response, Mapping):
        usage = response.get("usage")
    return usage_from(usage)


def usage_from(usage: Any) -> Usage | None:
    if usage is None:
        return None
    prompt = _field(usage, "prompt_tokens")
    completion = _field(usage, "completion_tokens")
    if not prompt and not completion:  # none reported: litellm puts zeros where a provider sent no usage
        return None
    details = _field(usage, "completion_tokens_details", raw=True)
    reasoning = _field(details, "reasoning_tokens") if details is not None else None
    reasoning = reasoning or _field(usage, "reasoning_tokens") or 0
    output = completion or 0
    if reasoning > output:  # reported apart from the completion tokens: bill them as output too
        output += reasoning
    return Usage(prompt or 0, output, reasoning)


def _field(obj: Any, name: str, raw: bool = False) -> Any:
    value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
    if raw:
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < math.inf:
        return int(value)
    return None  # not given, or no count (`-1000`, NaN): as a provider that reports none


def price_of(registry: Registry, deployment: Deployment, served_model: str | None) -> Price | None:
    """The price of the call that happened (see the module's docstring for the order)."""
    if deployment.price_source == "registry":
        return deployment.price
    if served_model:
        litellm_provider = registry.providers[deployment.provider].litellm_provider
        served = served_model.removeprefix(litellm_provider + "/")
        if served != deployment.model_id:
            price = lookup_price(litellm_provider, served)
            if price is not None:
                return price
    return deployment.price


def cost_of(price: Price | None, usage: Usage) -> float | None:
    return None if price is None else price.cost(usage.input_tokens, usage.output_tokens)


def usage_in_error(exc: BaseException) -> Usage | None:
    """Usage a failed call still reports (a provider that billed, then raised), or None."""
    body = getattr(exc, "body", None)
    if isinstance(body, Mapping) and body.get("usage") is not None:
        return usage_from(body["usage"])
    return usage_from(getattr(exc, "usage", None))


def reply_chars(response: Any) -> int:
    """Characters of text in a reply's choices, to estimate its tokens when it reports no usage."""
    return sum(message_chars(getattr(choice, "message", None)) for choice in getattr(response, "choices", None) or ())


def message_chars(message: Any) -> int:
    """Characters a reply's message (or a stream's delta) produced: its text, its reasoning, and the
    names and arguments of the tools it calls, which an agent's replies are often made of."""
    total = 0
    for name in ("content", "reasoning_content"):
        text = getattr(message, name, None)
        if isinstance(text, str):
            total += len(text)
    calls = getattr(message, "tool_calls", None)
    legacy = getattr(message, "function_call", None)
    if not calls and legacy is None:  # most replies, and every chunk of plain text
        return total
    for function in (*(getattr(call, "function", None) for call in calls or ()), legacy):
        for name in ("name", "arguments"):
            text = getattr(function, name, None)
            if isinstance(text, str):
                total += len(text)
    return total
