"""Why an attempt failed and what to do next: litellm's exceptions sorted into a few kinds.

| kind | what the executor does (`Failure.action`) |
| --- | --- |
| `rate_limited` (429) | `cooldown`: the provider, for `retry-after` or a default; next deployment |
| `timeout`, `server_error` (5xx), `connection` | `retry` the same deployment with backoff, then next |
| `context_window` | `shrink`: skip deployments whose window is not larger; next |
| `auth`, `permission`, `credits` | `cooldown`: the provider, for longer; next |
| `bad_request`, `content_policy` | `fail` fast: it would fail everywhere |
| `not_found`, `unsupported`, `error` | `next` deployment |

docs/executor.md maps each kind to the litellm exception classes it comes from.

The specific classes are checked before their bases (ContextWindowExceededError and
PaymentRequiredError are BadRequestErrors; an "insufficient quota" 429 is out of credits, not a rate limit).
"""

from __future__ import annotations

import email.utils
import math
import random
import re
import time
from dataclasses import dataclass
from typing import Any, Literal

Action = Literal["retry", "cooldown", "shrink", "next", "fail"]

ACTIONS: dict[str, Action] = {
    "rate_limited": "cooldown",
    "timeout": "retry",
    "server_error": "retry",
    "connection": "retry",
    "context_window": "shrink",
    "auth": "cooldown",
    "permission": "cooldown",
    "credits": "cooldown",
    "bad_request": "fail",
    "content_policy": "fail",
    "not_found": "next",
    "unsupported": "next",
    "error": "next",
}
# Kinds that are not the provider's fault: they do not count in `errors(P)`.
NOT_THE_PROVIDERS_FAULT = frozenset({"context_window", "bad_request", "content_policy", "unsupported"})

_CREDITS = re.compile(
    r"insufficient_quota|exceeded your current quota|credit balance is too low|out of credits|"
    r"insufficient (?:credits|balance|funds)|billing (?:hard )?limit",
    re.IGNORECASE,
)
# litellm reports some client-side failures as a 500 from the provider: tell them apart by their words.
_CONNECTION = re.compile(
    r"connection error|connection refused|peer closed|connect timeout|name resolution", re.IGNORECASE
)
_TIMED_OUT = re.compile(r"timed out|read timeout|timeout on reading", re.IGNORECASE)  # mid-stream, as a 500
_NO_CREDENTIALS = re.compile(r"missing credentials|api_key client option must be set|no api key", re.IGNORECASE)
_PREFIX = re.compile(r"^(?:litellm\.)?[A-Za-z]+(?:Error|Exception|Timeout)?: ")
_PROVIDER_PREFIX = re.compile(r"^[A-Za-z]+(?:Exception|Error) - ")
MAX_REASON = 300


@dataclass(frozen=True, slots=True)
class Failure:
    """One failed call, classified. `reason` is the provider's message, short and scrubbed of keys."""

    kind: str
    reason: str
    status: int | None = None
    retry_after: float | None = None

    @property
    def action(self) -> Action:
        return ACTIONS[self.kind]

    @property
    def provider_fault(self) -> bool:
        return self.kind not in NOT_THE_PROVIDERS_FAULT


def classify(exc: BaseException, litellm: Any) -> Failure | None:
    """The failure `exc` stands for, or None when it is not an API failure (a bug, a cancellation)."""
    kind = _kind(exc, litellm)
    if kind is None:
        return None
    status = getattr(exc, "status_code", None)
    if kind in ("timeout", "connection") and (
        status not in (408, 504) or getattr(exc, "litellm_response_headers", None) is None
    ):
        status = None  # litellm's own 500 or 408 for a socket that went quiet or away: no HTTP status was sent
    return Failure(
        kind,
        provider_message(exc),
        status if isinstance(status, int) else None,
        retry_after(exc) if kind in ("rate_limited", "server_error") else None,
    )


