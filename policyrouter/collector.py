"""Pausing Python's cyclic garbage collector while a config is built.

Parsing and compiling allocate many small objects that all live on (the AST, the compiled tree). The
cyclic collector would walk them again and again as they pile up, so building a config of 10,000
routes would take far longer than ten configs of 1,000. Nothing built here forms a cycle that needs
collecting, so pausing it is safe; the previous state is restored, and nesting is harmless.
"""

from __future__ import annotations

import functools
import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def collector_paused() -> Iterator[None]:
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def without_collector(fn: Callable[P, R]) -> Callable[P, R]:
    """Run `fn` with the cyclic collector paused."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with collector_paused():
            return fn(*args, **kwargs)

    return wrapper
