"""One layout for `registry.yaml`, comments and key order kept.

ruamel's round trip keeps what the file says: key order, comments, quotes, flow or block style,
anchors, how numbers are written; a null is written as it was (`null`, `~` or nothing). It is dumped
with two spaces per mapping level and sequences indented under their key (`- ` two spaces in), on
lines as long as they need to be; then the comments are placed: a comment beside a value gets two
spaces before its `#`, and a comment on a line of its own the indentation of the entry it belongs to
(the one below it, or the last entry of the block above it when it was indented as that block).

The result is checked before it is given: read again, it must hold the same data, every value written
as it was, every comment where it was (beside a value or on a line of its own), and come out the same
when formatted again. Where ruamel's round trip cannot do that (it keeps no comment inside a `[...]`
written over several lines, for one), the file is left as it is, with a `fmt-unsafe` error saying why.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from policyrouter.diagnostics import Diagnostic, Source
from policyrouter.errors import ConfigError

_NULLS = ("~", "null", "Null", "NULL")


def format_registry(text: str, path: str = "registry.yaml") -> str:
    """The registry `text` in the canonical layout. Raises ConfigError when it is not YAML, or when it
    cannot be laid out with every value and comment as it was."""
    from ruamel.yaml.error import YAMLError

    from policyrouter.registry_schema import yaml_problem

    try:
        _yaml().load(text)
    except YAMLError as exc:
        raise ConfigError([yaml_problem(exc, Source(path, text, yaml=True))]) from None
    try:
        once = _layout(text)
        if once == text:
            return text
        problem = _changed(text, once) or _unstable(once)
    except Exception as exc:  # a round trip ruamel does not support: it wrote what it cannot read, say
        problem = f"ruamel could not write it back ({type(exc).__name__}: {exc})"
    if problem is not None:
        raise ConfigError(
            [
                Diagnostic(
                    "fmt-unsafe",
                    f"the registry cannot be laid out as it is written: {problem}; it is left as it is",
                    path=path,
                    help="ruamel, which rewrites it, keeps no comment inside a `{...}` or `[...]` written over "
                    "several lines, nor some spellings of values: move such a comment above the line",
                )
            ]
        )
    return once


def _layout(text: str) -> str:
    yaml = _yaml()
    data = yaml.load(text)
    if data is None:  # comments only, or nothing
        return text
    _keep_null_spellings(data, _null_tokens(text))
    yaml.explicit_start = text.lstrip("\ufeff").startswith("---")
    out = io.StringIO()
    yaml.dump(data, out)
    dumped = out.getvalue()
    return _place_comments(dumped, data, _yaml().load(dumped), text)


@dataclass(frozen=True, slots=True)
class _SpelledNull:
    """A null as the file wrote it (`null`, `~`): ruamel writes every null as nothing."""

    spelling: str


def _yaml() -> Any:
    from policyrouter.yaml_text import round_trip_yaml

    yaml = round_trip_yaml()
    yaml.preserve_quotes = True
    yaml.indent(mapping=2, sequence=4, offset=2)
    yaml.width = 1 << 20  # never fold a line
    yaml.representer.add_representer(
        _SpelledNull, lambda r, null: r.represent_scalar("tag:yaml.org,2002:null", null.spelling)
    )
    return yaml


def _null_tokens(text: str) -> dict[tuple[int, int], str]:
    """Where the text spells a null, and how."""
    return {
        (token.start_mark.line, token.start_mark.column): token.value
        for token in _scan(text)
        if type(token).__name__ == "ScalarToken" and token.plain and token.value in _NULLS
    }


def _keep_null_spellings(data: Any, spelled: dict[tuple[int, int], str]) -> None:
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    seen: set[int] = set()
    stack = [data]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if isinstance(node, CommentedMap):
            for key, (_, _, line, column) in list((node.lc.data or {}).items()):
                if node[key] is None and (line, column) in spelled:
                    node[key] = _SpelledNull(spelled[line, column])
                stack.append(node[key])
        elif isinstance(node, CommentedSeq):
            for index, (line, column) in list((node.lc.data or {}).items()):
                if node[index] is None and (line, column) in spelled:
                    node[index] = _SpelledNull(spelled[line, column])
                stack.append(node[index])


# -- comments -------------------------------------------------------------------------------------


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
    """(line in the file, line in the dump) of every mapping key and sequence item written in the
    file (not those merged in with `<<:`), walking the data as read from each."""
    from ruamel.yaml.comments import CommentedMap, CommentedSeq

    seen: set[int] = set()

    def walk(old: Any, new: Any) -> Iterator[tuple[int, int]]:
        if id(old) in seen or not isinstance(old, (CommentedMap, CommentedSeq)):
            return  # an alias is walked where its anchor is
        seen.add(id(old))
        for key, position in (old.lc.data or {}).items():
            moved = (new.lc.data or {}).get(key)
            if moved is not None:
                yield position[0], moved[0]
                yield from walk(old[key], new[key])

    return walk(original, again)


def _comment_places(text: str) -> tuple[set[int], dict[int, int]]:
    """The lines inside a scalar that spans lines (a `#` there is text), and the column of each
    comment that follows a value on its line, as ruamel's scanner finds them."""
    lines = text.split("\n")
    inside: set[int] = set()
    beside: dict[int, int] = {}
    for token in _scan(text):
        start, end = token.start_mark, token.end_mark
        if type(token).__name__ == "ScalarToken" and end.line > start.line:
            inside.update(range(start.line + 1, end.line + (end.column > 0)))
        for comment in _comments(token):
            line, column = comment.start_mark.line, comment.start_mark.column
            if comment.value.startswith("#") and lines[line][:column].strip():
                beside[line] = column
    return inside, beside


