"""The front door: `load(DIR)` gives a Router; `Router.decide(...)` gives a Decision."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from policyrouter.compile import Fact
from policyrouter.config import Config, load_config
from policyrouter.decision import Decision, Request
from policyrouter.errors import ConfigError, PolicyRouterError
from policyrouter.evaluate import decide
from policyrouter.facts import FactsError, FactSource, StaticFacts
from policyrouter.program import Program
from policyrouter.registry import Registry


class Router:
    """Routes requests with one compiled program. Thread-safe: deciding reads, never writes."""

    def __init__(
        self, config: Config, facts: FactSource | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
        if config.program is None or config.registry is None:
            raise ConfigError(config.errors or config.diagnostics)
        self.config = config
        self.program: Program = config.program
        self.registry: Registry = config.registry
        self.clock = clock
        self._custom_names = frozenset(config.custom_facts)
        self._facts = facts

    @property
    def warnings(self) -> list[Any]:
        return [d for d in self.config.diagnostics if d.severity == "warning"]

    def decide(
        self,
        model: str,
        *,
        requires: Iterable[str] = (),
        tokens: int = 0,
        max_tokens: int | None = None,
        tags: Iterable[str] = (),
        facts: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> Decision:
        """Decide where a request goes. With `facts`, a dry run: what they do not give reads as a
        fresh state, never the live one. Raises DecisionError (with `.code`) on a refusal."""
        source: FactSource
        if facts is not None or self._facts is None:
            try:
                static = StaticFacts(self.registry, facts, self.clock, self._custom_names)
            except FactsError as e:
                raise InvalidFacts(e) from None
            source = static
            request_id = request_id if request_id is not None else static.request_id
        else:
            source = self._facts
        request = Request(
            model=model,
            requires=frozenset(requires),
            tokens=int(tokens),
            max_tokens=max_tokens,
            tags=frozenset(tags),
            request_id=request_id if request_id is not None else (uuid.uuid4().hex if facts is None else ""),
        )
        return decide(self.program, request, source)


class InvalidFacts(PolicyRouterError):
    """A facts mapping that does not fit the registry; says which key and why."""

    def __init__(self, error: FactsError) -> None:
        self.path = error.path
        self.help = error.help
        where = ".".join(error.path)
        super().__init__(
            f"facts{'.' + where if where else ''}: {error.message}" + (f" ({error.help})" if error.help else "")
        )


def load(
    directory: str | Path = ".", *, facts: Mapping[str, Fact] | None = None, clock: Callable[[], datetime] | None = None
) -> Router:
    """Load a config directory (registry.yaml and *.policy). Raises ConfigError listing every problem."""
    return Router(load_config(Path(directory), facts), clock=clock)
