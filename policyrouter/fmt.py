"""One canonical layout for `.policy` files, comments kept.

A route with at most one deciding clause (`when`, `otherwise` or a bare action) and no comment
inside fits on one line when it is short enough; any other route is a block with one clause per
line. A `when` whose comments sit beside more than its last part keeps a line per part (the
condition, or each operand of an `and`/`or` written over several lines; the action; `else`), each
with its comments, and so does a `let` of such an `and`/`or`. Whatever is joined onto one line keeps the
last comment of its lines at its end and puts any before it on lines of their own above it: a
comment is never merged into another. Statements keep a blank line between them where the source
had one. Expressions are printed
with single spaces and only the parentheses precedence needs. Laws (tested): `fmt(fmt(x)) == fmt(x)`
and `parse(fmt(x)) == parse(x)`.
"""

from __future__ import annotations

from collections.abc import Sequence

from policyrouter import ast
from policyrouter.parse import parse_policy

LINE_WIDTH = 100
INDENT = "    "

_PRECEDENCE = {ast.Or: 1, ast.And: 2, ast.Not: 3}


def format_policy(text: str, path: str = "<policy>") -> str:
    """The canonical text of a policy. Raises ConfigError when it does not parse."""
    tree = parse_policy(text, path)
    return _Printer(tree, text).print()


class _Printer:
    def __init__(self, tree: ast.PolicyFile, text: str) -> None:
        self.tree = tree
        self.lines = text.split("\n")  # numbered as the parser numbers them
        self.comments = dict(tree.comments)  # line → comment text
        self.out: list[str] = []

    def print(self) -> str:
        statements = self.tree.statements
        inside = {n for s in statements for n in range(s.span.line, s.span.end_line + 1)}
        items: list[tuple[int, ast.Statement | str]] = [(s.span.line, s) for s in statements]
        items += [(line, text) for line, text in self.comments.items() if line not in inside]
        previous_end = None
        for line, item in sorted(items, key=lambda pair: pair[0]):
            if previous_end is not None and self._blank_between(previous_end, line):
                self.out.append("")
            if isinstance(item, str):
                self.out.append(item)
                previous_end = line
            else:
                self.statement(item)
                previous_end = item.span.end_line
        return "\n".join(self.out) + "\n" if self.out else ""

    def _blank_between(self, after: int, before: int) -> bool:
        return any(not self.lines[n - 1].strip() for n in range(after + 1, before))

    def take_comments(self, first: int, last: int) -> list[tuple[int, str]]:
        return [(line, self.comments.pop(line)) for line in range(first, last + 1) if line in self.comments]

    def trailing_comment(self, line: int) -> str:
        text = self.comments.pop(line, None)
        return f"  {text}" if text else ""

    # -- statements -----------------------------------------------------------------------------

    def statement(self, node: ast.Statement) -> None:
        if isinstance(node, ast.Let):
            parts = operand_parts(f"let {node.name.name} = ", node.value)
            parts[-1] = (parts[-1][0], node.span.end_line)  # the last part takes the lines to the end: `)  # …`
            if self.split(parts, node.span.line):
                return
            self.out += self.commented(f"let {node.name.name} = {expr(node.value)}", node.span.line, node.span.end_line)
            return
        head = f"route {node.target.name}"
        one_line = f"{head} {' '.join(clause(c) for c in node.clauses)}"
        deciding = sum(isinstance(c, (ast.When, ast.Otherwise, ast.Do, *_ACTIONS)) for c in node.clauses)
        inner_comments = any(
            line in self.comments for line in range(node.span.line, node.span.end_line + 1) if line != node.span.line
        ) or (node.span.end_line != node.span.line and node.span.line in self.comments)
        if node.clauses and deciding <= 1 and not inner_comments and len(one_line) <= LINE_WIDTH:
            self.out += self.commented(one_line, node.span.line, node.span.end_line)
            return
        self.out.append(head + " {" + self.trailing_comment(node.span.line))
        for c in node.clauses:
            self.out += [INDENT + text for _, text in self.take_comments(node.span.line + 1, c.span.line - 1)]
            self.out += [INDENT + line for line in self.clause_lines(c)]
        self.out += [INDENT + text for _, text in self.take_comments(node.span.line + 1, node.span.end_line - 1)]
        closing = self.trailing_comment(node.span.end_line) if node.span.end_line != node.span.line else ""
        self.out.append("}" + closing)

    def clause_lines(self, node: ast.Clause) -> list[str]:
        """The clause on one line with its comments (see `commented`); but a `when` with comments
        beside more than its last part keeps a line per part, each part's comments with it."""
        if isinstance(node, ast.When) and node.span.end_line > node.span.line:
            parts = operand_parts("when ", node.condition)
            parts.append((action(node.action), node.action.span.end_line))
            if node.otherwise is not None:
                parts.append((f"else {otherwise(node)}", node.otherwise.span.end_line))
            lines = self.line_per_part(parts, node.span.line)
            if lines is not None:
                return lines
        return self.commented(clause(node), node.span.line, node.span.end_line)

    def line_per_part(self, parts: list[tuple[str, int]], first: int) -> list[str] | None:
        """A line per part (its text and the last line of its source), each with the comments of its
        source lines, when a part before the last has one; else None. Lines after the first are
        indented."""
        starts = [first] + [end + 1 for _, end in parts[:-1]]
        lines = [(text, start, end) for (text, end), start in zip(parts, starts, strict=True)]
        if not any(line in self.comments for _, start, end in lines[:-1] for line in range(start, end + 1)):
            return None
        out = []
        for i, (text, start, end) in enumerate(lines):
            out += [(INDENT if i else "") + line for line in self.commented(text, start, end)]
        return out

    def split(self, parts: list[tuple[str, int]], first: int) -> bool:
        """Print a statement a line per part if its comments ask for it (see `line_per_part`)."""
        lines = self.line_per_part(parts, first) if len(parts) > 1 else None
        if lines is not None:
            self.out += lines
        return lines is not None

    def commented(self, text: str, first: int, last: int) -> list[str]:
        """`text`, printed on one line, with the comments of the lines `first`..`last` it came from:
        the last one at its end, any before it on lines of their own above it."""
        found = [comment for _, comment in self.take_comments(first, last)]
        return [*found[:-1], text + f"  {found[-1]}"] if found else [text]


