"""Source spans and diagnostics: one type for every problem found in a config, one renderer.

A `Diagnostic` is data (code, severity, message, span, help); `render` turns a list of them into
text (``file:line:col: error[code]: message``, the source line, a caret, ``help:``), JSON or GitHub
annotations. Every layer that finds a problem in user input — YAML loading, parsing, compiling,
linting — produces these, so the CLI never shows a traceback for bad input.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning", "note"]  # `--strict` makes warnings errors; notes stay notes


@dataclass(frozen=True, slots=True)
class Source:
    """The text of one input file, kept so any span can show its snippet."""

    path: str
    text: str
    yaml: bool = field(default=False, compare=False)  # YAML also ends a line at U+0085, U+2028, U+2029
    lines: tuple[str, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Lines end where the file's parser ends them: "\n" for a policy (text mode has made "\r\n" and
        # "\r" one). `splitlines` would also end one at a form feed, and number the lines after it wrong.
        lines = _YAML_BREAK.split(self.text) if self.yaml else self.text.split("\n")
        object.__setattr__(self, "lines", tuple(lines))

    def line_text(self, line: int) -> str:
        return self.lines[line - 1] if 0 < line <= len(self.lines) else ""


@dataclass(frozen=True, slots=True)
class Span:
    """A region of a source file: 1-based line and column, end exclusive on the same line."""

    source: Source = field(compare=False, repr=False)
    line: int
    column: int
    end_line: int
    end_column: int

    @property
    def path(self) -> str:
        return self.source.path

    @property
    def text(self) -> str:
        """The source text the span covers, its lines joined by single spaces."""
        if self.end_line == self.line:
            return self.source.line_text(self.line)[self.column - 1 : self.end_column - 1]
        parts = [self.source.line_text(self.line)[self.column - 1 :]]
        parts += [self.source.line_text(n) for n in range(self.line + 1, self.end_line)]
        parts.append(self.source.line_text(self.end_line)[: self.end_column - 1])
        return " ".join(p.strip() for p in parts if p.strip())

    @property
    def caret_width(self) -> int:
        """How many carets mark the span on its first line."""
        line = self.source.line_text(self.line)
        end = self.end_column if self.end_line == self.line else len(line) + 1
        return max(1, end - self.column)

    def __str__(self) -> str:
        return f"{self.path}:{self.line}:{self.column}"


def _blank_as(text: str) -> str:
    """Blanks as wide on a terminal as `text`: its tabs kept, two spaces for a wide character (`日`),
    none for a combining one, so a caret under the line lands under the character it marks."""
    if text.isascii() and "\t" not in text:
        return " " * len(text)
    import unicodedata

    return "".join(
        "\t"
        if c == "\t"
        else ""
        if unicodedata.combining(c)
        else "  "
        if unicodedata.east_asian_width(c) in "WF"
        else " "
        for c in text
    )


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    severity: Severity = "error"
    help: str | None = None
    path: str | None = None  # for problems with no span (a missing file)

    @property
    def location(self) -> str:
        if self.span is not None:
            return str(self.span)
        return self.path or ""

    def sort_key(self) -> tuple[str, int, int, str]:
        if self.span is None:
            return (self.path or "", 0, 0, self.code)
        return (self.span.path, self.span.line, self.span.column, self.code)

    def as_error(self) -> Diagnostic:
        return Diagnostic(self.code, self.message, self.span, "error", self.help, self.path)

    def render(self) -> str:
        head = f"{self.severity}[{self.code}]: {self.message}"
        if self.location:
            head = f"{self.location}: {head}"
        lines = [head]
        if self.span is not None:
            src = self.span.source.line_text(self.span.line)
            gutter = " " * len(str(self.span.line))
            start = self.span.column - 1
            marked = src[start : start + self.span.caret_width]
            lines += [
                f"{gutter} |",
                f"{self.span.line} | {src}",
                f"{gutter} | {_blank_as(src[:start])}{'^' * max(1, len(_blank_as(marked)))}",
            ]
        if self.help:
            pad = " " * len(str(self.span.line)) if self.span is not None else ""
            lines.append(f"{pad} = help: {self.help}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, object]:
        out: dict[str, object] = {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.span.path if self.span else self.path,
            "line": self.span.line if self.span else None,
            "column": self.span.column if self.span else None,
            "end_line": self.span.end_line if self.span else None,
            "end_column": self.span.end_column if self.span else None,
        }
        if self.help:
            out["help"] = self.help
        return out

    def github(self) -> str:
        """A GitHub Actions workflow command: an annotation on the file and line."""
        props = []
        file = self.span.path if self.span else self.path
        if file:
            props.append(f"file={github_property(file)}")  # `g,1/x.policy` would end the property at the comma
        if self.span:
            props += [f"line={self.span.line}", f"col={self.span.column}", f"endColumn={self.span.end_column}"]
        props.append(f"title={self.code}")
        text = github_text(self.message + (f" (help: {self.help})" if self.help else ""))
        level = "notice" if self.severity == "note" else self.severity
        return f"::{level} {','.join(props)}::{text}"


def github_text(text: str) -> str:
    """A workflow command's message, escaped as GitHub reads it (`20%` would otherwise be mangled)."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def github_property(text: str) -> str:
    """A workflow command's property (`file=…`), escaped as GitHub reads it."""
    return github_text(text).replace(":", "%3A").replace(",", "%2C")


def line_and_column(text: str, offset: int, yaml: bool = False) -> tuple[int, int]:
    """The 1-based line and column of the character at `offset` in `text`, lines counted as `Source`
    counts them."""
    lines = (_YAML_BREAK if yaml else _BREAK).split(text[:offset])
    return len(lines), len(lines[-1]) + 1


_BREAK = re.compile("\n")
_YAML_BREAK = re.compile("[\n\x85\u2028\u2029]")


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> list[Diagnostic]:
    return sorted(diagnostics, key=Diagnostic.sort_key)


def render(diagnostics: Sequence[Diagnostic], fmt: str = "text", limit: int = 50) -> str:
    """Render diagnostics sorted by position, capped at `limit` with "… and N more"."""
    ordered = sort_diagnostics(diagnostics)
    if fmt == "json":
        return json.dumps([d.to_dict() for d in ordered], indent=2)
    if fmt == "github":
        return "\n".join(d.github() for d in ordered)
    shown = ordered[:limit]
    parts = [d.render() for d in shown]
    if len(ordered) > limit:
        parts.append(f"… and {len(ordered) - limit} more")
    return "\n\n".join(parts)


def did_you_mean(word: str, choices: Iterable[str]) -> str | None:
    """The closest choice to `word` as a help line, or None when nothing is close."""
    best = closest(word, choices)
    return f"did you mean `{best}`?" if best else None


def closest(word: str, choices: Iterable[str]) -> str | None:
    best, best_distance = None, None
    for choice in choices:
        d = _edit_distance(word.lower(), choice.lower())
        if d <= max(1, len(word) // 3) and (best_distance is None or d < best_distance):
            best, best_distance = choice, d
    return best


def _edit_distance(a: str, b: str) -> int:
    """Damerau-Levenshtein distance (optimal string alignment), enough for typos."""
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]
