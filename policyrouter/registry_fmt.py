"""One layout for `registry.yaml`, comments and key order kept.

ruamel's round trip keeps what the file says: key order, comments, quotes, flow or block style,
anchors, how numbers are written. It is dumped with two spaces per mapping level and sequences
indented under their key (`- ` two spaces in), on lines as long as they need to be; then the comments
are placed: a comment beside a value gets two spaces before its `#`, and a comment on a line of its own
the indentation of the entry it belongs to (the one below it, or the last entry of the block above it
when it was indented as that block). The result is read again: the data and the comments must be what
the file had, or the file is left as it is.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

from policyrouter.diagnostics import Diagnostic, Source
from policyrouter.errors import ConfigError


def format_registry(text: str, path: str = "registry.yaml") -> str:
    """The registry `text` in the canonical layout. Raises ConfigError when it is not YAML, or when
    ruamel cannot write it back with every comment in place."""
    from ruamel.yaml.error import YAMLError

    from policyrouter.registry_schema import yaml_problem

    source = Source(path, text, yaml=True)
    yaml = _yaml()
    try:
        data = yaml.load(text)
    except YAMLError as exc:
        raise ConfigError([yaml_problem(exc, source)]) from None
    if data is None:  # comments only, or nothing
        return text
    yaml.explicit_start = text.lstrip("\ufeff").startswith("---")
    out = io.StringIO()
    yaml.dump(data, out)
    dumped = out.getvalue()
    formatted = _place_comments(dumped, data, yaml.load(dumped), text)
    _check_same(text, formatted, data, source)
    return formatted


def _yaml() -> Any:
    from ruamel.yaml import YAML

    yaml = YAML(typ="rt")
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 1 << 20  # never fold a line
    return yaml


def _place_comments(dumped: str, original: Any, again: Any, text: str) -> str:
    """`dumped` with each comment where the layout puts it (ruamel keeps the column it had)."""
    lines = dumped.split("\n")
    old_lines = text.split("\n")
    # Each entry's line in the dump, and its indentation in the file it came from.
    was_indented: dict[int, int] = {}
    for old_line, new_line in _entry_lines(original, again):
        was_indented.setdefault(new_line, _indent(old_lines[old_line]))
    inside, beside = _comment_places(dumped)
    # ruamel writes a comment on a line of its own about where it was, not always there: take its
    # column from the file
    own = _own_line_comments(lines, inside, beside)
    old_inside, old_beside = _comment_places(text)
    old_own = _own_line_comments(old_lines, old_inside, old_beside)
    if [old_lines[i].strip() for i in old_own] == [lines[i].strip() for i in own]:
        column_of = {i: _indent(old_lines[o]) for i, o in zip(own, old_own, strict=True)}
    else:
        column_of = {i: _indent(lines[i]) for i in own}
    out: list[str] = []
    for i, line in enumerate(lines):
        if i in inside:
            out.append(line)
            continue
        if i in beside:
            column = beside[i]
            line = line[:column].rstrip() + "  " + line[column:]
        elif i in column_of:
            line = " " * _comment_indent(i, column_of[i], lines, was_indented) + line.lstrip()
        line = line.rstrip()
        if line or (out and out[-1]):  # one blank line at most, none at the top
            out.append(line)
    while out and not out[-1]:
        out.pop()
    return "\n".join(out) + "\n"


def _own_line_comments(lines: list[str], inside: set[int], beside: dict[int, int]) -> list[int]:
    """The lines that hold a comment and nothing else."""
    return [i for i, line in enumerate(lines) if i not in inside and i not in beside and line.lstrip().startswith("#")]


def _comment_indent(at: int, column: int, lines: list[str], was_indented: dict[int, int]) -> int:
    """Where a comment on a line of its own goes: with the entry below it, or with an entry of the
    block above it that it was indented as (the deepest that was indented no more than it)."""
    entries = sorted(was_indented)
    below = next((e for e in entries if e > at), None)
    candidates = [] if below is None else [below]
    deepest = None
    for e in reversed([e for e in entries if e < at]):  # the entries above, and the blocks they are in
        if deepest is None or was_indented[e] < deepest:
            deepest = was_indented[e]
            candidates.append(e)
    if not candidates:
        return 0
    fitting = [e for e in candidates if was_indented[e] <= column]
    if not fitting:
        return min(_indent(lines[e]) for e in candidates)
    best = max(was_indented[e] for e in fitting)
    chosen = next(e for e in fitting if was_indented[e] == best)  # the entry below first
    return _indent(lines[chosen])


def _entry_lines(original: Any, again: Any) -> Iterator[tuple[int, int]]:
    """(line in the file, line in the dump) of every mapping key and sequence item, walking the data
    as read from each."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    seen: set[int] = set()

    def walk(old: Any, new: Any) -> Iterator[tuple[int, int]]:
        if id(old) in seen:  # an alias: walked where its anchor is
            return
        seen.add(id(old))
        if isinstance(old, CommentedMap):
            for key in old:
                yield old.lc.key(key)[0], new.lc.key(key)[0]
                yield from walk(old[key], new[key])
        elif isinstance(old, CommentedSeq):
            for index, item in enumerate(old):
                yield old.lc.item(index)[0], new.lc.item(index)[0]
                yield from walk(item, new[index])

    return walk(original, again)


def _comment_places(text: str) -> tuple[set[int], dict[int, int]]:
    """The lines inside a scalar that spans lines (a `#` there is text), and the column of each
    comment that follows a value on its line, as ruamel's scanner finds them."""
    from ruamel.yaml import YAML

    lines = text.split("\n")
    inside: set[int] = set()
    beside: dict[int, int] = {}
    for token in YAML(typ="rt").scan(text):
        start, end = token.start_mark, token.end_mark
        if type(token).__name__ == "ScalarToken" and end.line > start.line:
            inside.update(range(start.line + 1, end.line + (end.column > 0)))
        for comment in _comments(token):
            line, column = comment.start_mark.line, comment.start_mark.column
            if comment.value.startswith("#") and lines[line][:column].strip():
                beside[line] = column
    return inside, beside


def _comments(token: Any) -> Iterator[Any]:
    found = getattr(token, "_comment", None) or ()
    for part in found:
        if isinstance(part, list):
            yield from (c for c in part if c is not None)
        elif part is not None:
            yield part


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _check_same(text: str, formatted: str, data: Any, source: Source) -> None:
    """The formatted text must hold the same data and the same comments as the file."""
    if formatted == text:
        return
    again = _yaml().load(formatted)
    if _plain(again) != _plain(data) or _comment_texts(formatted) != _comment_texts(text):
        raise ConfigError(
            [
                Diagnostic(
                    "fmt-unsafe",
                    "the registry cannot be rewritten without losing a comment or changing a value; "
                    "it is left as it is",
                    path=source.path,
                    help="a comment inside a `{...}` or `[...]` that spans lines is the usual cause: "
                    "move it above the line",
                )
            ]
        )


def _plain(value: Any) -> Any:
    """The data as plain values, key order included."""
    if isinstance(value, dict):
        return [(key, _plain(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return (type(value).__mro__[-2], value)


def _comment_texts(text: str) -> list[str]:
    """Every comment of the text, in the order of its lines' text."""
    from ruamel.yaml import YAML

    found = []
    for token in YAML(typ="rt").scan(text):
        for comment in _comments(token):
            found += [line.strip() for line in comment.value.split("\n") if line.strip()]
    return sorted(found)
