"""The executor against the loopback server: how a call is made, and what each kind of failure does."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from executor_helpers import REGISTRY, Clock, hi, kinds, of_kind, spend
from loopback_server import (
    LoopbackLLM,
    bad_request,
    billed_error,
    content_policy,
    context_window_exceeded,
    error,
    hang,
    ok,
    out_of_credits,
    rate_limited,
    server_error,
    unauthorized,
)

from policyrouter import AllDeploymentsFailed, ExecutorOptions, RequestRejected
from policyrouter.executor import import_litellm

# -- how a call is made -------------------------------------------------------------------------


def test_a_call_goes_to_the_first_deployment_with_its_key_model_and_the_callers_kwargs(
    make_router: Any, llm: LoopbackLLM, keys: dict[str, str]
) -> None:
    router = make_router()
    response = router.completion("sonnet", hi(), temperature=0.25, top_p=0.5)

    assert response.choices[0].message.content == "hello from loopback"
    (call,) = llm.calls()
    assert call.provider == "work"
    assert call.path == "/work/v1/chat/completions"
    assert call.headers["authorization"] == f"Bearer {keys['work']}"
    assert call.body["model"] == "claude-sonnet-4"
    assert call.body["temperature"] == 0.25
    assert call.body["top_p"] == 0.5
    assert response._hidden_params["policyrouter"]["deployment"] == "sonnet@work"


def test_a_server_without_a_key_variable_gets_no_key_from_the_environment(
    make_router: Any, llm: LoopbackLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    # litellm's `openai` provider reads OPENAI_API_KEY when given no key: it went to this server
    monkeypatch.setenv("OPENAI_API_KEY", "sk-planted-openai-default")
    router = make_router(REGISTRY.replace("    api_key_env: PR_TEST_KEY_WORK\n", ""))
    router.completion("sonnet", hi())

    (call,) = llm.calls()
    assert call.provider == "work"
    assert call.headers["authorization"] == "Bearer no-key"


def test_a_provider_of_another_type_with_a_base_url_keeps_its_own_credentials(
    make_router: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Azure's and Bedrock's servers are named by a base_url and their keys read by litellm: a placeholder
    # key sent Azure `api-key: no-key`, and turned Bedrock's AWS signature into a bearer token
    sent: list[dict[str, Any]] = []
    litellm = import_litellm()
    monkeypatch.setattr(litellm, "completion", lambda **kwargs: sent.append(kwargs) or litellm.ModelResponse())
    azure = REGISTRY.replace(
        "    litellm_provider: openai\n    api_key_env: PR_TEST_KEY_WORK\n", "    litellm_provider: azure\n"
    )
    make_router(azure).completion("sonnet", hi())
    assert sent[0]["model"] == "azure/claude-sonnet-4" and "api_key" not in sent[0]


def test_tools_go_to_the_provider_as_given(make_router: Any, llm: LoopbackLLM) -> None:
    """Agents call with tools: litellm takes a different path for them (its MCP handling)."""
    tool = {
        "type": "function",
        "function": {"name": "read_file", "description": "Read a file", "parameters": {"type": "object"}},
    }
    router = make_router()
    response = router.completion("sonnet", hi(), tools=[tool], tool_choice="auto", requires=["tools"])

    assert response.choices[0].message.content == "hello from loopback"
    (call,) = llm.calls()
    assert call.body["tools"] == [tool] and call.body["tool_choice"] == "auto"


@pytest.mark.parametrize(
    ("messages", "kwargs", "error", "words"),
    [
        ("hi", {}, TypeError, ["`messages` is a list", "got str"]),
        ({"role": "user", "content": "hi"}, {}, TypeError, ["`messages` is a list", "got dict"]),
        ([{"role": "user", "content": "hi"}, "again"], {}, TypeError, ["`messages[1]` is a str"]),
        (hi(), {"tokens": -5}, ValueError, ["`tokens`", "0 or more", "-5"]),
        (hi(), {"tokens": float("inf")}, ValueError, ["`tokens`", "inf"]),
        (hi(), {"max_tokens": -1}, ValueError, ["`max_tokens`", "-1"]),
        (hi(), {"request_id": 5}, TypeError, ["`request_id` is a string", "5"]),
        (hi(), {"request_id": 0}, TypeError, ["`request_id` is a string", "0"]),
        ([{"role": "user", "content": 5}], {}, TypeError, ["`messages[0]['content']` is text", "int"]),
        (hi(), {"stream": 1}, TypeError, ["`stream` is True or False", "1"]),
        (hi(), {"max_tokens": "800"}, ValueError, ["`max_tokens`", "'800'"]),
        (hi(), {"max_completion_tokens": -1}, ValueError, ["`max_completion_tokens`", "-1"]),
        (hi(), {"timeout": "abc"}, ValueError, ["`timeout` is seconds", "'abc'"]),
        (hi(), {"timeout": 0}, ValueError, ["`timeout` is seconds", "above 0"]),
        (hi(), {"timeout": 10**400}, ValueError, ["`timeout` is seconds"]),
        (hi(), {"stream": True, "stream_options": "usage"}, TypeError, ["`stream_options` is a mapping", "'usage'"]),
        (hi(), {"fallbacks": ["gpt-4o"]}, TypeError, ["`fallbacks` is not taken", "`fallback MODEL, …`"]),
        (hi(), {"context_window_fallback_dict": {}}, TypeError, ["`context_window_fallback_dict`", "window is larger"]),
    ],
    ids=[
        "a string",
        "one message",
        "a string among messages",
        "negative tokens",
        "infinite tokens",
        "max_tokens",
        "request id a number",
        "request id zero",
        "content a number",
        "stream a number",
        "max_tokens a string",
        "max_completion_tokens",
        "timeout not a number",
        "timeout zero",
        "timeout too large for a float",
        "stream options not a mapping",
        "litellm's fallbacks",
        "litellm's context-window fallbacks",
    ],
)
def test_arguments_that_cannot_be_sent_fail_before_anything_is_held(
    make_router: Any, llm: LoopbackLLM, messages: Any, kwargs: dict[str, Any], error: type[Exception], words: list[str]
) -> None:
    router = make_router()
    with pytest.raises(error) as info:
        router.completion("sonnet", messages, **kwargs)
    for word in words:
        assert word in str(info.value)
    assert llm.calls() == [] and router.live_facts.in_flight("work") == 0 and spend(router) == 0


@pytest.mark.parametrize(
    "options",
    [
        {"retries": -1},
        {"retries": 1.5},
        {"backoff_base": float("nan")},
        {"max_cooldown": -1.0},
        {"timeout": -1},
        {"unusable_cooldown": None},
        {"backoff_max": float("inf")},
        {"seed": [1]},
        {"timeout": "10"},
    ],
)
def test_executor_options_out_of_range_are_refused(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=f"`{next(iter(options))}` must be"):
        ExecutorOptions(**options)


def test_success_settles_actual_usage_at_the_registry_price(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.script("work", ok(prompt_tokens=1000, completion_tokens=200, reasoning_tokens=50))
    router = make_router()
    router.completion("sonnet", hi())

    expected = (1000 * 3.00 + 200 * 15.00) / 1e6  # reasoning is part of completion_tokens
    assert spend(router) == pytest.approx(expected)
    assert 1 - router.live_facts.quota_left("work") == pytest.approx(1200 / 100_000)
    assert router.live_facts.in_flight("work") == 0
    (success,) = of_kind(events, "success")
    assert success["tokens"] == {"input": 1000, "output": 200, "reasoning": 50}
    assert success["cost"] == pytest.approx(expected)
    assert success["latency"] > 0


def test_a_usage_count_that_is_no_count_is_taken_as_not_reported(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # the store refuses a negative settle: the served request failed with a ValueError, its hold kept
    llm.script("work", ok(prompt_tokens=-1000, completion_tokens=200))
    router = make_router()
    router.completion("sonnet", hi())
    assert spend(router) == pytest.approx(200 * 15.00 / 1e6)
    assert router.live_facts.in_flight("work") == 0
    (success,) = of_kind(events, "success")
    assert success["tokens"]["input"] >= 0


def test_n_replies_are_held_for_n_times_the_output(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # A hard budget is checked against what is held: one reply's worth let `n=4` run past it.
    router = make_router()
    router.completion("sonnet", hi(), n=4, max_tokens=500)
    router.completion("sonnet", hi(), max_tokens=500)
    assert [a["tokens"]["output"] for a in of_kind(events, "attempt")] == [2000, 500]
    assert [c.body["n"] for c in llm.calls()[:1]] == [4]


def test_passing_an_api_key_is_refused_with_a_clear_error(make_router: Any) -> None:
    router = make_router()
    with pytest.raises(TypeError, match="api_key"):
        router.completion("sonnet", hi(), api_key="sk-x")


def test_a_missing_key_variable_skips_the_deployment_with_a_reason(
    make_router: Any, llm: LoopbackLLM, monkeypatch: pytest.MonkeyPatch, events: list[dict[str, Any]]
) -> None:
    monkeypatch.delenv("PR_TEST_KEY_WORK")
    router = make_router()
    router.completion("sonnet", hi())

    assert [c.provider for c in llm.calls()] == ["personal"]
    (fallback,) = of_kind(events, "fallback")
    assert fallback["from"] == "sonnet@work"
    assert "`PR_TEST_KEY_WORK` is not set" in fallback["reason"]


# -- failures by kind ---------------------------------------------------------------------------


def test_rate_limit_cools_the_provider_down_for_retry_after_and_moves_on(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]], clock: Clock
) -> None:
    llm.script("work", rate_limited(retry_after=42))
    router = make_router()
    router.completion("sonnet", hi())

    assert [c.provider for c in llm.calls()] == ["work", "personal"]
    (throttled,) = of_kind(events, "throttled")
    assert throttled["provider"] == "work"
    assert throttled["retry_after"] == 42
    assert throttled["cooldown"] == 42
    router.live_facts.clear()
    assert router.live_facts.cooldown("work") == pytest.approx(42)
    assert router.live_facts.errors("work") == 1


@pytest.mark.parametrize("header", ["inf", "-5", "nan"])
def test_a_retry_after_that_says_no_time_cools_down_for_the_configured_time(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]], header: str
) -> None:
    # `inf` was written to the events file as `Infinity`, which is no JSON; `-5` and `nan` cooled the
    # provider down for 0 s, so the next request went straight back to it.
    llm.script("work", error(429, "Rate limit reached", code="rate_limit_exceeded", headers={"retry-after": header}))
    router = make_router()
    router.completion("sonnet", hi())
    (throttled,) = of_kind(events, "throttled")
    assert throttled["retry_after"] is None and throttled["cooldown"] == 30  # ExecutorOptions.rate_limit_cooldown


def test_a_retry_after_of_no_time_leaves_a_longer_cooldown_as_it_is(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # a cooldown of 0 s ends a cooldown: the 429 cut short the 300 s another request's 401 had started
    router = make_router()
    rate_limited_now = rate_limited(0)

    def while_another_request_is_refused(h: Any, body: dict[str, Any]) -> None:
        router.store.cooldown("work", 300)  # the other request's 401, while this one waits for its reply
        rate_limited_now(h, body)

    llm.script("work", while_another_request_is_refused)
    router.completion("sonnet", hi())
    (throttled,) = of_kind(events, "throttled")
    assert (throttled["retry_after"], throttled["cooldown"]) == (0, 0)
    router.live_facts.clear()
    assert router.live_facts.cooldown("work") == pytest.approx(300, abs=5)


def test_server_errors_are_retried_with_backoff_on_the_same_deployment(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.script("work", server_error(500), server_error(503), ok())
    router = make_router()
    router.completion("sonnet", hi())

    assert [c.provider for c in llm.calls()] == ["work", "work", "work"]
    assert [e["next"] for e in of_kind(events, "failure")] == ["retry", "retry"]
    router.live_facts.clear()
    assert router.live_facts.errors("work") == 0  # the success reset the count


def test_retries_are_bounded_then_the_next_deployment_serves(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.default("work", server_error())
    router = make_router(executor=ExecutorOptions(retries=1, backoff_base=0.001, backoff_max=0.01))
    router.completion("sonnet", hi())

    assert [c.provider for c in llm.calls()] == ["work", "work", "personal"]
    router.live_facts.clear()
    assert router.live_facts.errors("work") == 2


def test_a_provider_that_billed_then_failed_stays_in_the_books(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    llm.script(
        "work", billed_error(prompt_tokens=1000, completion_tokens=100), ok(prompt_tokens=10, completion_tokens=10)
    )
    router = make_router()
    router.completion("sonnet", hi())

    billed = (1000 * 3.00 + 100 * 15.00) / 1e6
    served = (10 * 3.00 + 10 * 15.00) / 1e6
    assert spend(router) == pytest.approx(billed + served)
    (failure,) = of_kind(events, "failure")
    assert failure["billed"] is True and failure["cost"] == pytest.approx(billed)
    assert router.live_facts.in_flight("work") == 0


@pytest.mark.parametrize(("status", "counted"), [(500, 1), (400, 0)], ids=["the provider's fault", "the request's"])
def test_a_billed_failure_counts_in_errors_only_when_it_is_the_providers(
    make_router: Any, llm: LoopbackLLM, status: int, counted: int
) -> None:
    # A billed 400 added one to errors(work), as if the provider had failed: a policy on errors(P)
    # moved traffic away from a provider that answered a malformed request correctly.
    usage = {"prompt_tokens": 1000, "completion_tokens": 100, "total_tokens": 1100}
    llm.script("work", error(status, "The request failed after it was billed", kind="x", usage=usage))
    router = make_router(executor=ExecutorOptions(retries=0))
    work = router.registry.models["sonnet"].deployments[0]
    router.store.release(router.store.reserve(work, tokens=1, cost=0.0), error="an earlier failure")
    try:
        router.completion("sonnet", hi())  # a 500 falls back to personal; a 400 fails fast
    except RequestRejected:
        assert status == 400
    router.live_facts.clear()
    assert router.live_facts.errors("work") == 1 + counted  # the earlier failure stays counted either way
    assert [c.provider for c in llm.calls()][:1] == ["work"]


def test_backoff_waits_exponentially(make_router: Any, llm: LoopbackLLM) -> None:
    llm.script("work", server_error(), server_error(), ok())
    router = make_router(executor=ExecutorOptions(retries=2, backoff_base=0.1, backoff_max=1.0, seed=1))
    started = time.perf_counter()
    router.completion("sonnet", hi())
    elapsed = time.perf_counter() - started
    # waits of 0.05–0.1 s then 0.1–0.2 s (half fixed, half jitter)
    assert 0.15 <= elapsed < 1.0


@pytest.mark.parametrize("timeout", [0.3, "0.3", httpx.Timeout(0.3)], ids=["seconds", "text", "httpx"])
def test_a_hanging_provider_times_out_and_the_next_serves(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]], timeout: Any
) -> None:
    llm.script("work", hang(3), hang(3))
    router = make_router(executor=ExecutorOptions(retries=1, backoff_base=0.001))
    started = time.perf_counter()
    router.completion("sonnet", hi(), timeout=timeout)

    assert time.perf_counter() - started < 2.5
    assert [e["error"] for e in of_kind(events, "failure")] == ["timeout", "timeout"]
    assert [c.provider for c in llm.calls()] == ["work", "work", "personal"]


def test_a_timeout_has_no_status_and_a_408_the_server_sent_keeps_it(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # litellm gives its own timeouts status 408: the failure event said the server sent one
    llm.script("work", hang(3))
    llm.script("personal", error(408, "Request timeout", kind="timeout"))
    router = make_router(executor=ExecutorOptions(retries=0, timeout=0.3))
    router.completion("sonnet", hi())  # served by the next deployment
    work, personal = of_kind(events, "failure")[:2]
    assert (work["error"], work["status"]) == ("timeout", None)
    assert work["reason"] == "Request timed out."  # without litellm's `APITimeoutError - … Error_str: …`
    assert personal["status"] == 408


def test_a_default_timeout_from_the_options(make_router: Any, llm: LoopbackLLM) -> None:
    llm.script("work", hang(3))
    router = make_router(executor=ExecutorOptions(retries=0, timeout=0.3))
    started = time.perf_counter()
    response = router.completion("sonnet", hi())
    assert time.perf_counter() - started < 2.5
    assert response._hidden_params["policyrouter"]["deployment"] == "sonnet@personal"


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="retries"):
        ExecutorOptions(retries=-1)


def test_an_authentication_failure_makes_the_provider_unusable_for_a_while(make_router: Any, llm: LoopbackLLM) -> None:
    llm.script("work", unauthorized(echo_key=False))
    router = make_router(executor=ExecutorOptions(unusable_cooldown=600, backoff_base=0.001))
    router.completion("sonnet", hi())

    assert [c.provider for c in llm.calls()] == ["work", "personal"]
    router.live_facts.clear()
    assert router.live_facts.cooldown("work") == pytest.approx(600)
    decision = router.decide("sonnet")
    assert [d.key for d in decision.order] == ["sonnet@personal", "gpt-4o@backup"]
    assert any(e.code == "cooldown" for e in decision.excluded)


@pytest.mark.parametrize(("status", "kind"), [(403, "permission"), (402, "credits")])
def test_a_403_or_402_from_an_openai_compatible_server_cools_the_provider_down(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]], status: int, kind: str
) -> None:
    # litellm raises these as a BadRequestError, which failed the request at once on every deployment.
    llm.script("work", error(status, "This key may not use this model", code="forbidden"))
    router = make_router(executor=ExecutorOptions(unusable_cooldown=600))
    router.completion("sonnet", hi())

    assert [c.provider for c in llm.calls()] == ["work", "personal"]
    (failure,) = of_kind(events, "failure")
    assert (failure["error"], failure["status"], failure["next"]) == (kind, status, "fallback")
    router.live_facts.clear()
    assert router.live_facts.cooldown("work") == pytest.approx(600)


def test_out_of_credits_is_not_a_rate_limit(make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]) -> None:
    llm.script("work", out_of_credits())
    router = make_router(executor=ExecutorOptions(unusable_cooldown=900))
    router.completion("sonnet", hi())

    (failure,) = of_kind(events, "failure")
    assert failure["error"] == "credits"
    assert not of_kind(events, "throttled")
    router.live_facts.clear()
    assert router.live_facts.cooldown("work") == pytest.approx(900)


@pytest.mark.parametrize(
    ("reply", "kind", "text"),
    [
        (bad_request("Invalid value for 'temperature'"), "bad_request", "Invalid value for 'temperature'"),
        (content_policy(), "content_policy", "rejected as a result of our safety system"),
    ],
)
def test_bad_requests_fail_fast_with_the_providers_message(
    make_router: Any, llm: LoopbackLLM, reply: Any, kind: str, text: str
) -> None:
    llm.script("work", reply)
    router = make_router()
    with pytest.raises(RequestRejected) as caught:
        router.completion("sonnet", hi())

    assert caught.value.code == kind
    assert text in caught.value.provider_message
    assert text in str(caught.value)
    assert [c.provider for c in llm.calls()] == ["work"]
    assert spend(router) == 0
    router.live_facts.clear()
    assert router.live_facts.errors("work") == 0  # not the provider's fault
    assert router.live_facts.in_flight("work") == 0


CONTEXT_REGISTRY_MODELS = """
models:
  small:
    context_window: 8k
    price: {input_per_mtok: 1, output_per_mtok: 1}
    deployments:
      - {provider: work, model_id: small-a}
      - {provider: personal, model_id: small-b}
  large:
    context_window: 200k
    price: {input_per_mtok: 1, output_per_mtok: 1}
    deployments:
      - {provider: backup, model_id: large}