def _comments(token: Any) -> Iterator[Any]:
    for part in getattr(token, "_comment", None) or ():
        for comment in part if isinstance(part, list) else [part]:
            if hasattr(comment, "start_mark"):  # ruamel keeps some as plain text, placed nowhere
                yield comment


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _scan(text: str) -> Iterator[Any]:
    from policyrouter.yaml_text import round_trip_yaml

    return round_trip_yaml().scan(text)


# -- checks ---------------------------------------------------------------------------------------


def _changed(text: str, formatted: str) -> str | None:
    """What the formatted text would change, if anything: a value, how a value is written, a comment."""
    if _plain(_yaml().load(formatted)) != _plain(_yaml().load(text)):
        return "a value would change"
    was, now = _scalars(text), _scalars(formatted)
    if [w for w, _ in was] != [n for n, _ in now]:
        return _first_respelled(was, now)
    before, after = _comment_kinds(text), _comment_kinds(formatted)
    for kind, comment in before - after:
        if ("own" if kind == "beside" else "beside", comment) in after - before:
            return f"the comment `{comment}` would move {'off its line' if kind == 'beside' else 'beside a value'}"
        return f"the comment `{comment}` would be lost"
    return None


def _first_respelled(was: list[tuple[str, int]], now: list[tuple[str, int]]) -> str:
    """The first value the layout writes otherwise, said as a person would see it."""
    import difflib

    matcher = difflib.SequenceMatcher(a=[w for w, _ in was], b=[n for n, _ in now], autojunk=False)
    for op, a, _, b, _ in matcher.get_opcodes():
        if op == "replace":
            return f"`{_short(was[a][0])}` would be written `{_short(now[b][0])}` (line {was[a][1] + 1})"
        if op == "insert":
            return f"an empty value would be written `{_short(now[b][0])}` (line {now[b][1] + 1} of the result)"
        if op == "delete":
            return f"`{_short(was[a][0])}` would be left out (line {was[a][1] + 1})"
    return "a value would be written otherwise"


def _unstable(formatted: str) -> str | None:
    return None if _layout(formatted) == formatted else "formatting it again would change it again"


def _scalars(text: str) -> list[tuple[str, int]]:
    """Each scalar as written (its quotes or block style, and its text), with its line."""
    return [
        (f"{token.style or ''}{token.value}", token.start_mark.line)
        for token in _scan(text)
        if type(token).__name__ == "ScalarToken"
    ]


def _comment_kinds(text: str) -> Counter[tuple[str, str]]:
    """Each comment's text, and whether it is beside a value or on a line of its own."""
    lines = text.split("\n")
    inside, beside = _comment_places(text)
    found: Counter[tuple[str, str]] = Counter()
    for line, column in beside.items():
        found["beside", lines[line][column:].strip()] += 1
    for i in _own_line_comments(lines, inside, beside):
        found["own", lines[i].strip()] += 1
    return found


def _plain(value: Any) -> Any:
    """The data as plain values, key order included."""
    if isinstance(value, dict):
        return [(key, _plain(item)) for key, item in value.items()]
    if isinstance(value, list):
        return [_plain(item) for item in value]
    tag = getattr(value, "tag", None)
    if tag is not None and hasattr(value, "value"):  # a tagged scalar (`!env FOO`): by tag and text
        return (str(getattr(tag, "value", tag)), value.value)
    return (type(value).__mro__[-2], value)


def _short(text: str) -> str:
    text = text.replace("\n", "⏎")
    return text if len(text) <= 40 else text[:39] + "…"
