"""`policyrouter fmt` on `registry.yaml`: one layout, comments and key order kept.

The laws, over random registries in random layouts with random comments (hypothesis): formatting
twice is formatting once, the data read back is the data (key order included), and every comment is
still there. Plus golden layouts and the CLI.
"""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import YAMLError
from ruamel.yaml.scalarstring import LiteralScalarString

from policyrouter.cli import main
from policyrouter.errors import ConfigError
from policyrouter.registry_fmt import format_registry

ROOT = Path(__file__).resolve().parent.parent


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return [(k, _plain(v)) for k, v in value.items()]
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _comments(text: str) -> list[str]:
    """Every comment as ruamel's scanner finds it (a `#` inside a scalar is no comment)."""
    found = []
    for token in YAML(typ="rt").scan(text):
        for part in getattr(token, "_comment", None) or ():
            for comment in part if isinstance(part, list) else [part]:
                if comment is not None:
                    found += [line.strip() for line in comment.value.split("\n") if line.strip()]
    return sorted(found)


# -- random registries in random layouts ------------------------------------------------------------

_names = st.sampled_from(["work", "personal", "limit", "unit", "window", "rpm", "sonnet", "price", "a-b", "x_1"])
_scalars = st.one_of(
    st.integers(-5, 10**6),
    st.sampled_from(["5M", "tokens", "5h", "a # b", "yes", "3.00", "http://127.0.0.1:8/v1", "", "x: y", "ünï"]),
    st.booleans(),
    st.none(),
    st.sampled_from(["line one\n  # not a comment\n\nlast\n", "a\nb\n"]).map(LiteralScalarString),
)


