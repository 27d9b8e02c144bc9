"""Editor support: `policyrouter schema` (registry.yaml's JSON Schema) and the TextMate grammar of `.policy`.

The grammar is checked three ways: its JSON loads and every regex compiles with Python's `re` (the
grammar sticks to the part of Oniguruma that both share); every keyword of grammar/policy.lark, every
built-in fact and every strategy has a pattern; and a small TextMate-style scanner (first match wins,
earliest position first) gives the expected scope to each token of sample lines.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

from policyrouter import cli
from policyrouter.compile import BUILTIN_FACTS
from policyrouter.errors import ConfigError
from policyrouter.program import STRATEGIES
from policyrouter.registry_schema import registry_from_text, registry_json_schema

REPO = Path(__file__).parent.parent
EDITORS = REPO / "editors"
GRAMMAR_PATH = EDITORS / "vscode" / "syntaxes" / "policyrouter.tmLanguage.json"
REGISTRIES = sorted([*REPO.glob("policies/*/registry.yaml"), REPO / "tests" / "sample_project" / "registry.yaml"])


# -- policyrouter schema ------------------------------------------------------------------------


def schema_from_cli(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert cli.main(["schema"]) == 0
    out = capsys.readouterr().out
    return json.loads(out)


def test_schema_prints_the_registry_schema(capsys: pytest.CaptureFixture[str]) -> None:
    schema = schema_from_cli(capsys)
    assert schema == registry_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert set(schema["properties"]) >= {"settings", "providers", "models", "budgets"}


@pytest.mark.parametrize("path", REGISTRIES, ids=lambda p: str(p.relative_to(REPO)))
def test_the_shipped_registries_validate(path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    schema = schema_from_cli(capsys)
    data = YAML(typ="safe").load(path.read_text())
    errors = [e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(data)]
    assert errors == []


def test_the_schema_catches_a_typo_and_a_wrong_type(capsys: pytest.CaptureFixture[str]) -> None:
    schema = schema_from_cli(capsys)
    data = YAML(typ="safe").load((REPO / "policies" / "subscriptions" / "registry.yaml").read_text())
    data["provders"] = data.pop("providers")
    data["budgets"]["run"]["usd"] = "five"
    errors = sorted(e.message for e in jsonschema.Draft202012Validator(schema).iter_errors(data))
    assert any("provders" in e for e in errors), errors
    assert any("'five'" in e for e in errors), errors


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


# (name, where, value, whether the registry is valid): the schema and the validator must agree.
# fmt: off
AGREEMENT = [
    ("a window in milliseconds", "providers.work.quota.window", "500ms", True),
    ("a window with no unit", "providers.work.quota.window", "30", False),
    ("an empty budgets section", "budgets", None, True),
    ("an empty providers section", "providers", None, False),  # the models name providers: the validator's own
    ("a count with no leading digit", "providers.work.rpm", ".5k", True),
    ("a negative count", "providers.work.tpm", "-5k", False),
    ("a budget named by no window", "budgets.weekly", {"usd": 5}, False),
    ("a provider name with a space", "providers.team a", {"litellm_provider": "openai"}, False),
    ("a base URL without its scheme", "providers.work.base_url", "localhost:11434", False),
    ("a base URL", "providers.work.base_url", "http://127.0.0.1:11434", True),
    ("a base URL with a space", "providers.work.base_url", "http://x y", False),
    ("a base URL with a dollar sign", "providers.work.base_url", "http://$x", True),
    ("a base URL naming a variable", "providers.work.base_url", "http://${PROXY}", False),
    ("a quota of nothing", "providers.work.quota.limit", "0k", False),
    ("a quota of half a thousand", "providers.work.quota.limit", "0.5k", True),
    ("a window of no time", "providers.work.quota.window", "0s", False),
    ("a key's variable in lower case", "providers.work.api_key_env", "openai_api_key", False),
]
# fmt: on


@pytest.mark.parametrize(("where", "value", "valid"), [row[1:] for row in AGREEMENT], ids=[row[0] for row in AGREEMENT])
def test_the_schema_agrees_with_the_validator(
    where: str, value: Any, valid: bool, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # The schema refused `500ms` and `budgets:` left empty, which the validator takes, and took a
    # budget named `weekly`, which it refuses: an editor marked good files and passed bad ones.
    schema = schema_from_cli(capsys)
    data = YAML(typ="safe").load((REPO / "policies" / "subscriptions" / "registry.yaml").read_text())
    _set(data, where, value)
    text = io.StringIO()
    YAML(typ="safe").dump(data, text)
    schema_ok = not list(jsonschema.Draft202012Validator(schema).iter_errors(data))
    try:
        registry_from_text(text.getvalue(), tmp_path / "registry.yaml")
        validator_ok = True
    except ConfigError:
        validator_ok = False
    assert validator_ok == valid
    if where != "providers":  # a schema cannot see that a model names a provider the file lacks
        assert schema_ok == valid


def test_schema_is_a_command_of_its_own() -> None:
    with pytest.raises(SystemExit) as exit:
        cli.main(["schema", "--bogus"])
    assert exit.value.code == 2


# -- the TextMate grammar: structure ------------------------------------------------------------


@pytest.fixture(scope="module")
def grammar() -> dict[str, Any]:
    return json.loads(GRAMMAR_PATH.read_text(encoding="utf-8"))


def regexes(node: Any) -> Iterator[tuple[str, str]]:
    """Every (key, regex) in the grammar: `match`, `begin`, `end`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("match", "begin", "end") and isinstance(value, str):
                yield key, value
            else:
                yield from regexes(value)
    elif isinstance(node, list):
        for item in node:
            yield from regexes(item)


