"""Text to AST: structure (spans excluded from equality), spans that point at the source, comments."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import fields, is_dataclass
from typing import Any

import pytest

from policyrouter import ast
from policyrouter import parse as parse_module
from policyrouter.diagnostics import Source, Span
from policyrouter.errors import ConfigError
from policyrouter.parse import parse_policy

# Spans are not compared, so expected trees carry a placeholder.
_NOWHERE = Span(Source("<expected>", ""), 1, 1, 1, 1)


def I(name: str) -> ast.Ident:  # noqa: E743
    return ast.Ident(name, _NOWHERE)


def lit(kind: ast.LiteralKind, value: float | str | bool) -> ast.Literal:
    return ast.Literal(kind, value, _NOWHERE)


def call(func: str, arg: ast.Ident | ast.Literal | None = None) -> ast.Call:
    return ast.Call(I(func), arg, _NOWHERE)


def name(n: str) -> ast.Name:
    return ast.Name(n, _NOWHERE)


def cmp(op: str, left: ast.Expr, right: ast.Expr) -> ast.Compare:
    return ast.Compare(op, left, right, _NOWHERE)


def route(target: str, *clauses: ast.Clause, block: bool = False) -> ast.Route:
    return ast.Route(I(target), tuple(clauses), block, _NOWHERE)


def when(condition: ast.Expr, action: ast.Action, otherwise: ast.Action | None = None) -> ast.When:
    return ast.When(condition, action, otherwise, _NOWHERE)


def prefer(*providers: str) -> ast.Prefer:
    return ast.Prefer(tuple(I(p) for p in providers), _NOWHERE)


def only(*providers: str) -> ast.Only:
    return ast.Only(tuple(I(p) for p in providers), _NOWHERE)


def avoid(*providers: str) -> ast.Avoid:
    return ast.Avoid(tuple(I(p) for p in providers), _NOWHERE)


def use(model: str) -> ast.Use:
    return ast.Use(I(model), _NOWHERE)


def deny(message: str) -> ast.Deny:
    return ast.Deny(message, _NOWHERE)


def not_(operand: ast.Expr) -> ast.Not:
    return ast.Not(operand, _NOWHERE)


def and_(*operands: ast.Expr) -> ast.And:
    return ast.And(operands, _NOWHERE)


def or_(*operands: ast.Expr) -> ast.Or:
    return ast.Or(operands, _NOWHERE)


QUOTA_WORK = call("quota", I("work"))

# (name, policy text, expected statements)
# fmt: off
STRUCTURE = [
    (
        "the card",
        "route sonnet when quota(work) > 20% prefer work else personal",
        [route("sonnet", when(cmp(">", QUOTA_WORK, lit("share", 0.2)), prefer("work"), prefer("personal")))],
    ),
    (
        "a block",
        """route sonnet {
            requires tools, vision
            strategy most_remaining
            when tag("batch") use haiku
            otherwise avoid personal
            fallback gpt-4o, local-coder
        }""",
        [
            route(
                "sonnet",
                ast.Requires((I("tools"), I("vision")), _NOWHERE),
                ast.Strategy(I("most_remaining"), _NOWHERE),
                when(call("tag", lit("string", "batch")), use("haiku")),
                ast.Otherwise(avoid("personal"), _NOWHERE),
                ast.Fallback((I("gpt-4o"), I("local-coder")), _NOWHERE),
                block=True,
            )
        ],
    ),
    (
        "let and a name",
        'let tight = budget(month) < 15%\nroute opus when tight deny "paused"',
        [
            ast.Let(I("tight"), cmp("<", call("budget", I("month")), lit("share", 0.15)), _NOWHERE),
            route("opus", when(name("tight"), deny("paused"))),
        ],
    ),
    (
        "else with no verb repeats only",
        "route sonnet when tokens > 8k only work else personal, openai",
        [
            route(
                "sonnet", when(cmp(">", name("tokens"), lit("count", 8000.0)), only("work"), only("personal", "openai"))
            )
        ],
    ),
    (
        "else with no verb repeats use",
        'route sonnet when tag("cheap") use haiku else gpt-4o',
        [route("sonnet", when(call("tag", lit("string", "cheap")), use("haiku"), use("gpt-4o")))],
    ),
    (
        "else with its own verb",
        'route sonnet when hour >= 22 avoid work else deny "daytime only"',
        [route("sonnet", when(cmp(">=", name("hour"), lit("count", 22.0)), avoid("work"), deny("daytime only")))],
    ),
    (
        "globs",
        "route claude-* strategy round_robin\nroute * requires streaming",
        [
            route("claude-*", ast.Strategy(I("round_robin"), _NOWHERE)),
            route("*", ast.Requires((I("streaming"),), _NOWHERE)),
        ],
    ),
    (
        "and binds tighter than or; chains flatten",
        'route m when tag("a") or tag("b") and tag("c") and tag("d") prefer p',
        [
            route(
                "m",
                when(
                    or_(
                        call("tag", lit("string", "a")),
                        and_(
                            call("tag", lit("string", "b")),
                            call("tag", lit("string", "c")),
                            call("tag", lit("string", "d")),
                        ),
                    ),
                    prefer("p"),
                ),
            )
        ],
    ),
    (
        "parentheses and not",
        'route m when not (tag("a") or not tag("b")) prefer p',
        [
            route(
                "m",
                when(not_(or_(call("tag", lit("string", "a")), not_(call("tag", lit("string", "b"))))), prefer("p")),
            )
        ],
    ),
    (
        "in",
        "route m when weekday in (6, 7) prefer p",
        [route("m", when(ast.In(name("weekday"), (lit("count", 6.0), lit("count", 7.0)), _NOWHERE), prefer("p")))],
    ),
    (
        "a literal on the left",
        "route m when 20% < quota(work) prefer p",
        [route("m", when(cmp("<", lit("share", 0.2), QUOTA_WORK), prefer("p")))],
    ),
    (
        "string escapes",
        r'route m deny "say \"hi\" \\ bye"',
        [route("m", ast.Do(deny('say "hi" \\ bye'), _NOWHERE))],
    ),
]
# fmt: on

# (literal as written, kind, value)
LITERALS = [
    ("20%", "share", 0.2),
    ("2.5%", "share", 0.025),
    ("1.1%", "share", 0.011),  # worked out in decimal: 1.1 / 100 is 0.011000000000000001
    ("0.7%", "share", 0.007),
    ("1.1ms", "duration", 0.0011),
    ("$5", "money", 5.0),
    ("$0.25", "money", 0.25),
    ("3", "count", 3.0),
    ("8k", "count", 8000.0),
    ("1.5M", "count", 1_500_000.0),
    ("800ms", "duration", 0.8),
    ("30s", "duration", 30.0),
    ("5m", "duration", 300.0),
    ("1h", "duration", 3600.0),
    ('"batch"', "string", "batch"),
    ("true", "bool", True),
    ("false", "bool", False),
]


def _statements(text: str) -> list[ast.Statement]:
    return list(parse_policy(text, "p.policy").statements)


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in STRUCTURE], ids=[n for n, _, _ in STRUCTURE])
def test_structure(text: str, expected: list[ast.Statement]) -> None:
    assert _statements(text) == expected


@pytest.mark.parametrize(("written", "kind", "value"), LITERALS, ids=[w for w, _, _ in LITERALS])
def test_literals(written: str, kind: str, value: object) -> None:
    (statement,) = _statements(f"route m when x == {written} prefer p")
    assert isinstance(statement, ast.Route)
    clause = statement.clauses[0]
    assert isinstance(clause, ast.When) and isinstance(clause.condition, ast.Compare)
    assert clause.condition.right == lit(kind, value)  # type: ignore[arg-type]


@pytest.mark.parametrize("op", ["<", "<=", ">", ">=", "==", "!="])
def test_comparison_operators(op: str) -> None:
    (statement,) = _statements(f"route m when errors(openai) {op} 3 prefer p")
    assert statement == route("m", when(cmp(op, call("errors", I("openai")), lit("count", 3.0)), prefer("p")))


def test_a_bare_action_is_a_do_clause() -> None:
    """`ast.Clause` is `Requires | When | Otherwise | Do | Strategy | Fallback`: a bare action is a `Do`."""
    (statement,) = _statements("route sonnet { prefer work\n use haiku }")
    assert statement == route("sonnet", ast.Do(prefer("work"), _NOWHERE), ast.Do(use("haiku"), _NOWHERE), block=True)


LAYOUTS = [
    "route sonnet when quota(work) > 20% prefer work else personal fallback gpt-4o",
    "route sonnet {\n    when quota(work) > 20% prefer work else personal\n    fallback gpt-4o\n}\n",
    "route   sonnet\n  when quota( work )>20%\n    prefer work\n  else personal\n  fallback\n gpt-4o",
    "# the card\nroute sonnet {  # two plans\n  when (quota(work) > 20%) prefer work else personal\n"
    "  fallback gpt-4o  # then openai\n}",
]


@pytest.mark.parametrize("text", LAYOUTS[1:], ids=["block", "spread out", "comments and parentheses"])
def test_layouts_of_the_same_policy_parse_equal(text: str) -> None:
    assert _statements(text) == _statements(LAYOUTS[0])


def test_comments_are_layout_not_structure() -> None:
    """Comments are kept for `fmt`, but like spans they are not compared: moving one changes nothing."""
    assert parse_policy(LAYOUTS[3], "a.policy") == parse_policy(LAYOUTS[0], "b.policy")


def test_different_policies_parse_unequal() -> None:
    assert _statements(LAYOUTS[0]) != _statements(LAYOUTS[0].replace("20%", "25%"))
    assert _statements(LAYOUTS[0]) != _statements(LAYOUTS[0].replace("prefer", "only"))


# -- spans -----------------------------------------------------------------------------------------

SPAN_POLICY = """\
let tight = budget(month) < 15%