_ACTIONS = (ast.Prefer, ast.Only, ast.Avoid, ast.Use, ast.Deny)


def operand_parts(head: str, condition: ast.Expr) -> list[tuple[str, int]]:
    """`head` and a condition as parts to print a line each (with the last source line of each): an
    `and`/`or` chain written over several lines gives a part per operand, which keeps each
    operand's comment beside it; any other condition is one part."""
    if not isinstance(condition, (ast.And, ast.Or)) or condition.span.end_line == condition.span.line:
        return [(head + expr(condition), condition.span.end_line)]
    own, word = _PRECEDENCE[type(condition)], "and " if isinstance(condition, ast.And) else "or "
    first, *rest = condition.operands
    return [(head + expr(first, own), first.span.end_line)] + [(word + expr(o, own), o.span.end_line) for o in rest]


def clause(node: ast.Clause | ast.Action) -> str:
    if isinstance(node, ast.Requires):
        return f"requires {_names(node.capabilities)}"
    if isinstance(node, ast.Strategy):
        return f"strategy {node.name.name}"
    if isinstance(node, ast.Fallback):
        return f"fallback {_names(node.models)}"
    if isinstance(node, ast.When):
        text = f"when {expr(node.condition)} {action(node.action)}"
        return text if node.otherwise is None else f"{text} else {otherwise(node)}"
    if isinstance(node, ast.Otherwise):
        return f"otherwise {action(node.action)}"
    if isinstance(node, ast.Do):
        return action(node.action)
    return action(node)


def otherwise(node: ast.When) -> str:
    """What follows `else`: the action, without its verb when it repeats the `when` branch's."""
    assert node.otherwise is not None
    text = action(node.otherwise)
    if type(node.otherwise) is type(node.action) and not isinstance(node.action, ast.Deny):
        return text.split(" ", 1)[1]  # `else personal` repeats the verb
    return text


def action(node: ast.Action) -> str:
    if isinstance(node, ast.Prefer):
        return f"prefer {_names(node.providers)}"
    if isinstance(node, ast.Only):
        return f"only {_names(node.providers)}"
    if isinstance(node, ast.Avoid):
        return f"avoid {_names(node.providers)}"
    if isinstance(node, ast.Use):
        return f"use {node.model.name}"
    return f"deny {_string(node.message)}"


def expr(node: ast.Expr, parent: int = 0) -> str:
    if isinstance(node, ast.Literal):
        return _string(str(node.value)) if node.kind == "string" else node.span.text
    if isinstance(node, ast.Name):
        return node.name
    if isinstance(node, ast.Call):
        if node.arg is None:
            return f"{node.func.name}()"
        arg = node.arg.name if isinstance(node.arg, ast.Ident) else _string(str(node.arg.value))
        return f"{node.func.name}({arg})"
    if isinstance(node, (ast.Compare, ast.In)):
        if isinstance(node, ast.Compare):
            text = f"{expr(node.left, 4)} {node.op} {expr(node.right, 4)}"
        else:
            text = f"{expr(node.left, 4)} in ({', '.join(expr(o, 4) for o in node.options)})"
        return f"({text})" if parent >= 4 else text  # one side of a comparison: comparisons do not chain
    own = _PRECEDENCE[type(node)]
    if isinstance(node, ast.Not):
        text = f"not {expr(node.operand, own)}"
    else:
        word = " and " if isinstance(node, ast.And) else " or "
        text = word.join(expr(o, own) for o in node.operands)
    # a nested `and`/`or` of the same kind came from parentheses: keep them, so the tree is the same
    return f"({text})" if own < parent or (own == parent and isinstance(node, (ast.And, ast.Or))) else text


def _names(idents: Sequence[ast.Ident]) -> str:
    return ", ".join(i.name for i in idents)


def _string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