def test_grammar_regexes_compile(grammar: dict[str, Any]) -> None:
    found = list(regexes(grammar))
    assert len(found) > 20
    for key, pattern in found:
        try:
            re.compile(pattern)
        except re.error as e:  # variable-width lookbehind, `\h`, possessive quantifiers, ...
            pytest.fail(f"{key} {pattern!r} does not compile: {e}")


def test_grammar_includes_resolve(grammar: dict[str, Any]) -> None:
    repository = grammar["repository"]
    includes = re.findall(r'"include": "#([\w-]+)"', json.dumps(grammar))
    assert includes
    assert [name for name in includes if name not in repository] == []
    assert grammar["scopeName"] == "source.policyrouter"
    assert "policy" in grammar["fileTypes"]


def lark_keywords() -> set[str]:
    """The words of grammar/policy.lark: quoted literals made of letters (`"route"`, `"not"`, ...)."""
    text = (REPO / "grammar" / "policy.lark").read_text()
    return set(re.findall(r'"([a-z_]+)"', text))


def test_every_keyword_of_the_language_has_a_keyword_scope(grammar: dict[str, Any]) -> None:
    keywords = lark_keywords()
    assert {"route", "let", "when", "else", "otherwise", "not", "in", "true", "false"} <= keywords
    for word in sorted(keywords):
        [(text, scope)] = tokens(grammar, word)
        assert text == word
        assert scope.startswith(("keyword.", "constant.language.")), (word, scope)


def test_every_builtin_fact_and_strategy_has_a_scope(grammar: dict[str, Any]) -> None:
    for name, spec in BUILTIN_FACTS.items():
        if spec.arg is None:
            assert tokens(grammar, name) == [(name, "support.variable.fact.policyrouter")]
        else:
            assert tokens(grammar, f"{name}(x)")[0] == (name, "support.function.fact.policyrouter")
    for strategy in STRATEGIES:
        assert tokens(grammar, f"strategy {strategy}") == [
            ("strategy", "keyword.other.clause.policyrouter"),
            (strategy, "support.constant.strategy.policyrouter"),
        ]


def test_the_vscode_extension_points_at_the_grammar(grammar: dict[str, Any]) -> None:
    package = json.loads((EDITORS / "vscode" / "package.json").read_text())
    [language] = package["contributes"]["languages"]
    [entry] = package["contributes"]["grammars"]
    assert language["extensions"] == [".policy"]
    assert entry["language"] == language["id"]
    assert entry["scopeName"] == grammar["scopeName"]
    assert (EDITORS / "vscode" / entry["path"]).resolve() == GRAMMAR_PATH.resolve()
    config = json.loads((EDITORS / "vscode" / language["configuration"]).read_text())
    assert config["comments"]["lineComment"] == "#"