route sonnet {
    requires tools
    when tight and not tag("interactive") use haiku
    when quota(work) > 20% prefer work else personal
    fallback gpt-4o, local-coder
}
"""


def _nodes(node: Any) -> Iterator[Any]:
    if isinstance(node, tuple):
        for item in node:
            yield from _nodes(item)
    elif is_dataclass(node) and not isinstance(node, (Span, Source)):
        yield node
        for f in fields(node):
            if f.name not in ("span", "source", "comments"):
                yield from _nodes(getattr(node, f.name))


def test_every_span_reads_back_its_own_text() -> None:
    tree = parse_policy(SPAN_POLICY, "p.policy")
    checked = 0
    for node in _nodes(tree.statements):
        text = node.span.text
        if isinstance(node, (ast.Ident, ast.Name)):
            assert text == node.name
        elif isinstance(node, ast.Literal):
            assert text == (f'"{node.value}"' if node.kind == "string" else f"{node.value * 100:g}%")
        elif isinstance(node, ast.Call):
            arg = node.arg.name if isinstance(node.arg, ast.Ident) else f'"{node.arg.value}"'  # type: ignore[union-attr]
            assert text == f"{node.func.name}({arg})"
        else:
            continue
        checked += 1
    assert checked == 20


@pytest.mark.parametrize(
    ("pick", "where", "text"),
    [
        (lambda s: s[0], (1, 1, 1, 32), "let tight = budget(month) < 15%"),
        (lambda s: s[0].name, (1, 5, 1, 10), "tight"),
        (lambda s: s[1], (3, 1, 8, 2), None),
        (lambda s: s[1].target, (3, 7, 3, 13), "sonnet"),
        (lambda s: s[1].clauses[0], (4, 5, 4, 19), "requires tools"),
        (lambda s: s[1].clauses[1].condition, (5, 10, 5, 42), 'tight and not tag("interactive")'),
        (lambda s: s[1].clauses[1].condition.operands[1].operand.arg, (5, 28, 5, 41), '"interactive"'),
        (lambda s: s[1].clauses[1].action.model, (5, 47, 5, 52), "haiku"),
        (lambda s: s[1].clauses[2], (6, 5, 6, 53), "when quota(work) > 20% prefer work else personal"),
        (lambda s: s[1].clauses[2].condition.right, (6, 24, 6, 27), "20%"),
        (lambda s: s[1].clauses[2].action, (6, 28, 6, 39), "prefer work"),
        (lambda s: s[1].clauses[2].otherwise.providers[0], (6, 45, 6, 53), "personal"),
        (lambda s: s[1].clauses[3].models[1], (7, 22, 7, 33), "local-coder"),
    ],
    ids=["let", "let name", "route", "target", "requires", "condition", "tag argument", "use model", "when",
         "literal", "action", "else provider", "fallback model"],
)  # fmt: skip
def test_spans_point_at_the_source(pick: Any, where: tuple[int, int, int, int], text: str | None) -> None:
    node = pick(parse_policy(SPAN_POLICY, "p.policy").statements)
    span = node.span
    assert (span.line, span.column, span.end_line, span.end_column) == where
    assert span.path == "p.policy"
    if text is not None:
        assert span.text == text
    assert str(span) == f"p.policy:{where[0]}:{where[1]}"


# -- comments ----------------------------------------------------------------------------------------


def test_comments_are_collected_with_their_lines() -> None:
    text = '# head\nroute opus {  # opus\n    deny "use #2, not #1"\n    # inside\n}\n# tail'
    tree = parse_policy(text, "p.policy")
    assert tree.comments == ((1, "# head"), (2, "# opus"), (4, "# inside"), (6, "# tail"))
    assert [n.message for n in _nodes(tree.statements) if isinstance(n, ast.Deny)] == ["use #2, not #1"]


def test_no_comments() -> None:
    assert parse_policy("route opus prefer work", "p.policy").comments == ()


# -- syntax errors carry a position ------------------------------------------------------------------

SYNTAX_ERRORS = [
    ("route sonnet whne quota(work) > 20% prefer work", (1, 14)),
    ("route sonnet {\n    when quota(work) > 20% prefer work\n    when tag('x') avoid work\n}", (3, 14)),
    ("route sonnet when quota(work) > 20x prefer work", (1, 33)),
    ('route sonnet when tag("x") deny "no" else work', (1, 43)),
    ("route sonnet {\n    prefer work\n", (2, 16)),
    (f"route sonnet when tokens > {'9' * 400} prefer work", (1, 28)),
]


@pytest.mark.parametrize(
    ("text", "where"), SYNTAX_ERRORS, ids=["keyword", "quote", "unit", "else", "end", "more digits than a float"]
)
def test_syntax_errors_carry_a_position(text: str, where: tuple[int, int]) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text, "p.policy")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.code == "syntax" and diagnostic.severity == "error"
    assert diagnostic.span is not None and (diagnostic.span.line, diagnostic.span.column) == where
    if "9" * 400 in text:
        assert diagnostic.message.endswith("is too large")


# -- long files, parsed a piece at a time ------------------------------------------------------------


def _long_policy(routes: int) -> str:
    """SPAN_POLICY, then one-line routes with comments, and every 50 a `let` and a block route."""
    lines = [SPAN_POLICY]
    for i in range(routes):
        lines.append(f"route m{i} when quota(p{i % 7}) > {i % 90}% prefer p{i % 7} else p{i % 5}  # route {i}\n")
        if i % 50 == 0:
            lines.append(f'let l{i} = not tag("t{i}")\nroute b{i} {{\n    when l{i} use m{i}\n    fallback m0\n}}\n')
    return "".join(lines)


LONG_POLICY = _long_policy(600)


def _positions(tree: ast.PolicyFile) -> list[tuple[str, int, int, int, int]]:
    spans = [(type(n).__name__, n.span) for n in _nodes(tree.statements)]
    return [(kind, s.line, s.column, s.end_line, s.end_column) for kind, s in spans]


def _parsed_whole(text: str, monkeypatch: pytest.MonkeyPatch) -> ast.PolicyFile:
    with monkeypatch.context() as m:
        m.setattr(parse_module, "_PIECE_CHARS", len(text) + 1)
        return parse_policy(text, "p.policy")


def test_a_long_file_parses_in_pieces_as_it_does_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    assert len(list(parse_module._pieces(LONG_POLICY))) > 2
    pieces, whole = parse_policy(LONG_POLICY, "p.policy"), _parsed_whole(LONG_POLICY, monkeypatch)
    assert pieces == whole
    assert _positions(pieces) == _positions(whole)
    assert pieces.comments == whole.comments and len(pieces.comments) == 600


def test_a_line_that_starts_with_route_can_be_a_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pieces end where a line starts with `route`, but here it is a provider: the file parses whole."""
    monkeypatch.setattr(parse_module, "_PIECE_CHARS", 1)
    statements = _statements("route x prefer a,\nroute\nroute y prefer b\n")
    assert statements == [route("x", ast.Do(prefer("a", "route"), _NOWHERE)), route("y", ast.Do(prefer("b"), _NOWHERE))]


