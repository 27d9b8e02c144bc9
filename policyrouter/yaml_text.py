"""YAML text to ruamel's round-trip data (mappings and sequences that know their line and column), for
the registry and the decision tests, whose problems point at the place in the file."""

from __future__ import annotations

import functools
import re
from typing import Any

from policyrouter.diagnostics import line_and_column

# What libyaml (YAML 1.1) reads otherwise than ruamel (YAML 1.2), or takes where ruamel stops: tabs,
# anchors, aliases and tags (libyaml ends a name at the first character that is not a letter or digit),
# directives, byte-order marks, Unicode line breaks and control characters. A text with any of these is
# read by ruamel's own parser; registries and decision tests seldom have one.
_NOT_FOR_LIBYAML = re.compile(r"[\t&*!\x00-\x08\x0b-\x1f\x7f-\x9f\ufeff\u2028\u2029]|^%", re.MULTILINE)


def load_yaml(text: str) -> Any:
    """The YAML as ruamel's round-trip loader reads it, positions and all.

    It is read first by the quickest reader at hand: libyaml's parser (`ruamel.yaml.clib`) under
    ruamel's round-trip constructor, four times as fast as ruamel's own parser, for a text without the
    few things libyaml reads otherwise; else ruamel's parser without the scanner that keeps comments, a
    sixth faster. Each builds the same data with the same positions: nothing reads the comments, nor the
    position of a null value, the one thing they place differently (problems point at a null value's
    key). Where the quick read fails, the full loader reads the text again, so a problem is worded and
    placed as it says: libyaml words its errors otherwise, the readers stop at different places in some
    broken files, and the full one takes a few odd plain scalars, such as `{a: :b}`.
    """

    try:
        try:
            data = quick_load(text)
        except Exception:
            data = round_trip_yaml().load(text)
    except RecursionError:  # ruamel builds nested collections recursively: a few hundred levels at most
        raise _too_deep(text) from None
    escape = _SURROGATE_ESCAPE.search(text)
    if escape is not None and _holds_a_surrogate(data):
        raise _surrogate(text, escape)
    return data


# `"\ud800"`: half of a UTF-16 pair, which YAML decodes to a string no file or terminal can take
_SURROGATE_ESCAPE = re.compile(r"\\(?:u|U0000)[dD][89a-fA-F][0-9a-fA-F]{2}")


def _holds_a_surrogate(data: Any) -> bool:
    stack = [data]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if not node.isascii():
                try:
                    node.encode("utf-8")
                except UnicodeEncodeError:
                    return True
        elif isinstance(node, dict):
            stack += [*node.keys(), *node.values()]
        elif isinstance(node, list):
            stack += node
    return False


def _surrogate(text: str, escape: re.Match[str]) -> Exception:
    from ruamel.yaml.error import MarkedYAMLError, StreamMark

    line, column = line_and_column(text, escape.start(), yaml=True)
    problem = f"`{escape.group()}` is half of a UTF-16 surrogate pair, not a character: write the character itself"
    return MarkedYAMLError(problem=problem, problem_mark=StreamMark(None, escape.start(), line - 1, column - 1))


def _too_deep(text: str) -> Exception:
    """A YAML error placed where the text nests deepest: the outermost `[` or `{` of its deepest nest
    of brackets when that is deep, else the unindented line above its most indented one."""
    from ruamel.yaml.error import MarkedYAMLError, StreamMark

    depth = deepest = 0
    at = outermost = (0, 0)
    for row, line in enumerate(text.splitlines()):
        for column, char in enumerate(line):
            if char in "[{":
                depth += 1
                if depth == 1:
                    outermost = (row, column)
                if depth > deepest:
                    deepest, at = depth, outermost
            elif char in "]}":
                depth = max(0, depth - 1)
    if deepest < 50:
        lines = text.splitlines()
        indents = [(len(line) - len(line.lstrip(" ")), row) for row, line in enumerate(lines) if line.strip()]
        _, row = max(indents, default=(0, 0))
        while row > 0 and lines[row][:1] in ("", " "):
            row -= 1
        at = (row, 0)
    problem = "nested too deeply to read: a registry or a test file needs a few levels, not hundreds"
    return MarkedYAMLError(problem=problem, problem_mark=StreamMark(None, 0, *at))