def _collections(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    def mapping(items: list[tuple[str, Any]], flow: bool) -> CommentedMap:
        out = CommentedMap(items)
        if flow and not any(isinstance(v, (dict, list, LiteralScalarString)) for v in out.values()):
            out.fa.set_flow_style()
        return out

    def sequence(items: list[Any], flow: bool) -> CommentedSeq:
        # ruamel drops the comments after a null item: not a layout a registry has
        out = CommentedSeq(0 if item is None else item for item in items)
        if flow and not any(isinstance(v, (dict, list, LiteralScalarString)) for v in out):
            out.fa.set_flow_style()
        return out

    return st.one_of(
        st.builds(
            mapping,
            st.lists(st.tuples(_names, children), min_size=1, max_size=4, unique_by=lambda kv: kv[0]),
            st.booleans(),
        ),
        st.builds(sequence, st.lists(children, min_size=1, max_size=3), st.booleans()),
    )


_data = st.builds(
    lambda items: CommentedMap(items),
    st.lists(
        st.tuples(_names, st.recursive(_scalars, _collections, max_leaves=12)),
        min_size=1,
        max_size=5,
        unique_by=lambda kv: kv[0],
    ),
)


@st.composite
def registries(draw: st.DrawFn) -> tuple[str, Any]:
    """A YAML text of random data, in a random layout, with comments in random places."""
    data = draw(_data)
    yaml = YAML(typ="rt")
    mapping = draw(st.integers(2, 4))
    offset = draw(st.integers(0, 2))
    yaml.indent(mapping=mapping, sequence=offset + 2, offset=offset)
    yaml.width = 4096
    out = io.StringIO()
    yaml.dump(data, out)
    text = out.getvalue()
    inside = _inside_scalars(text)
    lines = text.split("\n")
    commented: list[str] = []
    for i, line in enumerate(lines):
        before = i not in inside and line.strip() and draw(st.integers(0, 3)) == 0
        if before:
            indent = draw(st.sampled_from([len(line) - len(line.lstrip()), 0, draw(st.integers(0, 10))]))
            commented.append(" " * indent + f"# above {i}")
            if draw(st.booleans()):
                commented.append("")
        beside = i not in inside and line.strip() and not line.rstrip().endswith(("|", "|-", "|+"))
        if beside and draw(st.integers(0, 2)) == 0:
            line += " " * draw(st.integers(1, 6)) + f"# beside {i}"
        commented.append(line if i in inside else line + " " * draw(st.integers(0, 1)))
    return "\n".join(commented), data


def _ruamel_alone_breaks(text: str) -> bool:
    """Whether ruamel's round trip alone (no layout) loses one of the generated comments, moves one
    onto or off a line of its own, changes a value, or writes YAML it cannot read."""
    try:
        again = _round_trip(text)
        if _plain(YAML(typ="rt").load(again)) != _plain(YAML(typ="rt").load(text)):
            return True
    except YAMLError:
        return True

    def placed(yaml_text: str) -> dict[str, bool]:  # each generated comment: on a line of its own?
        return {
            m.group(): line.strip().startswith(m.group())
            for line in yaml_text.split("\n")
            for m in re.finditer(r"# (above|beside) \d+", line)
        }

    return placed(again) != placed(text)


def _round_trip(text: str) -> str:
    yaml = YAML(typ="rt")
    out = io.StringIO()
    yaml.dump(yaml.load(text), out)
    return out.getvalue()


def _inside_scalars(text: str) -> set[int]:
    inside: set[int] = set()
    for token in YAML(typ="rt").scan(text):
        start, end = token.start_mark, token.end_mark
        if type(token).__name__ == "ScalarToken" and end.line > start.line:
            inside.update(range(start.line + 1, end.line + 1))
    return inside


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(registries())
def test_fmt_keeps_data_and_comments_and_is_idempotent(case: tuple[str, Any]) -> None:
    text, data = case
    try:
        once = format_registry(text)
    except ConfigError as refused:
        # Only where ruamel's own round trip loses or moves a comment (one above a flow item that has
        # one beside it, say), changes a value or writes what it cannot read: never for the layout pass.
        assert [d.code for d in refused.diagnostics] == ["fmt-unsafe"]
        assert _ruamel_alone_breaks(text)
        return
    assert format_registry(once) == once
    assert _plain(YAML(typ="rt").load(once)) == _plain(data)
    assert _comments(once) == _comments(text)


# -- golden layouts ---------------------------------------------------------------------------------

GOLDEN = [
    (
        "mappings two spaces a level, sequences two spaces in",
        "providers:\n    work:\n        rpm: 50\n"
        "models:\n  m:\n    deployments:\n    - provider: work\n      model_id: x\n",
        "providers:\n  work:\n    rpm: 50\n"
        "models:\n  m:\n    deployments:\n      - provider: work\n        model_id: x\n",
    ),
    (
        "a comment on its own line goes with the entry below it",
        "providers:\n    # our plans\n    work:\n        rpm: 50\n",
        "providers:\n  # our plans\n  work:\n    rpm: 50\n",
    ),
    (
        "a comment indented as the block above stays in that block",
        "providers:\n    work:\n        rpm: 50\n        # tpm: 400k\n    personal:\n        rpm: 5\n",
        "providers:\n  work:\n    rpm: 50\n    # tpm: 400k\n  personal:\n    rpm: 5\n",
    ),
    (
        "a comment beside a value gets two spaces",
        "settings:\n  timezone: UTC      # always\n  estimated_output_tokens: 1000 # a guess\n",
        "settings:\n  timezone: UTC  # always\n  estimated_output_tokens: 1000  # a guess\n",
    ),
    (
        "flow style, quotes and numbers are kept as written; spaces in flow are normalised",
        "providers:\n  work: {litellm_provider: 'anthropic',   quota: {limit: 5M, unit: tokens, window: 5h}}\n"
        'models:\n  m: {capabilities: [tools,vision], price: {input_per_mtok: 3.00, output_per_mtok: "15"}}\n',
        "providers:\n  work: {litellm_provider: 'anthropic', quota: {limit: 5M, unit: tokens, window: 5h}}\n"
        'models:\n  m: {capabilities: [tools, vision], price: {input_per_mtok: 3.00, output_per_mtok: "15"}}\n',
    ),
    (
        "one blank line at most, none at either end, no trailing spaces",
        "\n\nsettings:   \n  timezone: UTC\n\n\n\nproviders: {}\n\n\n",
        "settings:\n  timezone: UTC\n\nproviders: {}\n",
    ),
    (
        "a literal block is text: its `#` lines, blanks and spaces stay",
        "models:\n    m:\n        note: |\n"
        "            a  \n            # not a comment\n\n\n            b\n        rpm: 1\n",
        "models:\n  m:\n    note: |\n      a  \n      # not a comment\n\n\n      b\n    rpm: 1\n",
    ),
    (
        "a document start is kept",
        "---\nsettings:\n    timezone: UTC\n",
        "---\nsettings:\n  timezone: UTC\n",
    ),
    (
        "anchors and aliases are kept",
        "providers:\n    work: &plan\n        rpm: 50\n    personal: *plan\n",
        "providers:\n  work: &plan\n    rpm: 50\n  personal: *plan\n",
    ),
    ("a file of comments only is left as it is", "# nothing yet\n", "# nothing yet\n"),
    (
        "a null is written as it was",
        "providers:\n    work: {base_url: null, rpm: ~}\n    personal:\n        base_url:\n",
        "providers:\n  work: {base_url: null, rpm: ~}\n  personal:\n    base_url:\n",
    ),
    (
        "keys merged in with `<<:` stay merged",
        "x-a: &a {litellm_provider: anthropic}\nproviders:\n    p:\n        <<: *a\n        rpm: 1\n",
        "x-a: &a {litellm_provider: anthropic}\nproviders:\n  p:\n    <<: *a\n    rpm: 1\n",
    ),
    ("a comment after a literal block's `|`", "a:\n    k: |  # c\n      text\n", "a:\n  k: |  # c\n    text\n"),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in GOLDEN], ids=[n for n, _, _ in GOLDEN])