def _kind(exc: BaseException, m: Any) -> str | None:
    import openai

    if isinstance(exc, m.ContextWindowExceededError):
        return "context_window"
    if isinstance(exc, m.ContentPolicyViolationError):
        return "content_policy"
    if isinstance(exc, m.PaymentRequiredError):
        return "credits"
    if isinstance(exc, (m.RateLimitError, m.BadRequestError, m.PermissionDeniedError)) and _CREDITS.search(
        f"{getattr(exc, 'message', '')} {getattr(exc, 'body', '')}"
    ):
        return "credits"
    if isinstance(exc, m.RateLimitError):
        return "rate_limited"
    if isinstance(exc, m.AuthenticationError):
        return "auth"
    if isinstance(exc, m.PermissionDeniedError):
        return "permission"
    if isinstance(exc, m.Timeout):
        return "timeout"
    if isinstance(exc, (m.InternalServerError, m.ServiceUnavailableError, m.BadGatewayError)):
        text = str(getattr(exc, "message", "") or exc)
        if _NO_CREDENTIALS.search(text):
            return "auth"
        if _TIMED_OUT.search(text):
            return "timeout"
        return "connection" if _CONNECTION.search(text) else "server_error"
    if isinstance(exc, m.APIConnectionError):
        return "connection"
    if isinstance(exc, m.NotFoundError):
        return "not_found"
    if isinstance(exc, (m.UnsupportedParamsError, m.LiteLLMUnknownProvider)):
        return "unsupported"
    if isinstance(exc, (m.BadRequestError, m.UnprocessableEntityError)):
        # litellm raises a 402 or 403 from an OpenAI-compatible server as a BadRequestError too
        status = getattr(exc, "status_code", None)
        return "bad_request" if status in (None, 400, 422) else _by_status(status)
    if isinstance(exc, openai.APITimeoutError):
        return "timeout"
    if isinstance(exc, openai.APIConnectionError):
        return "connection"
    if isinstance(exc, (m.APIError, openai.APIError)):
        return _by_status(getattr(exc, "status_code", None))
    return None


def _by_status(status: object) -> str:
    if not isinstance(status, int):
        return "error"
    if status == 429:
        return "rate_limited"
    if status in (408, 504):
        return "timeout"
    if status >= 500:
        return "server_error"
    if status == 401:
        return "auth"
    if status == 402:
        return "credits"
    if status == 403:
        return "permission"
    if status in (400, 422):
        return "bad_request"
    return "error"


def provider_message(exc: BaseException) -> str:
    """The provider's own words, without litellm's `litellm.XError: XException - ` prefixes."""
    body = getattr(exc, "body", None)
    text = body.get("message") if isinstance(body, dict) else None
    if not isinstance(text, str) or not text:
        text = str(getattr(exc, "message", None) or exc) or type(exc).__name__
        for _ in range(4):
            stripped = _PROVIDER_PREFIX.sub("", _PREFIX.sub("", text))
            if stripped == text:
                break
            text = stripped
    text = " ".join(text.split())
    said, _, again = text.partition(" Error_str: ")  # litellm repeats the message after this
    if again and again in said:
        text = said
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 1] + "…"


def retry_after(exc: BaseException) -> float | None:
    """Seconds the provider asked to wait (`retry-after-ms`, `retry-after` in seconds or as a date)."""
    for headers in (
        getattr(exc, "litellm_response_headers", None),
        getattr(getattr(exc, "response", None), "headers", None),
        getattr(exc, "headers", None),
    ):
        if not headers:
            continue
        try:
            ms = headers.get("retry-after-ms")
            seconds = None if ms is None else parse_retry_after(str(ms))
            if seconds is not None:
                return seconds / 1000
            value = headers.get("retry-after")
        except (AttributeError, TypeError, ValueError):
            continue
        if value is not None:
            seconds = parse_retry_after(str(value))
            if seconds is not None:
                return seconds
    return None


def parse_retry_after(value: str) -> float | None:
    """Seconds from a `retry-after` value; None for one that says no time (`-5`, `inf`, `nan`), so the
    configured cooldown applies."""
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if 0 <= seconds < math.inf else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def backoff(retry: int, base: float, cap: float, rng: random.Random) -> float:
    """Exponential backoff with jitter: half of `base * 2**retry` (capped) plus a random part up to the other half."""
    delay = min(cap, base * (2**retry))
    return delay / 2 + rng.uniform(0, delay / 2)
