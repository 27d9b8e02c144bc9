"""YAML text to ruamel's round-trip data (mappings and sequences that know their line and column), for
the registry and the decision tests, whose problems point at the place in the file."""

from __future__ import annotations

import contextlib
from typing import Any


def load_yaml(text: str) -> Any:
    """The YAML as ruamel's round-trip loader reads it, positions and all.

    It is read first without the scanner that keeps comments, a sixth faster: nothing reads the
    comments, nor the position of a null value, the one thing that reader places differently (problems
    point at a null value's key). Where that fails, the full loader reads the text again, so a problem
    is worded and placed as it says: the two stop at different places in some broken files, and the
    full one takes a few odd plain scalars, such as `{a: :b}`.
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.scanner import Scanner

    quick = YAML(typ="rt")
    quick.Scanner = Scanner
    with contextlib.suppress(Exception):
        return quick.load(text)
    return YAML(typ="rt").load(text)


def problem_at(exc: Exception, text: str) -> tuple[int, int] | None:
    """Where in `text` ruamel stopped on `exc`, as a 0-based line and column; None if it does not say."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return mark.line, mark.column
    offset = getattr(exc, "position", None)  # a character YAML does not allow: the reader knows its offset
    if not isinstance(offset, int):
        return None
    before = text[:offset].splitlines(keepends=True)  # lines as `Source` counts them
    if not before:
        return 0, 0
    last = before[-1]
    return (len(before), 0) if last.splitlines()[0] != last else (len(before) - 1, len(last))


def problem_text(exc: Exception) -> str:
    """What ruamel says is wrong, without its own note of where."""
    problem = getattr(exc, "problem", None)
    if problem:
        return str(problem)
    return str(exc).split("\n", 1)[0] or "not valid YAML"
