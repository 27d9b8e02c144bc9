"""The executor: a decision tried in turn through litellm, with backoff, fallback, accounting and events.

For one request (`Router.completion` / `acompletion`):

1. estimate the prompt's tokens (`accounting.estimate_tokens`) and decide with the live facts;
2. for each deployment of the decision, in order: skip it when it cannot serve (its API key variable is
   unset, its provider was cooled down earlier in this request, its context window is no larger than
   one already exceeded); reserve the estimate in the state store (a hard limit refuses: next); call
   litellm; on success settle the actual usage and cost; on failure release (or settle what was billed)
   and act on the failure's kind (`failures.py`): retry with backoff, cool the provider down, skip
   smaller windows, move on, or fail fast;
3. when every deployment failed, raise `AllDeploymentsFailed` listing each attempt; when nothing was
   called because a hard budget would break, raise `BudgetExceeded`.

`_Call` holds one request's state and every rule; `Executor.completion` and `acompletion` are the two
short loops (sync and async) that drive it. litellm is imported on first use only.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
import os
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

from policyrouter.accounting import (
    Usage,
    cost_of,
    estimate_tokens,
    price_of,
    reply_chars,
    text_tokens,
    usage_in_error,
    usage_of,
)
from policyrouter.completion_errors import (
    AllDeploymentsFailed,
    Attempt,
    BudgetExceeded,
    RequestRejected,
    budget_help,
)
from policyrouter.decision import request_id_or_new, token_count
from policyrouter.errors import DecisionError
from policyrouter.events import Events
from policyrouter.failures import Failure, backoff, classify
from policyrouter.quantities import format_amount, format_quantity
from policyrouter.registry import Deployment
from policyrouter.report import RequestReport
from policyrouter.state import LimitExceededError, StateError
from policyrouter.streams import AsyncRoutedStream, RoutedStream, Tally

if TYPE_CHECKING:
    from policyrouter.decision import Decision
    from policyrouter.router import Router
    from policyrouter.state import Reservation

log = logging.getLogger("policyrouter.executor")

# Arguments that are the router's to set, per deployment: passing them is a mistake worth a clear error.
RESERVED_KWARGS = ("api_key", "api_base", "base_url", "custom_llm_provider")
# litellm's own fallbacks would call models outside the decision, its books and its budgets.
POLICY_KWARGS = {
    "fallbacks": "fallbacks are the policy's: write `fallback MODEL, …` in the model's route",
    "context_window_fallback_dict": "a request too long for a deployment's context window goes to the next "
    "deployment whose window is larger; name larger models with `fallback MODEL` in the route",
}
# What a deployment of litellm's `openai` type (an OpenAI-compatible server) with a `base_url` and no
# `api_key_env` is called with: such servers without authentication take any key, and given one,
# litellm does not send OPENAI_API_KEY. (Other types with a `base_url`, Azure's or Bedrock's, are
# called with their own credentials from the environment, as litellm reads them.)
NO_KEY = "no-key"
_litellm: ModuleType | None = None
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class ExecutorOptions:
    """How hard the executor tries. Times are seconds.

    `retries`: extra tries on the same deployment after a timeout, 5xx or connection error, waiting
    `backoff_base * 2**n` (at most `backoff_max`) with jitter; `rate_limit_cooldown`: how long a 429
    without `retry-after` cools its provider down; `unusable_cooldown`: how long an authentication,
    permission or out-of-credits failure does; no cooldown is longer than `max_cooldown`. `timeout` is
    the per-call timeout given to litellm when the caller gives none (None: litellm's default). `seed`
    makes the jitter reproducible.
    """

    retries: int = 2
    backoff_base: float = 0.5
    backoff_max: float = 8.0
    rate_limit_cooldown: float = 30.0
    unusable_cooldown: float = 300.0
    max_cooldown: float = 3600.0
    timeout: float | None = None
    seed: int | None = None

    def __post_init__(self) -> None:
        if type(self.retries) is not int or self.retries < 0:
            raise ValueError(f"`retries` must be a whole number, 0 or more, got {self.retries!r}")
        for name in ("backoff_base", "backoff_max", "rate_limit_cooldown", "unusable_cooldown", "max_cooldown"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and 0 <= value < math.inf):  # NaN, None, a string too
                raise ValueError(f"`{name}` must be a number of seconds, 0 or more, got {value!r}")
        if self.seed is not None and type(self.seed) is not int:
            raise ValueError(f"`seed` must be a whole number or None, got {self.seed!r}")
        timeout = self.timeout
        if timeout is not None and not (isinstance(timeout, (int, float)) and 0 < timeout < math.inf):
            raise ValueError(f"`timeout` must be a number of seconds above 0, or None, got {self.timeout!r}")


def import_litellm() -> ModuleType:
    """litellm, imported on first use, with its local cost map (never the network's) and without its
    "Give Feedback" banner, which it would print on every failure the executor handles."""
    global _litellm
    if _litellm is None:
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm

        litellm.suppress_debug_info = True
        _litellm = litellm
    return _litellm


class Executor:
    """Runs requests for a router. Stateless between requests, so one executor serves every thread."""

    def __init__(self, options: ExecutorOptions, events: Events, redact: Callable[[str], str]) -> None:
        self.options = options
        self.events = events
        self.redact = redact
        self.rng = random.Random(options.seed)

    def completion(self, router: Router, model: str, messages: Sequence[Any], **kwargs: Any) -> Any:
        """`Router.completion`'s work: `kwargs` holds its own options (`requires`, `tags`, `tokens`,
        `request_id`) and litellm's."""
        litellm = import_litellm()
        call = _Call(self, router, model, messages, kwargs, litellm)
        while (attempt := call.next()) is not None:
            try:
                response = litellm.completion(**attempt.kwargs)
                first = next(iter(response), None) if call.stream else None
            except BaseException as exc:
                delay = call.failed(attempt, exc)
                if delay is None:
                    raise
            else:
                try:
                    return call.succeeded(attempt, response, first)
                except BaseException:
                    call.interrupted(attempt, response)
                    raise
            if call.rejected is not None:
                raise call.rejected  # here, not in the `except`: no context of litellm's error, which may hold a key
            if delay > 0:
                time.sleep(delay)
        call.exhausted()

    async def acompletion(self, router: Router, model: str, messages: Sequence[Any], **kwargs: Any) -> Any:
        """`completion` in an event loop. The steps that go to the store (deciding, reserving,
        settling, releasing) run on the loop's default executor when the store may wait on a file or
        a socket (`StateStore.blocking`), so other tasks go on meanwhile; a memory store's run inline."""
        litellm = import_litellm()
        off_loop = router.store.blocking
        call = await _step(off_loop, _Call, self, router, model, messages, kwargs, litellm, asynchronous=True)
        while (attempt := await _next_try(call, off_loop)) is not None:
            try:
                response = await litellm.acompletion(**attempt.kwargs)
                first = await _first_async(response) if call.stream else None
            except BaseException as exc:
                delay = await _step(off_loop, call.failed, attempt, exc)
                if delay is None:
                    raise
            else:
                try:
                    return await _step(off_loop, call.succeeded, attempt, response, first)
                except asyncio.CancelledError:
                    if not off_loop:  # off the loop, the worker thread goes on and finishes the books
                        call.interrupted(attempt, response)
                    raise
                except BaseException:
                    await _step(off_loop, call.interrupted, attempt, response)
                    raise
            if call.rejected is not None:
                raise call.rejected  # outside the `except`, as in `completion`
            if delay > 0:
                await asyncio.sleep(delay)
        call.exhausted()


async def _step(off_loop: bool, work: Callable[..., _T], *args: Any, **kwargs: Any) -> _T:
    """`work(*args, **kwargs)`, on a worker thread when `off_loop`. Cancelling the awaiting task does
    not stop it: shielded, a settle or a release is done even when no worker had taken it up yet (an
    unshielded job still queued is dropped, and its reservation held until its lease ends)."""
    if not off_loop:
        return work(*args, **kwargs)
    return await asyncio.shield(
        asyncio.get_running_loop().run_in_executor(None, functools.partial(work, *args, **kwargs))
    )


async def _next_try(call: _Call, off_loop: bool) -> _Try | None:
    """`call.next()`, which reserves. When the request is cancelled while a worker thread reserves,
    the reservation is released as soon as the thread has made it, so it holds nothing."""
    if not off_loop:
        return call.next()
    reserving = asyncio.get_running_loop().run_in_executor(None, call.next)
    try:
        return await asyncio.shield(reserving)
    except asyncio.CancelledError:
        reserving.add_done_callback(lambda done: _let_go(call, done))
        raise


def _let_go(call: _Call, reserved: asyncio.Future[_Try | None]) -> None:
    """Release what a cancelled request's reservation holds, on a worker thread as every store step
    of an off-loop request: this runs on the loop's thread, which a store's lock would hold up."""
    if not reserved.cancelled() and reserved.exception() is None and (attempt := reserved.result()) is not None:
        cancelled = asyncio.CancelledError()  # not an API failure: released, nothing counted
        try:
            asyncio.get_running_loop().run_in_executor(None, call.failed, attempt, cancelled)
        except RuntimeError:  # the executor is shutting down (`asyncio.run` ending): release it here
            call.failed(attempt, cancelled)


async def _first_async(stream: Any) -> Any:
    try:
        return await stream.__anext__()
    except StopAsyncIteration:
        return None


@dataclass(slots=True)
class _Try:
    """One call about to be made: the deployment, what it holds, litellm's arguments."""

    deployment: Deployment
    reservation: Reservation
    kwargs: dict[str, Any]
    number: int  # 1-based, over the whole request
    retry: int  # 0 for the first try on this deployment
    started: float = 0.0


class _Call:
    """One request: its decision, the deployments left to try, and what happened to each."""

    def __init__(
        self,
        executor: Executor,
        router: Router,
        model: str,
        messages: Sequence[Any],
        kwargs: dict[str, Any],
        litellm: ModuleType,
        *,
        asynchronous: bool = False,
    ) -> None:
        requires: Iterable[str] = kwargs.pop("requires", ())
        tags: Iterable[str] = kwargs.pop("tags", ())
        tokens: int | None = kwargs.pop("tokens", None)
        request_id = kwargs.pop("request_id", None)
        request_id = request_id_or_new(None if request_id == "" else request_id)  # "": a new one
        _check_kwargs(kwargs)
        _check_messages(messages)
        self.executor = executor
        self.options = executor.options
        self.redact = executor.redact
        self.litellm = litellm
        self.asynchronous = asynchronous
        self.router = router
        self.registry = router.registry
        self.store = router.store
        self.live = router.live_facts
        self.run_id: str = getattr(self.live, "run_id", None) or self.store.run_id
        self.model = model
        self.messages = messages
        self.kwargs = kwargs
        self.stream = bool(kwargs.get("stream"))
        self.request_id = request_id
        self.prompt_tokens = (
            token_count("tokens", tokens) if tokens is not None else estimate_tokens(messages, kwargs.get("tools"))
        )
        name = "max_tokens" if kwargs.get("max_tokens") is not None else "max_completion_tokens"
        max_tokens = kwargs.get(name)
        self.max_tokens = token_count(name, max_tokens) if max_tokens is not None else None
        per_choice = self.max_tokens if self.max_tokens is not None else self.registry.settings.estimated_output_tokens
        choices = kwargs.get("n")  # `n` replies are each up to `max_tokens` long, and all billed
        self.output_tokens = per_choice * choices if type(choices) is int and choices > 1 else per_choice
        self.estimate = {"input": self.prompt_tokens, "output": self.output_tokens, "estimated": True}
        self.report = RequestReport(executor.events, self.request_id, self.run_id, model)
        self.attempts: list[Attempt] = []
        self.tries = 0
        self.called = False
        self.cooled: dict[str, str] = {}  # provider → why, for providers cooled down during this request
        self.exceeded: Deployment | None = None  # the deployment whose context window was exceeded
        self.refusals: list[LimitExceededError] = []
        self.warned: set[tuple[str, str]] = set()
        self.index = 0
        self.retry = 0
        self.rejected: RequestRejected | None = None  # a failure that fails the request at once
        self.decision = self._decide(requires, tags)
        self.order = self.decision.order

    # -- deciding -------------------------------------------------------------------------------

    def _decide(self, requires: Iterable[str], tags: Iterable[str]) -> Decision:
        try:
            decision = self.router.decide(
                self.model,
                requires=requires,
                tokens=self.prompt_tokens,
                max_tokens=self.max_tokens,
                tags=tags,
                request_id=self.request_id,
            )
        except DecisionError as e:
            self.report.decision(e.decision, e, self.estimate)
            if e.code == "budget_exceeded" and e.decision is not None:
                raise self._budget_refusal(e.decision) or e from None
            raise
        self.report.decision(decision, None, self.estimate)
        for key in decision.facts:
            if key.startswith("round_robin."):
                model = key.removeprefix("round_robin.")
                try:
                    self.store.advance_round_robin(model)
                except StateError as e:  # the order is decided; the next request may start where this did
                    log.warning("%s; the round-robin position of `%s` stays where it was", e, model)
                self.live.forget_round_robin(model)
        return decision

    def _budget_refusal(self, decision: Decision) -> BudgetExceeded | None:
        """The hard budget that refused the decision, with its numbers from the live state."""
        usage_of_budget = getattr(self.live, "usage", None)
        if usage_of_budget is None:
            return None
        for exclusion in decision.excluded:
            if exclusion.code != "budget":
                continue
            d = exclusion.deployment
            cost = d.price.cost(self.prompt_tokens, self.output_tokens) if d.price is not None else 0.0
            for budget in self.registry.budgets_for(d):
                usage = usage_of_budget("budget", budget.name) if budget.hard else None
                if usage is None or usage.limit is None:
                    continue
                spent = usage.used + usage.reserved
                if spent + cost > usage.limit:
                    self.report.budget_exceeded(d, budget.name, usage.window, spent, usage.limit, cost, usage.resets_at)
                    return BudgetExceeded(
                        budget=budget.name,
                        window=usage.window,
                        spent=spent,
                        limit=usage.limit,
                        requested=cost,
                        resets_at=usage.resets_at,
                        help=budget_help(self.registry, budget.name, usage.window),
                        decision=decision,
                        request_id=self.request_id,
                    )
        return None

    # -- the next try ---------------------------------------------------------------------------

    def next(self) -> _Try | None:
        """The next call to make, or None when every deployment has been tried."""
        while self.index < len(self.order):
            d = self.order[self.index]
            api_key = os.environ.get(d.api_key_env) if d.api_key_env else None
            if self.retry == 0:
                skip = self._skip(d, api_key)
                if skip is not None:
                    self.attempts.append(Attempt(d, skip[0], skip[1], called=False))
                    self._move_on(d, skip[1])
                    continue
            cost = d.price.cost(self.prompt_tokens, self.output_tokens) if d.price is not None else None
            try:
                reservation = self.store.reserve(
                    d, tokens=self.prompt_tokens + self.output_tokens, cost=cost or 0.0, run_id=self.run_id
                )
            except LimitExceededError as e:
                self._refused(d, e)
                self._move_on(d, str(e))
                continue
            try:  # from here the reservation is the caller's to settle or release, even on Ctrl-C
                self._warn(d, reservation)
                self.tries += 1
                attempt = _Try(d, reservation, self._litellm_kwargs(d, api_key), self.tries, self.retry)
                self.report.attempt(d, attempt.number, attempt.retry, self.estimate, cost, self.stream, self.messages)
            except BaseException:
                self._release(reservation, None)
                raise
            self.called = True
            attempt.started = time.perf_counter()
            return attempt
        return None

    def _skip(self, d: Deployment, api_key: str | None) -> tuple[str, str] | None:
        """Why `d` cannot serve this request, learned before calling it; None when it can be tried.
        `api_key`: the value of `d`'s key variable."""
        if d.provider in self.cooled:
            return "cooling_down", f"`{d.provider}` was cooled down earlier in this request: {self.cooled[d.provider]}"
        exceeded = self.exceeded
        if exceeded is not None:
            if exceeded.context_window is None and d.model == exceeded.model:
                return "context_window", f"same model as `{exceeded.key}`, whose context window was exceeded"
            if (
                exceeded.context_window is not None
                and d.context_window is not None
                and d.context_window <= exceeded.context_window
            ):
                window = format_quantity("count", d.context_window)
                return "context_window", (
                    f"context window {window} is not larger than that of `{exceeded.key}`, which was exceeded"
                )
        if d.api_key_env and not api_key:
            return "missing_key", f"environment variable `{d.api_key_env}` is not set"
        return None

    def _litellm_kwargs(self, d: Deployment, api_key: str | None) -> dict[str, Any]:
        kwargs = dict(self.kwargs)
        kwargs["model"] = d.litellm_model
        kwargs["messages"] = self.messages
        if api_key:
            kwargs["api_key"] = api_key
        elif d.base_url and d.litellm_model.startswith("openai/"):  # else OPENAI_API_KEY goes to this server
            kwargs["api_key"] = NO_KEY
        if d.base_url:
            kwargs["api_base"] = d.base_url
        if "num_retries" not in kwargs:
            kwargs.setdefault("max_retries", 0)  # retries are the executor's, so it sees every failure
        if self.options.timeout is not None:
            kwargs.setdefault("timeout", self.options.timeout)
        if self.stream:
            kwargs["stream_options"] = {**(kwargs.get("stream_options") or {}), "include_usage": True}
        return kwargs

    def _move_on(self, d: Deployment, reason: str) -> None:
        self.index += 1
        self.retry = 0
        if self.index < len(self.order):
            following = self.order[self.index]
            log.info("%s did not serve (%s); trying %s", d.key, reason, following.key)
            self.report.fallback(d, following, reason)

    # -- outcomes -------------------------------------------------------------------------------

    def failed(self, attempt: _Try, exc: BaseException) -> float | None:
        """Books and next step after a failed call: the delay before the next try, or None when the
        exception is not an API failure (the caller re-raises it). A failure that fails the request at
        once is left in `rejected`, for the caller to raise."""
        latency = time.perf_counter() - attempt.started
        d = attempt.deployment
        failure = classify(exc, self.litellm)
        if failure is None:  # Ctrl-C, a cancelled task, a bug: released, and said, as every attempt's end is
            self._release(attempt.reservation, None)
            reason = f"{type(exc).__name__}: not an API failure; the request ends here"
            self.report.failure(
                d, type(exc).__name__, reason, latency, status=None, next="fail", attempt=attempt.number
            )
            return None
        failure = Failure(failure.kind, self.redact(failure.reason), failure.status, failure.retry_after)
        usage = usage_in_error(exc)
        fault = failure.reason if failure.provider_fault else None  # counts in errors(P)
        billed: dict[str, Any] = {}
        if usage is not None:
            billed = self._settle_billed(attempt, usage, fault)
        else:
            self._release(attempt.reservation, fault)
        self.attempts.append(Attempt(d, failure.kind, failure.reason, True, failure.status, latency))
        action = failure.action
        retrying = action == "retry" and self.retry < self.options.retries
        last = self.index + 1 >= len(self.order)  # no deployment left to fall back to
        self.report.failure(
            d,
            failure.kind,
            failure.reason,
            latency,
            status=failure.status,
            next="retry" if retrying else ("fail" if action == "fail" or last else "fallback"),
            attempt=attempt.number,
            **billed,
        )
        log.warning("%s failed (%s): %s", d.key, failure.kind, failure.reason)
        if action == "fail":  # the caller raises it, outside its `except`: litellm's error may hold a key
            self.rejected = RequestRejected(
                failure.kind,
                d,
                failure.reason,  # the provider's words, scrubbed of keys
                failure.status,
                attempts=self.attempts,
                request_id=self.request_id,
                decision=self.decision,
            )
            return 0.0
        if retrying:
            delay = backoff(self.retry, self.options.backoff_base, self.options.backoff_max, self.executor.rng)
            if failure.retry_after is not None:
                delay = max(delay, min(failure.retry_after, self.options.backoff_max))
            self.retry += 1
            return delay
        if action == "cooldown":
            self._cool_down(d, failure)
        elif action == "shrink":
            self.exceeded = d
        self._move_on(d, f"{failure.kind}: {failure.reason}")
        return 0.0

    def _cool_down(self, d: Deployment, failure: Failure) -> None:
        if failure.kind == "rate_limited":
            seconds = failure.retry_after if failure.retry_after is not None else self.options.rate_limit_cooldown
        else:
            seconds = self.options.unusable_cooldown
        seconds = min(seconds, self.options.max_cooldown)
        try:
            if seconds > 0:  # `retry-after: 0` cools nothing down; a cooldown of 0 would end another's
                self.store.cooldown(d.provider, seconds)
        except StateError as e:  # no spend is lost: this request goes on, and moves off the provider itself
            log.warning("%s; `%s` is not cooled down for other requests", e, d.provider)
        self.live.forget(d)
        self.cooled[d.provider] = f"{failure.kind}: {failure.reason}"
        if failure.kind == "rate_limited":
            self.report.throttled(
                d,
                failure.reason,
                source="provider",
                status=failure.status,
                retry_after=failure.retry_after,
                cooldown=seconds,
            )

    def interrupted(self, attempt: _Try, response: Any) -> None:
        """What `succeeded` did not get to do, when something that is no API failure (Ctrl-C, a raising
        event callback) stopped it: a reply received is settled, as the provider bills it; a
        reservation otherwise still held is released."""
        if attempt.reservation.state != "held":
            return
        if response is not None and not self.stream:
            usage = usage_of(response) or Usage(self.prompt_tokens, text_tokens(reply_chars(response)), estimated=True)
            self._settle(attempt, usage, time.perf_counter() - attempt.started, getattr(response, "model", None))
        else:
            self._release(attempt.reservation, None)

    def succeeded(self, attempt: _Try, response: Any, first: Any) -> Any:
        if self.stream:
            finish = lambda tally, error: self._stream_done(attempt, tally, error)  # noqa: E731
            key = attempt.deployment.key
            if self.asynchronous:
                return AsyncRoutedStream(response, first, finish, key, self.request_id, blocking=self.store.blocking)
            return RoutedStream(response, first, finish, key, self.request_id)
        latency = time.perf_counter() - attempt.started
        usage = usage_of(response) or Usage(self.prompt_tokens, text_tokens(reply_chars(response)), estimated=True)
        served_model = getattr(response, "model", None)
        cost = self._settle(attempt, usage, latency, served_model)
        log.debug("%s served request %s", attempt.deployment.key, self.request_id)
        self.report.success(attempt.deployment, attempt.number, usage, cost, latency, served_model, response)
        hidden = getattr(response, "_hidden_params", None)
        if isinstance(hidden, dict):
            hidden["policyrouter"] = {
                "deployment": attempt.deployment.key,
                "request_id": self.request_id,
                "run_id": self.run_id,
                "attempts": attempt.number,
                "cost": cost,
            }
        return response

    def _stream_done(self, attempt: _Try, tally: Tally, error: BaseException | None) -> None:
        """The books for a stream that ended, was closed early, or broke mid-way."""
        try:
            latency = time.perf_counter() - attempt.started
            usage = tally.usage_or_estimate(self.prompt_tokens)
            if error is None:
                cost = self._settle(attempt, usage, latency, tally.model)
                self.report.success(attempt.deployment, attempt.number, usage, cost, latency, tally.model, tally=tally)
                return
            failure = classify(error, self.litellm)
            kind = failure.kind if failure is not None else type(error).__name__
            reason = self.redact(failure.reason if failure is not None else str(error))
            fault = reason if failure is not None and failure.provider_fault else None  # counts in errors(P)
            billed: dict[str, Any] = {}
            if tally.chunks > 0:  # the provider produced (and bills) what was received
                billed = self._settle_billed(attempt, usage, fault)
            else:
                self._release(attempt.reservation, fault)
            self.report.failure(
                attempt.deployment,
                kind,
                reason,
                latency,
                status=failure.status if failure is not None else None,
                stream=True,
                chunks=tally.chunks,
                next="fail",
                attempt=attempt.number,
                **billed,
            )
            log.warning(
                "stream from %s broke after %d chunks (%s): %s", attempt.deployment.key, tally.chunks, kind, reason
            )
        except Exception:  # the books of a stream closed by the garbage collector must not raise there
            log.exception("could not settle the stream of %s", attempt.deployment.key)

    def exhausted(self) -> NoReturn:
        """Every deployment failed or was skipped: say so, naming the budget when that is why."""
        if not self.called and self.refusals:
            e = next((r for r in self.refusals if r.kind == "budget"), None)
            if e is not None:
                raise BudgetExceeded(
                    budget=e.name,
                    window=e.window,
                    spent=e.spent,
                    limit=e.limit,
                    requested=e.requested,
                    resets_at=e.resets_at,
                    help=budget_help(self.registry, e.name, e.window),
                    decision=self.decision,
                    attempts=self.attempts,
                    request_id=self.request_id,
                )
        raise AllDeploymentsFailed(self.model, self.attempts, request_id=self.request_id, decision=self.decision)

    # -- the books ------------------------------------------------------------------------------

    def _settle(self, attempt: _Try, usage: Usage, latency: float, served_model: str | None) -> float | None:
        d = attempt.deployment
        cost = cost_of(price_of(self.registry, d, served_model), usage)
        fresh = self.store.settle(
            attempt.reservation,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=cost or 0.0,
            latency=latency,
        )
        self.live.forget(d, fresh)
        if cost is None and self.registry.settings.unknown_price == "warn":
            reason = f"price of `{d.key}` ({served_model or d.model_id}) is unknown: its spend is not counted"
            log.warning("%s", reason)
            self.report.price_unknown(d, reason, usage)
        return cost

    def _settle_billed(self, attempt: _Try, usage: Usage, reason: str | None) -> dict[str, Any]:
        """A call that failed after the provider billed for it: record the spend, and count the failure
        when it is the provider's (`reason`). Returns the fields its `failure` event adds."""
        cost = cost_of(price_of(self.registry, attempt.deployment, None), usage)
        fresh = self.store.settle(
            attempt.reservation,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost=cost or 0.0,
            error=reason,
            failed=True,
        )
        self.live.forget(attempt.deployment, fresh)
        return {"billed": True, "tokens": usage.to_dict(), "cost": cost}

    def _release(self, reservation: Reservation, error: str | None) -> None:
        self.live.forget(reservation.deployment, self.store.release(reservation, error=error))

    def _refused(self, d: Deployment, e: LimitExceededError) -> None:
        """A hard limit of the live state refused the reservation: nothing was called."""
        code = {"quota": "quota", "budget": "budget"}.get(e.kind, "rate_limit")
        self.attempts.append(Attempt(d, code, str(e), called=False))
        self.refusals.append(e)
        if e.kind == "budget":
            log.warning("hard budget `%s` would be broken by %s", e.name, d.key)
            self.report.budget_exceeded(d, e.name, e.window, e.spent, e.limit, e.requested, e.resets_at)
        elif e.kind in ("rpm", "tpm"):
            self.report.throttled(d, str(e), source="local", limit_kind=e.kind, limit=e.limit)

    def _warn(self, d: Deployment, reservation: Reservation) -> None:
        """Soft limits this request goes over: a warning each, once per request."""
        for usage in reservation.warnings:
            if (usage.kind, usage.name) in self.warned:
                continue
            self.warned.add((usage.kind, usage.name))
            resets = usage.resets_at.isoformat(timespec="seconds") if usage.resets_at else "with the run"
            log.warning(
                "soft %s `%s` (%s) is over its limit: %s of %s used or reserved; resets %s",
                usage.kind,
                usage.name,
                usage.window,
                format_amount(usage.used + usage.reserved, usage.unit),
                format_amount(usage.limit or 0.0, usage.unit),
                resets,
            )
            self.report.budget_warning(d, usage)


def _check_messages(messages: object) -> None:
    """A list of messages, each a mapping: what litellm would otherwise fail on deep inside, after a
    reservation and a decision."""
    if type(messages) is not list and (
        isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence)
    ):
        raise TypeError(f"`messages` is a list of messages such as {_MESSAGE}, got {type(messages).__name__}")
    for i, message in enumerate(messages):
        if not hasattr(message, "get"):
            raise TypeError(f"`messages[{i}]` is a {type(message).__name__}, not a message such as {_MESSAGE}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list)):  # litellm failed on it as a 500
            raise TypeError(
                f"`messages[{i}]['content']` is text or a list of content parts, got {type(content).__name__}"
            )


_MESSAGE = '{"role": "user", "content": "…"}'


def _check_kwargs(kwargs: dict[str, Any]) -> None:
    for name in RESERVED_KWARGS:
        if name in kwargs:
            raise TypeError(f"`{name}` is set per deployment from the registry (`api_key_env`, `base_url`); remove it")
    for name, instead in POLICY_KWARGS.items():
        if name in kwargs:
            raise TypeError(f"`{name}` is not taken: {instead}")
    stream = kwargs.get("stream")
    if stream is not None and not isinstance(stream, bool):  # litellm and the executor read it differently
        raise TypeError(f"`stream` is True or False, got {stream!r}")
    options = kwargs.get("stream_options")
    if options is not None and not isinstance(options, Mapping):  # ours are merged into it
        raise TypeError(f"`stream_options` is a mapping, such as {{'include_usage': True}}; got {options!r}")
    timeout = kwargs.get("timeout")
    if timeout is not None and type(timeout).__name__ != "Timeout":  # an `httpx.Timeout` goes as it is
        # litellm takes what `float` reads; what it does not read failed as a connection error, retried
        # on every deployment in turn.
        try:
            seconds = float(timeout) if not isinstance(timeout, bool) else math.nan
        except (TypeError, ValueError, OverflowError):
            seconds = math.nan
        if not 0 < seconds < math.inf:
            raise ValueError(f"`timeout` is seconds, a number above 0, or an `httpx.Timeout`; got {timeout!r}")


_SETTLE_TAKES_ERROR: dict[type, bool] = {}
