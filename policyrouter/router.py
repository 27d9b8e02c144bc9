"""The front door: `load(DIR)` gives a Router; `Router.decide(...)` gives a Decision.

Without `facts`, a decision reads the live state (the store `settings.state` names, SQLite by
default, opened on first use); with `facts`, it is a dry run that never touches the store.

`Router.completion(...)` / `await Router.acompletion(...)` decide and then run the request through
litellm (`policyrouter.executor`), reporting to the router's `events`; `Router.run(NAME)` is a view of
the router whose calls count against the run NAME. litellm is imported on the first call only.
"""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from policyrouter.config import Config, load_config
from policyrouter.decision import Decision, Request, new_id, request_id_or_new, token_count
from policyrouter.diagnostics import Diagnostic
from policyrouter.errors import ConfigError, PolicyRouterError
from policyrouter.evaluate import decide
from policyrouter.events import Events, Redactor, SinkSpec
from policyrouter.facts import Fact, FactsError, FactSource, StaticFacts
from policyrouter.forks import renew_locks_after_fork
from policyrouter.program import Program
from policyrouter.quantities import finite_number
from policyrouter.registry import Registry

if TYPE_CHECKING:
    from policyrouter.executor import Executor, ExecutorOptions
    from policyrouter.state import LiveFacts, StateStore

MAX_RUN_VIEWS = 64  # run views kept for `run_id=` arguments, most recent first