"""


def test_context_window_exceeded_skips_deployments_whose_window_is_not_larger(
    make_router: Any, llm: LoopbackLLM
) -> None:
    from executor_helpers import REGISTRY

    registry = REGISTRY.split("models:")[0] + CONTEXT_REGISTRY_MODELS
    llm.script("work", context_window_exceeded())
    router = make_router(registry, "route small fallback large\n")
    response = router.completion("small", hi())

    assert [c.provider for c in llm.calls()] == ["work", "backup"]
    assert response._hidden_params["policyrouter"]["deployment"] == "large@backup"


def test_when_everything_fails_one_error_lists_every_attempt(
    make_router: Any, llm: LoopbackLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    llm.script("work", rate_limited(retry_after=5))
    llm.default("personal", server_error(502))
    monkeypatch.delenv("PR_TEST_KEY_BACKUP")
    router = make_router(executor=ExecutorOptions(retries=1, backoff_base=0.001))
    with pytest.raises(AllDeploymentsFailed) as caught:
        router.completion("sonnet", hi())

    error = caught.value
    assert [(a.deployment.key, a.code, a.called) for a in error.attempts] == [
        ("sonnet@work", "rate_limited", True),
        ("sonnet@personal", "server_error", True),
        ("sonnet@personal", "server_error", True),
        ("gpt-4o@backup", "missing_key", False),
    ]
    text = str(error)
    assert "sonnet@work: rate_limited (429): Rate limit reached" in text
    assert "sonnet@personal: server_error (502) ×2" in text
    assert "gpt-4o@backup: missing_key (skipped): environment variable `PR_TEST_KEY_BACKUP` is not set" in text
    assert spend(router) == 0


def test_the_last_deployments_failure_says_the_request_fails(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # It said `next: fallback` with nothing left to fall back to.
    for provider in ("work", "personal", "backup"):
        llm.default(provider, server_error(503))
    router = make_router(executor=ExecutorOptions(retries=0))
    with pytest.raises(AllDeploymentsFailed):
        router.completion("sonnet", hi())
    assert [(e["deployment"], e["next"]) for e in of_kind(events, "failure")] == [
        ("sonnet@work", "fallback"),
        ("sonnet@personal", "fallback"),
        ("gpt-4o@backup", "fail"),
    ]


def test_an_unknown_price_is_null_in_every_event(
    make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]
) -> None:
    # The attempt event said `cost: 0.0` where the success event said null: "free" and "unknown" read alike.
    unpriced = REGISTRY.replace("    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}\n", "").replace(
        "run: {usd: 5.00, hard: true}", "run: {usd: 5.00}"
    )
    router = make_router(registry=unpriced)
    router.completion("sonnet", hi())
    assert [(e["event"], e["cost"]) for e in events if e["event"] in ("attempt", "success")] == [
        ("attempt", None),
        ("success", None),
    ]


def test_events_tell_the_story_of_a_fallback(make_router: Any, llm: LoopbackLLM, events: list[dict[str, Any]]) -> None:
    llm.script("work", rate_limited(retry_after=1))
    router = make_router()
    router.completion("sonnet", hi(), request_id="req-1")

    assert kinds(events) == ["decision", "attempt", "failure", "throttled", "fallback", "attempt", "success"]
    assert {e["request_id"] for e in events} == {"req-1"}
    assert len({e["run_id"] for e in events}) == 1


def test_round_robin_moves_on_with_each_request(make_router: Any, llm: LoopbackLLM) -> None:
    router = make_router(policy="route sonnet strategy round_robin\n")
    for _ in range(4):
        router.completion("sonnet", hi())
    assert [c.provider for c in llm.calls()] == ["work", "personal", "work", "personal"]


def test_a_refused_decision_raises_the_decisions_error_and_calls_nothing(make_router: Any, llm: LoopbackLLM) -> None:
    from policyrouter import DecisionError

    router = make_router()
    with pytest.raises(DecisionError) as caught:
        router.completion("sonnet", hi(), requires=["vision"])
    assert caught.value.code == "unsupported_capability"
    assert llm.calls() == []


def test_a_closed_router_refuses_what_needs_the_live_state(make_router: Any, llm: LoopbackLLM, tmp_path: Any) -> None:
    # It quietly opened its SQLite file again and went on. Dry runs touch nothing it closed: they still work.
    router = make_router(state=f"sqlite:///{tmp_path / 'state.db'}")
    view = router.run("batch")
    with view:
        view.completion("sonnet", hi())
    router.completion("sonnet", hi())  # leaving a view's `with` block closes nothing
    router.close()
    for use in (
        lambda: router.completion("sonnet", hi()),
        lambda: view.completion("sonnet", hi()),
        lambda: router.decide("sonnet"),
        lambda: router.run("another"),
    ):
        with pytest.raises(RuntimeError, match="this router is closed"):
            use()
    assert str(router.decide("sonnet", facts={}).order[0]) == "sonnet@work"
    assert len(llm.calls()) == 2


@pytest.mark.parametrize("at", ["attempt", "success"])
def test_a_ctrl_c_between_the_reservation_and_the_books_holds_nothing(
    make_router: Any, llm: LoopbackLLM, at: str
) -> None:
    # Raised after the reservation was made and before the call's try (at `attempt`), it left the
    # reservation held until its lease ran out; raised after the books (at `success`), they stay.
    def interrupt(event: dict[str, Any]) -> None:
        if event["event"] == at:
            raise KeyboardInterrupt

    llm.script("work", ok(prompt_tokens=1000, completion_tokens=200))
    router = make_router(events=interrupt)
    with pytest.raises(KeyboardInterrupt):
        router.completion("sonnet", hi())
    router.live_facts.clear()
    assert router.live_facts.in_flight("work") == 0
    assert router.live_facts.usage("budget", "run").reserved == 0
    billed = (1000 * 3.00 + 200 * 15.00) / 1e6 if at == "success" else 0.0  # a reply received is billed
    assert spend(router) == pytest.approx(billed)


def test_a_cooldown_in_one_run_view_is_seen_by_the_others(make_router: Any, llm: LoopbackLLM) -> None:
    # Each view kept its own cache of the live state: a provider one view cooled down after a 429 was
    # called again by the other, and answered 429 again.
    router = make_router()
    a, b = router.run("view-a"), router.run("view-b")
    b.completion("sonnet", hi())  # b's live facts now hold a snapshot
    llm.script("work", rate_limited(retry_after=60))
    a.completion("sonnet", hi())  # cools `work` down
    b.completion("sonnet", hi())  # at the same instant
    assert [c.provider for c in llm.calls()] == ["work", "work", "personal", "personal"]


def test_a_cooldown_the_store_cannot_record_does_not_fail_the_request(
    make_router: Any, llm: LoopbackLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The StateError of a busy or unreachable store came out of completion(), with no fallback, though the
    # failure event had said `next: fallback`; no spend rides on a cooldown.
    from policyrouter.state import StateError

    llm.script("work", rate_limited(retry_after=30))
    router = make_router()

    def unreachable(provider: str, seconds: float) -> None:
        raise StateError(router.store.url, "the store does not answer")

    monkeypatch.setattr(router.store, "cooldown", unreachable)
    response = router.completion("sonnet", hi())
    assert response._hidden_params["policyrouter"]["deployment"] == "sonnet@personal"