# -- the TextMate grammar: what it highlights ---------------------------------------------------


def flatten(grammar: dict[str, Any], patterns: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for pattern in patterns:
        if "include" in pattern:
            out += flatten(grammar, [grammar["repository"][pattern["include"].lstrip("#")]])
        elif "patterns" in pattern and "match" not in pattern and "begin" not in pattern:
            out += flatten(grammar, pattern["patterns"])
        else:
            out.append(pattern)
    return out


def tokens(grammar: dict[str, Any], line: str) -> list[tuple[str, str]]:
    """Scope each token of one line, as a TextMate engine would for this grammar: at each position the
    pattern whose match starts first wins (ties to the earlier pattern); `begin`/`end` rules scan their
    own patterns until `end`. Whitespace is dropped; a capture gives its group its own scope."""
    top = flatten(grammar, grammar["patterns"])
    out: list[tuple[str, str]] = []
    pos = 0
    while pos < len(line):
        best: tuple[int, int, dict[str, Any], re.Match[str]] | None = None
        for order, pattern in enumerate(top):
            m = re.compile(pattern.get("match") or pattern["begin"]).search(line, pos)
            if m and (best is None or (m.start(), order) < (best[0], best[1])):
                best = (m.start(), order, pattern, m)
        if best is None:
            break
        _, _, pattern, m = best
        gap = line[pos : m.start()].strip()
        assert not gap, f"no pattern matches {gap!r} in {line!r}"
        if "begin" in pattern:
            pos = _scan_region(pattern, line, m, out)
            continue
        if "captures" in pattern:
            for group, capture in sorted(pattern["captures"].items(), key=lambda kv: int(kv[0])):
                if m.group(int(group)):
                    out.append((m.group(int(group)), capture["name"]))
            if "name" in pattern:  # the rest of the match (a comment's text after `#`)
                rest = line[m.end(1) : m.end()].strip() if m.re.groups else ""
                if rest:
                    out.append((rest, pattern["name"]))
        else:
            out.append((m.group(), pattern["name"]))
        pos = max(m.end(), pos + 1)
    return out


def _scan_region(pattern: dict[str, Any], line: str, begin: re.Match[str], out: list[tuple[str, str]]) -> int:
    """A begin/end rule: the region gets the rule's scope, and each inner match its own."""
    inner = [(re.compile(p["match"]), p["name"]) for p in pattern.get("patterns", [])]
    end = re.compile(pattern["end"])
    found: list[tuple[str, str]] = []
    pos = begin.end()
    while True:
        e = end.search(line, pos)
        assert e is not None, f"unterminated {pattern['name']} in {line!r}"
        hits = [(m, name) for regex, name in inner if (m := regex.search(line, pos)) and m.start() < e.start()]
        if not hits:
            break
        m, name = min(hits, key=lambda hit: hit[0].start())
        found.append((m.group(), name))
        pos = m.end()
    out.append((line[begin.start() : e.end()], pattern["name"]))
    out += found
    return max(e.end(), pos + 1)


SHARE = "constant.numeric.share.policyrouter"
KW = "keyword.control.policyrouter"
ACTION = "keyword.other.action.policyrouter"
NAME = "variable.other.name.policyrouter"
FACT = "support.function.fact.policyrouter"


def scopes(grammar: dict[str, Any], line: str) -> dict[str, str]:
    return dict(tokens(grammar, line))


def test_the_first_policy_line(grammar: dict[str, Any]) -> None:
    line = "route sonnet when quota(work) > 20% prefer work else personal  # the card"
    assert tokens(grammar, line) == [
        ("route", "keyword.control.route.policyrouter"),
        ("sonnet", "entity.name.function.route.policyrouter"),
        ("when", KW),
        ("quota", FACT),
        ("(", "punctuation.section.parens.begin.policyrouter"),
        ("work", NAME),
        (")", "punctuation.section.parens.end.policyrouter"),
        (">", "keyword.operator.comparison.policyrouter"),
        ("20%", SHARE),
        ("prefer", ACTION),
        ("work", NAME),
        ("else", KW),
        ("personal", NAME),
        ("#", "punctuation.definition.comment.policyrouter"),
        ("the card", "comment.line.number-sign.policyrouter"),
    ]


def test_quantities_and_names_with_digits(grammar: dict[str, Any]) -> None:
    line = "when spend(run) > $5.25 and latency(openai) < 800ms or tokens >= 8k and budget(day) <= 2.5% use gpt-4o"
    got = scopes(grammar, line)
    assert got["$5.25"] == "constant.numeric.money.policyrouter"
    assert got["800ms"] == "constant.numeric.duration.policyrouter"
    assert got["8k"] == "constant.numeric.count.policyrouter"
    assert got["2.5%"] == SHARE
    assert got["tokens"] == "support.variable.fact.policyrouter"
    assert got["gpt-4o"] == NAME  # not a number `4o` inside a name
    assert got["and"] == got["or"] == "keyword.operator.logical.policyrouter"
    assert got["use"] == ACTION
    assert scopes(grammar, "when hour in (22, 23) avoid work")["in"] == "keyword.operator.logical.policyrouter"
    assert scopes(grammar, "when tokens > 1.5M only local")["1.5M"] == "constant.numeric.count.policyrouter"
    assert scopes(grammar, 'when latency(a) > 5m deny "x"')["5m"] == "constant.numeric.duration.policyrouter"
    assert scopes(grammar, 'when tokens > 5q deny "x"')["5q"] == "invalid.illegal.quantity.policyrouter"


def test_strings_comments_and_escapes(grammar: dict[str, Any]) -> None:
    got = tokens(grammar, r'route opus deny "paused: \"month\" # spent"  # why')
    assert ('"paused: \\"month\\" # spent"', "string.quoted.double.policyrouter") in got
    assert ('\\"', "constant.character.escape.policyrouter") in got
    assert ("why", "comment.line.number-sign.policyrouter") in got
    assert ("spent", NAME) not in got  # the `#` inside the string starts no comment
    got = scopes(grammar, 'when not tag("interactive") and true use haiku')
    assert got["not"] == "keyword.operator.logical.policyrouter"
    assert got["tag"] == FACT
    assert got["true"] == "constant.language.boolean.policyrouter"


def test_globs_lets_blocks_and_custom_facts(grammar: dict[str, Any]) -> None:
    assert tokens(grammar, "route claude-* strategy round_robin")[:2] == [
        ("route", "keyword.control.route.policyrouter"),
        ("claude-*", "entity.name.function.route.policyrouter"),
    ]
    assert tokens(grammar, "route * requires streaming")[1] == ("*", "entity.name.function.route.policyrouter")
    assert tokens(grammar, "let tight = budget(month) < 15%")[:3] == [
        ("let", "keyword.control.let.policyrouter"),
        ("tight", "variable.other.definition.policyrouter"),
        ("=", "keyword.operator.assignment.policyrouter"),
    ]
    got = scopes(grammar, "route sonnet { requires tools  when my_fact(x) > 3 otherwise avoid work fallback gpt-4o }")
    assert got["{"] == "punctuation.section.block.begin.policyrouter"
    assert got["}"] == "punctuation.section.block.end.policyrouter"
    assert got["requires"] == got["fallback"] == "keyword.other.clause.policyrouter"
    assert got["my_fact"] == "entity.name.function.fact.policyrouter"
    assert got["otherwise"] == KW
    assert got["3"] == "constant.numeric.count.policyrouter"
    # a keyword inside a name is not a keyword
    assert scopes(grammar, "prefer only-work, use_me")["only-work"] == NAME
    assert scopes(grammar, "prefer only-work, use_me")["use_me"] == NAME


def test_the_shipped_policies_leave_nothing_unmatched(grammar: dict[str, Any]) -> None:
    """Every non-blank piece of every shipped policy gets some scope (the scanner asserts on gaps)."""
    lines = [line for path in sorted(REPO.glob("policies/*/*.policy")) for line in path.read_text().splitlines()]
    assert lines
    for line in lines:
        for _, scope in tokens(grammar, line):
            assert scope.endswith(".policyrouter")