class Router:
    """Routes requests with one compiled program. Thread-safe: deciding only reads.

    `events` is where the executor reports (a path for JSON lines, a text stream, a callable, a list
    of them, or an `Events`); `executor` sets its retries, backoff and cooldowns.
    """

    def __init__(
        self,
        config: Config,
        *,
        state: StateStore | str | None = None,
        clock: Callable[[], datetime] | None = None,
        run_id: str | None = None,
        staleness: float | None = None,
        events: SinkSpec = None,
        executor: ExecutorOptions | None = None,
    ) -> None:
        if config.program is None or config.registry is None:
            raise ConfigError(config.errors or config.diagnostics)
        _check_options(state, clock, staleness, executor)
        if run_id is not None:  # `5` failed on the first call, and `""` meant the default run
            from policyrouter.state.store import check_run_id

            check_run_id(run_id, "`run_id`: ")
        self.config = config
        self.program: Program = config.program
        self.registry: Registry = config.registry
        self.clock = clock
        self.run_id = run_id
        self._custom_facts = config.custom_facts
        self._state = state
        self._staleness = staleness
        self._store: StateStore | None = None
        self._live: LiveFacts | None = None
        self._new_locks()
        renew_locks_after_fork(self)
        self.redact = Redactor(p.api_key_env for p in self.registry.providers.values() if p.api_key_env)
        self._owns_events = not isinstance(events, Events)
        self.events: Events = events if isinstance(events, Events) else Events(events)
        if self.events.redact is None:
            self.events.redact = self.redact
        self.executor_options = executor
        self._executor: Executor | None = None
        self._runs: dict[str, Router] = {}
        self._root = self  # the router its run views were made from: closing it closes them
        self._closed = False

    @property
    def warnings(self) -> list[Diagnostic]:
        return [d for d in self.config.diagnostics if d.severity == "warning"]

    @property
    def store(self) -> StateStore:
        """The live state store, opened on first use."""
        if self._root._closed:
            raise RuntimeError(_CLOSED)
        if self._store is None:
            with self._lock:
                if self._store is None:
                    self._store = self._open_store()
        return self._store

    def _open_store(self) -> StateStore:
        from policyrouter.state import StateStore, open_store

        if isinstance(self._state, StateStore):
            return self._state
        options: dict[str, Any] = {"run_id": self.run_id} if self.run_id else {}
        if self.clock is not None:
            options["clock"] = self.clock
        return open_store(self.registry, self._state, **options)

    @property
    def live_facts(self) -> LiveFacts:
        """The facts decisions read when no dry-run facts are given: the store's, briefly cached."""
        if self._root._closed:
            raise RuntimeError(_CLOSED)
        if self._live is None:
            from policyrouter.state import LiveFacts

            options: dict[str, Any] = {} if self._staleness is None else {"ttl": self._staleness}
            self._live = LiveFacts(self.store, self.registry, run_id=self.run_id, **options)
        return self._live

    def decide(
        self,
        model: str,
        *,
        requires: Iterable[str] = (),
        tokens: int = 0,
        max_tokens: int | None = None,
        tags: Iterable[str] = (),
        facts: Mapping[str, Any] | FactSource | None = None,
        request_id: str | None = None,
    ) -> Decision:
        """Decide where a request goes. With a `facts` mapping, a dry run: what it does not give
        reads as a fresh state, never the live one. Raises DecisionError (`.code`) on a refusal."""
        if not isinstance(model, str):
            raise TypeError(f"`model` is the name of a model of the registry, such as 'sonnet'; got {model!r}")
        source: FactSource
        if facts is None:
            source = self.live_facts.for_decision()  # one instant for the whole decision
        elif isinstance(facts, Mapping):
            try:
                static = StaticFacts(self.registry, facts, self.clock, self._custom_facts)
            except FactsError as e:
                raise InvalidFacts(e) from None
            source = static
            if request_id is None:
                request_id = static.request_id or ""
        elif hasattr(facts, "quota_left"):
            source = facts
        else:
            raise TypeError(f"`facts` is a mapping of dry-run facts or a FactSource; got {type(facts).__name__}")
        request = Request(
            model=model,
            requires=_names("requires", requires),
            tokens=token_count("tokens", tokens),
            max_tokens=None if max_tokens is None else token_count("max_tokens", max_tokens),
            tags=_names("tags", tags),
            request_id=request_id_or_new(request_id),
        )
        return decide(self.program, request, source)

    # -- running requests through litellm -------------------------------------------------------

    def completion(
        self,
        model: str,
        messages: Sequence[Any],
        *,
        requires: Iterable[str] = (),
        tags: Iterable[str] = (),
        tokens: int | None = None,
        request_id: str | None = None,
        run_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Decide, then call the ordered deployments through `litellm.completion` until one serves.

        `kwargs` go to litellm as they are (`stream=True` returns a stream that settles the books when
        it ends or is closed). `tokens` overrides the prompt estimate; `run_id` counts the call against
        that run. Raises DecisionError (refusals, `BudgetExceeded`), `RequestRejected` or
        `AllDeploymentsFailed`; see docs/executor.md.
        """
        router = self if run_id is None else self._run_view(run_id)
        options = {"requires": requires, "tags": tags, "tokens": tokens, "request_id": request_id}
        return router._get_executor().completion(router, model, messages, **options, **kwargs)

    async def acompletion(
        self,
        model: str,
        messages: Sequence[Any],
        *,
        requires: Iterable[str] = (),
        tags: Iterable[str] = (),
        tokens: int | None = None,
        request_id: str | None = None,
        run_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """`completion`, through `litellm.acompletion`; a stream is iterated with `async for`."""
        router = self if run_id is None else self._run_view(run_id)
        options = {"requires": requires, "tags": tags, "tokens": tokens, "request_id": request_id}
        return await router._get_executor().acompletion(router, model, messages, **options, **kwargs)

    def run(self, name: str | None = None) -> Router:
        """A view of this router whose decisions and calls count against the run `name` (its `run`
        budget and `run` windows); a fresh run id when `name` is None. Shares the store and events;
        usable as a context manager (leaving it closes nothing shared)."""
        from policyrouter.state.store import check_run_id

        run_id = check_run_id(name) if name is not None else f"run-{new_id()[:12]}"
        view = Router(
            self.config,
            state=self.store,
            clock=self.clock,
            run_id=run_id,
            staleness=self._staleness,
            events=self.events,
            executor=self.executor_options,
        )
        view._executor = self._get_executor()
        view._root = self._root
        return view

    def _run_view(self, run_id: str) -> Router:
        view = self._runs.get(run_id)
        if view is None:
            view = self.run(run_id)
            with self._lock:
                self._runs[run_id] = view
                while len(self._runs) > MAX_RUN_VIEWS:
                    self._runs.pop(next(iter(self._runs)))
        return view

    def _get_executor(self) -> Executor:
        if self._executor is None:
            from policyrouter.executor import Executor, ExecutorOptions

            self._executor = Executor(self.executor_options or ExecutorOptions(), self.events, self.redact)
        return self._executor

    def _new_locks(self) -> None:
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the state store if this router opened it (a store passed in stays open), and the
        event files it opened; first settle the streams left to the garbage collector (a router that
        made no call has none). Then it, and the run views made from it, refuse what needs the live
        state; dry runs (`decide(..., facts=...)`) still work. Closing a run view closes nothing."""
        if self._root is self:
            self._closed = True
        if self._executor is not None:
            from policyrouter.streams import LEFTOVERS

            # a stream dropped unread sits in a reference cycle with its generator, so only the cyclic
            # collector finds it: run it now, so its finalizer queues its books before the wait
            if LEFTOVERS.unsettled():
                gc.collect()
            LEFTOVERS.wait(timeout=10.0)
        if self._store is not None and self._store is not self._state:
            self._store.close()
        if self._owns_events:
            self.events.close()

    def __enter__(self) -> Router:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


_CLOSED = "this router is closed: load a new one, or use it before `close()` (the end of its `with` block)"


def _check_options(state: object, clock: Callable[[], object] | None, staleness: object, executor: object) -> None:
    """`Router`'s options, checked where they are given rather than where they are first used."""
    if state is not None and not isinstance(state, str) and not hasattr(state, "reserve"):
        raise TypeError(f"`state` is a store URL such as 'memory://', or a StateStore; got {type(state).__name__}")
    if clock is not None:
        if not callable(clock):
            raise TypeError(f"`clock` is a function that returns the time; got {type(clock).__name__}")
        now = clock()
        if not isinstance(now, datetime) or now.tzinfo is None:
            raise TypeError(f"`clock` returns an aware datetime, such as datetime.now(timezone.utc); it gave {now!r}")
    if staleness is not None and ((seconds := finite_number(staleness)) is None or seconds < 0):
        raise ValueError(f"`staleness` is how many seconds live facts may be old: 0 or more; got {staleness!r}")
    if executor is not None:
        from policyrouter.executor import ExecutorOptions

        if not isinstance(executor, ExecutorOptions):
            raise TypeError(f"`executor` is an ExecutorOptions; got {type(executor).__name__}")


def _names(argument: str, names: Iterable[str] | None) -> frozenset[str]:
    """Capabilities or tags: a list of names, one name (not its letters), or None for none."""
    if not names:
        return _NO_NAMES
    if isinstance(names, str):
        return frozenset((names,))
    try:
        found = frozenset(names)
    except TypeError:  # `requires=5`
        raise TypeError(f"`{argument}` is a list of names (strings); got {names!r}") from None
    if not all(isinstance(name, str) for name in found):
        wrong = next(name for name in found if not isinstance(name, str))
        raise TypeError(f"`{argument}` is a list of names (strings); got {wrong!r} in it")
    return found


_NO_NAMES: frozenset[str] = frozenset()


class InvalidFacts(PolicyRouterError):
    """A facts mapping that does not fit the registry; says which key and why."""

    def __init__(self, error: FactsError) -> None:
        self.path = error.path
        self.help = error.help
        where = ".".join(error.path)
        message = f"facts{'.' + where if where else ''}: {error.message}"
        super().__init__(message + (f" ({error.help})" if error.help else ""))


def load(
    directory: str | Path = ".",
    *,
    facts: Mapping[str, Fact] | None = None,
    state: StateStore | str | None = None,
    clock: Callable[[], datetime] | None = None,
    run_id: str | None = None,
    staleness: float | None = None,
    events: SinkSpec = None,
    executor: ExecutorOptions | None = None,
) -> Router:
    """Load a config directory (registry.yaml and *.policy). Raises ConfigError listing every problem.

    `facts` registers facts of your own for policies to read; `state` overrides `settings.state`
    (a store or a URL such as `memory://`); `run_id` names the run that `run` budgets count against;
    `events` and `executor` configure `Router.completion` (see `Router`).
    """
    if not isinstance(directory, (str, os.PathLike)):
        raise TypeError(f"`directory` is the path of a config directory; got {directory!r}")
    config = load_config(Path(directory), facts)
    return Router(
        config, state=state, clock=clock, run_id=run_id, staleness=staleness, events=events, executor=executor
    )
