"""Text to AST: Lark's LALR parser over `grammar/policy.lark`, built once, with positions.

Syntax errors become diagnostics that say, in the language's own words, what was expected.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken
from lark.tree import Meta

from policyrouter import ast
from policyrouter.collector import without_collector
from policyrouter.diagnostics import Diagnostic, Source, Span, did_you_mean
from policyrouter.errors import ConfigError
from policyrouter.filecache import FileCache
from policyrouter.quantities import QuantityError, parse_quantity

_PACKAGE_DIR = Path(__file__).resolve().parent
# A wheel carries the grammar inside the package; a source checkout has it at the top level.
_GRAMMAR_PATHS = (_PACKAGE_DIR / "grammar" / "policy.lark", _PACKAGE_DIR.parent / "grammar" / "policy.lark")

CLAUSE_KEYWORDS = ("requires", "when", "otherwise", "prefer", "only", "avoid", "use", "deny", "strategy", "fallback")


def grammar_path() -> Path:
    for path in _GRAMMAR_PATHS:
        if path.is_file():
            return path
    raise FileNotFoundError("policy.lark is missing from the policyrouter installation")


@functools.lru_cache(maxsize=1)
def _parser() -> Lark:
    # the analysed grammar is kept in the user's cache (8x faster starts), never where Lark keeps it by
    # default: a pickle of a predictable name in the shared temporary directory, which anyone can plant
    cache = FileCache.for_user()
    name = f"grammar-lark{lark.__version__}-py{sys.version_info[0]}{sys.version_info[1]}.pickle"
    kept = cache.private_file(name) if cache is not None else None
    parser = Lark(
        grammar_path().read_text(encoding="utf-8"),
        parser="lalr",
        propagate_positions=True,
        maybe_placeholders=True,
        lexer_callbacks={"COMMENT": _keep_comment, **dict.fromkeys(_KEYWORDS, _whole_word)},
        cache=str(kept) if kept is not None else False,
    )
    if kept is not None:
        with contextlib.suppress(OSError):
            os.chmod(kept, 0o600)  # Lark writes it as the umask says
    return parser


# Comments are ignored by the grammar but kept for the formatter. The lexer hands each one to
# `_keep_comment` as it passes it, which costs nothing, where lexing the file again for them cost
# as much as parsing it. The parser is shared, so the list they go to is the current thread's.
_lexed = threading.local()


def _keep_comment(token: Token) -> Token:
    comments: list[tuple[int, str]] | None = getattr(_lexed, "comments", None)
    if comments is not None:
        comments.append((token.line or 0, str(token)))
    return token


# Lark's names for the grammar's keywords. Where the grammar takes no name, its lexer matches a keyword
# at the start of a longer word (`routesonnet`, `preferwork`) and reads the rest as the next word.
_KEYWORDS = (
    *("LET", "ROUTE", "REQUIRES", "STRATEGY", "FALLBACK", "WHEN", "ELSE", "OTHERWISE"),
    *("PREFER", "ONLY", "AVOID", "USE", "DENY", "OR", "AND", "IN", "NOT", "TRUE", "FALSE"),
)
_NAME_CHAR = re.compile(r"[A-Za-z0-9_.\-]")
_WORD = re.compile(r"[A-Za-z0-9_.\-]*")


def _whole_word(token: Token) -> Token:
    """A keyword must end where its word ends: `routesonnet` is no `route` before `sonnet`."""
    text: str | None = getattr(_lexed, "text", None)
    end = token.end_pos or 0
    if text is not None and end < len(text) and _NAME_CHAR.match(text, end):
        word = str(token) + _WORD.match(text, end).group()  # type: ignore[union-attr]
        rest = word[len(token) :]
        line, column = token.line or 1, token.column or 1
        raise _SyntaxProblem(
            f"unexpected `{word}`: a keyword is a word of its own",
            Span(_lexed.source, line, column, line, column + len(word)),
            help=f"did you mean `{token} {rest}`, or `{token}` alone?",
        )
    return token


class _SyntaxProblem(Exception):
    """A problem found while building the AST (a bad quantity, an `else` that cannot repeat a verb)."""

    def __init__(self, message: str, span: Span, help: str | None = None, code: str = "syntax") -> None:
        self.diagnostic = Diagnostic(code, message, span, help=help)


@without_collector
def parse_policy(text: str, path: str = "<policy>") -> ast.PolicyFile:
    """Parse one policy file. Raises ConfigError with a `syntax` diagnostic on bad input."""
    source = Source(path, text)
    try:
        statements, comments = _parse(text, source)
    except UnexpectedInput as e:
        raise ConfigError([_syntax_diagnostic(e, source)]) from None
    except _SyntaxProblem as e:
        raise ConfigError([e.diagnostic]) from None
    return ast.PolicyFile(tuple(statements), source, tuple(comments))


def _parse(text: str, source: Source) -> tuple[list[ast.Statement], list[tuple[int, str]]]:
    """The statements, and the comments kept aside with their lines (the formatter puts them back)."""
    parser = _parser()
    comments: list[tuple[int, str]] = []
    _lexed.comments = comments
    _lexed.source = source
    try:
        if len(text) > _PIECE_CHARS:
            try:
                return _parse_in_pieces(parser, text, source), comments
            except (UnexpectedInput, _SyntaxProblem):
                comments.clear()  # parse the whole file, which reports the problem it finds first (maybe elsewhere)
        tree = _lexed_parse(parser, text)
        return _ToAst(source).build(tree), comments
    finally:
        _lexed.comments = _lexed.source = _lexed.text = None


def _lexed_parse(parser: Lark, text: str) -> Any:
    _lexed.text = text  # what the keywords' callback reads the next character from
    return parser.parse(text)


# A long file is parsed a piece at a time, each piece turned into AST nodes right after it is parsed.
# The parse tree of a whole file of 10,000 routes is about 100 MB of lark objects, walked after it is
# built, when little of it is still in the CPU's caches: a piece's tree still is. Pieces of this size
# (about 250 routes) cost nothing extra to parse, and the peak memory of parsing those 10,000 routes
# drops from 90 MB to 26 MB, little more than their AST.
_PIECE_CHARS = 16_000
_STATEMENT_START = re.compile(r"^(?=(?:route|let)\b)", re.MULTILINE)


def _parse_in_pieces(parser: Lark, text: str, source: Source) -> list[ast.Statement]:
    """The statements of the file, parsed piece by piece; raises as soon as a piece does not parse.

    A piece ends where a line starts with `route` or `let`. When every piece parses on its own as
    statements, the whole file parses to those statements in turn: after a complete statement the
    grammar takes no name, so the lexer reads such a line's first word as that keyword in the whole
    file too. Where a line's `route` is a name instead (`prefer` at the end of the line before), the
    piece before it does not parse, and the caller parses the whole file. Each piece is parsed after
    as many newlines as precede it, so its positions are the file's.
    """
    build = _ToAst(source).build
    statements: list[ast.Statement] = []
    line = 1  # where the next piece starts
    for piece in _pieces(text):
        statements += build(_lexed_parse(parser, "\n" * (line - 1) + piece))
        line += piece.count("\n")
    return statements


def _pieces(text: str) -> Iterator[str]:
    """The text cut at line starts of `route` or `let`, in pieces of at least `_PIECE_CHARS`."""
    begin = 0
    for match in _STATEMENT_START.finditer(text):
        if match.start() - begin >= _PIECE_CHARS:
            yield text[begin : match.start()]
            begin = match.start()
    yield text[begin:]


# -- tree to AST --------------------------------------------------------------------------------


# The parse tree of a condition nested `ast.MAX_NESTING` deep is a few levels deeper (the statement and
# clause around it). Building the AST stops well past that, before Python's recursion limit; the
# compiler reports the exact limit for what lies between.
_MAX_TREE_DEPTH = 2 * ast.MAX_NESTING


_EXPRESSION_RULES = frozenset({"or_expr", "and_expr", "negation", "compare", "member"})


class _TooDeep(Exception):
    """Raised where the tree passes `_MAX_TREE_DEPTH`; on its way up it learns the outermost expression,
    which the error points at."""

    def __init__(self, meta: Meta) -> None:
        self.outermost = meta


def _token_span(source: Source, token: Token) -> Span:
    return Span(source, token.line or 1, token.column or 1, token.end_line or 1, token.end_column or 1)


class _ToAst:
    """Builds the AST bottom-up: each rule's method gets the rule's positions and its built children.

    A plain walk rather than a lark `Transformer`: with `v_args(meta=True)` the Transformer makes a new
    wrapper (and copies its metadata with `functools.update_wrapper`) for every node it visits, which
    cost more than building the nodes themselves.
    """

    def __init__(self, source: Source) -> None:
        self.source = source

    def build(self, tree: Tree[Token], depth: int = 0) -> Any:
        if depth > _MAX_TREE_DEPTH:
            raise _TooDeep(tree.meta)
        try:
            children = [self.build(c, depth + 1) if isinstance(c, Tree) else c for c in tree.children]
        except _TooDeep as deep:
            if tree.data in _EXPRESSION_RULES:
                deep.outermost = tree.meta
                raise
            message = f"this condition nests more than {ast.MAX_NESTING} deep"
            raise _SyntaxProblem(message, self._span(deep.outermost), ast.NESTING_HELP, "nested-too-deep") from None
        builder = getattr(self, tree.data, None)
        if builder is None:
            raise AssertionError(f"grammar rule {tree.data} has no AST builder")
        return builder(tree.meta, children)

    def _span(self, meta: Meta) -> Span:
        return Span(self.source, meta.line, meta.column, meta.end_line, meta.end_column)

    def _ident(self, token: Token) -> ast.Ident:
        return ast.Ident(str(token), _token_span(self.source, token))

    # statements
    def start(self, meta: Meta, children: list[Any]) -> list[ast.Statement]:
        return children

    def let_def(self, meta: Meta, children: list[Any]) -> ast.Let:
        name, value = children
        return ast.Let(self._ident(name), value, self._span(meta))

    def route(self, meta: Meta, children: list[Any]) -> ast.Route:
        target, *rest = children
        if len(rest) == 1 and isinstance(rest[0], tuple):
            return ast.Route(target, rest[0], True, self._span(meta))
        return ast.Route(target, _clauses(rest), False, self._span(meta))

    def block(self, meta: Meta, children: list[Any]) -> tuple[ast.Clause, ...]:
        return _clauses(children)

    def target(self, meta: Meta, children: list[Token]) -> ast.Ident:
        return self._ident(children[0])

    # clauses
    def requires(self, meta: Meta, children: list[Any]) -> ast.Requires:
        return ast.Requires(children[0], self._span(meta))

    def strategy(self, meta: Meta, children: list[Token]) -> ast.Strategy:
        return ast.Strategy(self._ident(children[0]), self._span(meta))

    def fallback(self, meta: Meta, children: list[Any]) -> ast.Fallback:
        return ast.Fallback(children[0], self._span(meta))

    def when(self, meta: Meta, children: list[Any]) -> ast.Clause:
        condition, action, otherwise = children
        if isinstance(otherwise, tuple):  # `else P, …` repeats the `when` branch's verb
            otherwise = self._repeat_verb(action, otherwise)
        return ast.When(condition, action, otherwise, self._span(meta))

    def _repeat_verb(self, action: ast.Action, names: tuple[ast.Ident, ...]) -> ast.Action:
        span = Span(
            self.source, names[0].span.line, names[0].span.column, names[-1].span.end_line, names[-1].span.end_column
        )
        if isinstance(action, (ast.Prefer, ast.Only, ast.Avoid)):
            return type(action)(names, span)
        if isinstance(action, ast.Use) and len(names) == 1:
            return ast.Use(names[0], span)
        verb = "use" if isinstance(action, ast.Use) else "deny"
        raise _SyntaxProblem(
            f"`else` with no verb repeats `{verb}`, which takes "
            + ("one model" if verb == "use" else "a message, not names"),
            span,
            help="write the verb after `else`, e.g. `else prefer personal`",
        )

    def else_(self, meta: Meta, children: list[Any]) -> ast.Action:
        return children[0]

    def else_names(self, meta: Meta, children: list[Any]) -> tuple[ast.Ident, ...]:
        return children[0]

    def otherwise(self, meta: Meta, children: list[Any]) -> ast.Otherwise:
        return ast.Otherwise(children[0], self._span(meta))

    # actions: a bare action is a clause of its own; inside `when` it is wrapped by the caller
    def prefer(self, meta: Meta, children: list[Any]) -> ast.Prefer:
        return ast.Prefer(children[0], self._span(meta))

    def only(self, meta: Meta, children: list[Any]) -> ast.Only:
        return ast.Only(children[0], self._span(meta))

    def avoid(self, meta: Meta, children: list[Any]) -> ast.Avoid:
        return ast.Avoid(children[0], self._span(meta))

    def use(self, meta: Meta, children: list[Token]) -> ast.Use:
        return ast.Use(self._ident(children[0]), self._span(meta))

    def deny(self, meta: Meta, children: list[Token]) -> ast.Deny:
        return ast.Deny(_unquote(children[0]), self._span(meta))

    def name_list(self, meta: Meta, children: list[Token]) -> tuple[ast.Ident, ...]:
        return tuple(self._ident(t) for t in children)

    # expressions
    def or_expr(self, meta: Meta, children: list[Any]) -> ast.Or:
        return ast.Or(tuple(children), self._span(meta))

    def and_expr(self, meta: Meta, children: list[Any]) -> ast.And:
        return ast.And(tuple(children), self._span(meta))

    def negation(self, meta: Meta, children: list[Any]) -> ast.Not:
        return ast.Not(children[1], self._span(meta))

    def compare(self, meta: Meta, children: list[Any]) -> ast.Compare:
        left, op, right = children
        return ast.Compare(str(op), left, right, self._span(meta))

    def member(self, meta: Meta, children: list[Any]) -> ast.In:
        return ast.In(children[0], tuple(children[1:]), self._span(meta))

    def call(self, meta: Meta, children: list[Any]) -> ast.Call:
        func, arg = children
        if arg is None:
            node_arg: ast.Ident | ast.Literal | None = None
        elif arg.type == "STRING":
            node_arg = ast.Literal("string", _unquote(arg), _token_span(self.source, arg))
        else:
            node_arg = self._ident(arg)
        return ast.Call(self._ident(func), node_arg, self._span(meta))

    def name(self, meta: Meta, children: list[Token]) -> ast.Name:
        return ast.Name(str(children[0]), _token_span(self.source, children[0]))

    def quantity(self, meta: Meta, children: list[Token]) -> ast.Literal:
        token = children[0]
        span = _token_span(self.source, token)
        try:
            kind, value = parse_quantity(str(token))
        except QuantityError as e:
            raise _SyntaxProblem(str(e), span) from None
        return ast.Literal(kind, value, span)

    def string(self, meta: Meta, children: list[Token]) -> ast.Literal:
        return ast.Literal("string", _unquote(children[0]), _token_span(self.source, children[0]))

    def true(self, meta: Meta, children: list[Token]) -> ast.Literal:
        return ast.Literal("bool", True, _token_span(self.source, children[0]))

    def false(self, meta: Meta, children: list[Token]) -> ast.Literal:
        return ast.Literal("bool", False, _token_span(self.source, children[0]))


def _clauses(children: list[Any]) -> tuple[ast.Clause, ...]:
    """A bare action is a clause of its own: wrap it, so every clause is one of ast.Clause."""
    actions = (ast.Prefer, ast.Only, ast.Avoid, ast.Use, ast.Deny)
    return tuple(ast.Do(c, c.span) if isinstance(c, actions) else c for c in children)


def _unquote(token: Token) -> str:
    return str(token)[1:-1].replace('\\"', '"').replace("\\\\", "\\")


# -- syntax errors ------------------------------------------------------------------------------

_TERMINAL_WORDS = {
    "NAME": "a name",
    "GLOB": "a glob such as `claude-*`",
    "QUANTITY": "a number such as `20%`, `$5`, `8k` or `30s`",
    "STRING": 'a string such as `"batch"`',
    "COMP_OP": "a comparison (`<`, `<=`, `>`, `>=`, `==`, `!=`)",
    "$END": "the end of the file",
}


def _keyword_words(expected: set[str]) -> list[str]:
    """The literal words and symbols among the expected terminals, in backticks."""
    parser = _parser()
    words = []
    for name in sorted(expected):
        if name in _TERMINAL_WORDS:
            continue
        try:
            words.append(f"`{parser.get_terminal(name).pattern.value}`")
        except KeyError:
            continue
    return words


def _describe_expected(expected: set[str]) -> str:
    words = [_TERMINAL_WORDS[n] for n in sorted(expected) if n in _TERMINAL_WORDS] + _keyword_words(expected)
    if sum(w.strip("`") in CLAUSE_KEYWORDS for w in words) >= 5:
        words = [w for w in words if w.strip("`") not in CLAUSE_KEYWORDS]
        words.insert(0, "a clause (`when`, `prefer`, `fallback`, …)")
    if len(words) > 1:
        return ", ".join(words[:-1]) + " or " + words[-1]
    return words[0] if words else "something else"


def _list_help(source: Source, token: Token, found: str) -> str | None:
    """A name right after a name where a list could go on: a comma left out (`prefer work personal`),
    or one put before `else`, which then reads as a name (`prefer work, else personal`)."""
    before = source.line_text(token.line or 1)[: (token.column or 1) - 1].rstrip()
    words = before.replace(",", " , ").split()
    if len(words) >= 2 and words[-2] == "," and words[-1] in ("else", "otherwise"):
        return f"drop the `,` before `{words[-1]}`"
    if words and ast.NAME.fullmatch(words[-1]):  # a name, not `3`: `when hour > 3 work` lacks an action
        return f"names in a list are separated by commas: `{words[-1]}, {found}`"
    return None


_COMMENT_OR_STRING = re.compile(r'"(?:\\.|[^"\\\n])*"?|#.*')


def _end_of_code(text: str) -> tuple[int, int]:
    """The line and column just after the last character that is not a blank or in a comment: where a
    policy that ends too soon stops (a comment after it is no part of it)."""
    lines = text.split("\n")
    for number in range(len(lines), 0, -1):
        code = _COMMENT_OR_STRING.sub(lambda m: "" if m.group().startswith("#") else m.group(), lines[number - 1])
        if code.strip():
            return number, len(code.rstrip()) + 1
    return 1, 1


_LAST_WORD = re.compile(r"([A-Za-z_][A-Za-z0-9_.\-]*)\s*$")


def _keyword_read_as_name(source: Source, token: Token) -> str | None:
    """Where the parser has just read a value (it takes a comparison next) and that value was a
    keyword (`not prefer work`, `a and or b`): the keyword stood where a value was missing."""
    before = source.line_text(token.line or 1)[: (token.column or 1) - 1]
    word = _LAST_WORD.search(before)
    if word is None or word.group(1).upper() not in _KEYWORDS:
        return None
    return f"`{word.group(1)}` is read as a name here: a condition is missing before it"


def _expected(e: UnexpectedToken | UnexpectedEOF) -> set[str]:
    """What the parser would have taken where it stopped. Lark's `expected` comes from the LALR state,
    which merges the lookaheads of alike states: after `prefer work` in a bare action it lists `else`,
    which only a `when` takes. Feeding each terminal to a copy of the parser says exactly."""
    parser = getattr(e, "interactive_parser", None)
    if parser is None:
        return set(e.expected)
    return set(parser.accepts()) - {"$END"}  # that a file may end after a statement goes without saying


def _syntax_diagnostic(e: UnexpectedInput, source: Source) -> Diagnostic:
    line = getattr(e, "line", None) or 1
    column = getattr(e, "column", None) or 1
    if (isinstance(e, UnexpectedToken) and e.token.type == "$END") or isinstance(e, UnexpectedEOF):
        line, column = _end_of_code(source.text)
        span = Span(source, line, column, line, column + 1)
        expected_set = _expected(e)
        if {"PREFER", "DENY"} <= expected_set and not expected_set & {"ROUTE", "RBRACE", "$END", "WHEN"}:
            expected = "an action (`prefer`, `only`, `avoid`, `use`, `deny`)"
            expected += " or provider names" if "NAME" in expected_set else " after the condition"
        else:
            expected = _describe_expected(expected_set)
        return Diagnostic("syntax", f"the policy ends too soon: expected {expected}", span)
    if isinstance(e, UnexpectedToken):
        token, found = e.token, str(e.token)
        span = _token_span(source, token)
        expected_set = _expected(e)
        keywords = [w.strip("`") for w in _keyword_words(expected_set)]
        if {"PREFER", "DENY"} <= expected_set and expected_set & {"COMP_OP", "AND", "OR"}:
            actions = "`prefer`, `only`, `avoid`, `use`, `deny`"
            message = f"unexpected `{found}`: expected an action ({actions}) after the condition"
        else:
            message = f"unexpected `{found}`: expected {_describe_expected(expected_set)}"
        help = _keyword_read_as_name(source, token) if "COMP_OP" in expected_set else None
        if token.type == "ELSE" and "ELSE" not in expected_set:
            help = "`else` follows the action of a `when`: `when CONDITION prefer work else personal`"
        if help is None and token.type == "NAME":
            help = did_you_mean(found, keywords)
        if help is None and token.type == "NAME" and "COMMA" in expected_set:
            help = _list_help(source, token, found)
        return Diagnostic("syntax", message, span, help=help)
    if isinstance(e, UnexpectedCharacters):
        span = Span(source, line, column, line, column + 1)
        char = source.line_text(line)[column - 1 : column]
        help = "strings use double quotes" if char == "'" else None
        shown = char if char.isprintable() else char.encode("unicode_escape").decode()  # a NUL shows as `\x00`
        return Diagnostic("syntax", f"unexpected character `{shown}`", span, help=help)
    span = Span(source, line, column, line, column + 1)
    return Diagnostic("syntax", "invalid syntax", span)