def quick_load(text: str) -> Any:
    """The YAML read by the quickest reader at hand, which may reject what the full loader takes."""
    libyaml_loader = _libyaml_loader()
    if libyaml_loader is None or _NOT_FOR_LIBYAML.search(text):
        from ruamel.yaml.scanner import Scanner

        quick = round_trip_yaml()
        quick.Scanner = Scanner
        return quick.load(text)
    loader = libyaml_loader(text)
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@functools.lru_cache(maxsize=1)
def _libyaml_loader() -> type | None:
    """libyaml's parser and composer under ruamel's round-trip constructor and resolver, as ruamel's
    `YAML` assembles a C loader for its other kinds (it keeps the round-trip kind on its own parser,
    for the comments)."""
    try:
        from _ruamel_yaml import CParser
    except ImportError:
        return None
    from ruamel.yaml.resolver import VersionedResolver

    constructor: Any = _checked_constructor()

    class LibyamlRoundTripLoader(CParser, constructor, VersionedResolver):
        comment_handling = None  # what ruamel's `YAML` would set: comments are not kept

        def __init__(self, text: str) -> None:
            CParser.__init__(self, text)
            self._parser = self._composer = self
            constructor.__init__(self, loader=self)
            VersionedResolver.__init__(self, loadumper=self)

    return LibyamlRoundTripLoader


def round_trip_yaml() -> Any:
    """ruamel's round-trip `YAML`, whose dates that are no dates (`2025-02-30`) are YAML errors placed
    at the value, as its other errors are, not a ValueError from Python's `datetime`."""
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.Constructor = _checked_constructor()
    return yaml


@functools.lru_cache(maxsize=1)
def _checked_constructor() -> Any:
    from ruamel.yaml.constructor import ConstructorError, RoundTripConstructor

    class CheckedConstructor(RoundTripConstructor):
        def construct_yaml_timestamp(self, node: Any, values: Any = None) -> Any:
            try:
                return super().construct_yaml_timestamp(node, values)
            except ValueError as e:
                problem = f"`{node.value}` is not a date or time: {e}"
                raise ConstructorError(None, None, problem, node.start_mark) from None

    CheckedConstructor.add_constructor("tag:yaml.org,2002:timestamp", CheckedConstructor.construct_yaml_timestamp)
    return CheckedConstructor


def problem_at(exc: Exception, text: str) -> tuple[int, int] | None:
    """Where in `text` ruamel stopped on `exc`, as a 0-based line and column; None if it does not say."""
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return mark.line, mark.column
    offset = getattr(exc, "position", None)  # a character YAML does not allow: the reader knows its offset
    if not isinstance(offset, int):
        return None
    line, column = line_and_column(text, offset, yaml=True)
    return line - 1, column - 1


def problem_text(exc: Exception) -> str:
    """What ruamel says is wrong, without its own note of where."""
    problem = getattr(exc, "problem", None)
    if problem:
        return str(problem)
    return str(exc).split("\n", 1)[0] or "not valid YAML"


def problem_help(exc: Exception, text: str = "") -> str | None:
    """A hint for what ruamel says is wrong (in `text`): where the structure it was reading began, or
    what to do."""
    from ruamel.yaml.reader import ReaderError

    problem = problem_text(exc)
    if "\\t" in problem or "\t" in problem:
        at = problem_at(exc, text)
        lines = text.split("\n")
        if at is not None and at[0] < len(lines) and lines[at[0]][: at[1]].strip(" -"):  # `-` is indentation
            return "write a space here: ruamel reads no tab inside a line"
        return "YAML indents with spaces, not tabs"
    context, mark = getattr(exc, "context", None), getattr(exc, "context_mark", None)
    if context and mark is not None:
        return f"{context}, which starts on line {mark.line + 1}"
    if isinstance(exc, ReaderError):
        return "remove it: YAML text holds printable characters, tabs and line breaks only"
    return None