def test_comments_of_a_file_parsed_in_pieces_keep_the_file_s_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "_PIECE_CHARS", 1)
    text = "# a\nroute w prefer a  # b\n\n# c\nroute y prefer b  # d\n"
    assert parse_policy(text, "p.policy").comments == ((1, "# a"), (2, "# b"), (4, "# c"), (5, "# d"))


def test_comments_are_kept_once_when_the_pieces_give_way_to_the_whole_file(monkeypatch: pytest.MonkeyPatch) -> None:
    """The pieces before the one that does not parse have passed their comments already."""
    monkeypatch.setattr(parse_module, "_PIECE_CHARS", 1)
    text = "# a\nroute w prefer a\nroute x prefer a,  # b\nroute  # c\nroute y prefer b  # d\n"
    assert parse_policy(text, "p.policy").comments == ((1, "# a"), (3, "# b"), (4, "# c"), (5, "# d"))


def test_a_long_file_reports_the_problem_a_whole_parse_finds_first(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad unit is found when the AST is built, after a whole file parses: a syntax error further on
    comes first, pieces or not."""
    monkeypatch.setattr(parse_module, "_PIECE_CHARS", 1)
    with pytest.raises(ConfigError) as info:
        parse_policy("route a when quota(w) > 20x prefer w\nroute b whne quota(w) > 20% prefer w\n", "p.policy")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.span is not None and (diagnostic.span.line, diagnostic.span.column) == (2, 9)


# (policy, the word reported, its column): where the grammar takes no name, Lark's lexer matched a
# keyword at the start of a longer word, so each of these parsed as if the space were there
GLUED = [
    ("routesonnet prefer work", "routesonnet", 1),
    ("lettight = true", "lettight", 1),
    ("route sonnet when tokens > 5 preferwork", "preferwork", 30),
    ("route sonnet prefer work elsework", "elsework", 26),
    ('route sonnet when tag("x") andtag("y") prefer work', "andtag", 28),
    ("route sonnet fallbackgpt-4o", "fallbackgpt-4o", 14),
    ("route sonnet when hour > 22 prefers", "prefers", 29),
]


@pytest.mark.parametrize(("text", "word", "column"), GLUED, ids=[w for _, w, _ in GLUED])
def test_a_keyword_glued_to_the_next_word_is_an_error(text: str, word: str, column: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_policy(text + "\n", "p.policy")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.message == f"unexpected `{word}`: a keyword is a word of its own"
    assert diagnostic.span is not None and (diagnostic.span.column, diagnostic.span.end_column) == (
        column,
        column + len(word),
    )


def test_a_glued_keyword_in_a_long_file_is_found_at_its_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parse_module, "_PIECE_CHARS", 1)
    with pytest.raises(ConfigError) as info:
        parse_policy("route a prefer w\nroute b prefer w\nroutec prefer w\n", "p.policy")
    (diagnostic,) = info.value.diagnostics
    assert diagnostic.span is not None and (diagnostic.span.line, diagnostic.span.column) == (3, 1)


def test_every_keyword_of_the_grammar_must_end_its_word() -> None:
    words = {t.name for t in parse_module._parser().terminals if t.pattern.type == "str" and t.pattern.value.isalpha()}
    assert words and words <= set(parse_module._KEYWORDS)