def test_canonical_layout(text: str, expected: str) -> None:
    assert format_registry(text) == expected


def test_the_shipped_registries_are_formatted() -> None:
    paths = sorted(ROOT.joinpath("policies").rglob("registry.yaml"))
    assert len(paths) >= 4
    for path in paths:
        text = path.read_text()
        assert format_registry(text) == text, path


def test_a_comment_ruamel_would_drop_leaves_the_file_as_it_is() -> None:
    # ruamel keeps no comment inside a flow collection written over several lines.
    text = "models:\n  m:\n    capabilities: [tools,  # the agent's\n      vision]\n"
    with pytest.raises(ConfigError) as caught:
        format_registry(text, "registry.yaml")
    (problem,) = caught.value.diagnostics
    assert problem.code == "fmt-unsafe"
    assert "the comment `# the agent's` would be lost" in problem.message
    assert "move such a comment above the line" in (problem.help or "")


# (registry, what the refusal says): what ruamel's round trip would write otherwise is refused, the
# file left as it is, with the reason
REFUSED = [
    ("a:\n    rpm: +50\n", "`+50` would be written `50` (line 2)"),
    ("x: &u http://h\na:\n    b: *u  # shared\n    c: 1\n", "the comment `# shared` would move off its line"),
    ("a: [b,  # inside\n   c]\nd:\n    e: 1\n", "the comment `# inside` would be lost"),
]


@pytest.mark.parametrize(("text", "reason"), REFUSED, ids=["a spelling", "a comment moved", "a comment lost"])
def test_what_would_change_is_refused_with_the_reason(text: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        format_registry(text, "registry.yaml")
    (problem,) = caught.value.diagnostics
    assert problem.code == "fmt-unsafe" and reason in problem.message


def test_a_date_that_is_no_date_is_placed_not_raised() -> None:
    with pytest.raises(ConfigError) as caught:
        format_registry("x-when: 2025-02-30\nproviders: {}\n", "registry.yaml")
    (problem,) = caught.value.diagnostics
    assert problem.code == "registry-syntax" and "`2025-02-30` is not a date or time" in problem.message
    assert problem.span is not None and (problem.span.line, problem.span.column) == (1, 9)


def test_yaml_that_does_not_read_is_reported_where_it_breaks() -> None:
    with pytest.raises(ConfigError) as caught:
        format_registry("providers:\n  work: {rpm: 5\n  personal: {}\n", "registry.yaml")
    (problem,) = caught.value.diagnostics
    assert problem.code == "registry-syntax"
    assert problem.span is not None and problem.span.line == 3


# -- the command ------------------------------------------------------------------------------------


def test_fmt_formats_the_registry_of_a_config_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shipped = (ROOT / "policies" / "subscriptions" / "registry.yaml").read_text()
    messy = shipped.replace("\n  ", "\n    ").replace("  # ", "     # ")
    registry = tmp_path / "registry.yaml"
    registry.write_text(messy)
    (tmp_path / "a.policy").write_text("route sonnet when quota(work) > 20% prefer work else personal\n")
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    assert capsys.readouterr().out == f"would reformat {registry}\n"
    assert registry.read_text() == messy
    assert main(["fmt", str(tmp_path)]) == 0
    assert capsys.readouterr().out == f"reformatted {registry}\n"
    assert registry.read_text() == shipped
    assert main(["check", str(tmp_path)]) == 0


def test_fmt_leaves_a_registry_it_cannot_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    registry = tmp_path / "registry.yaml"
    broken = "providers:\n    work: {rpm: 5\n"
    registry.write_text(broken)
    assert main(["fmt", str(registry)]) == 1
    assert "registry-syntax" in capsys.readouterr().err
    assert registry.read_text() == broken


def test_the_documented_example_is_what_fmt_does() -> None:
    cli_md = (ROOT / "docs" / "cli.md").read_text()
    section = cli_md[cli_md.index("A `registry.yaml` keeps what it says") :]
    before, after = re.findall(r"```yaml\n(.*?)```", section, re.S)[:2]
    assert format_registry(before) == after
