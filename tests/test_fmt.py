"""`policyrouter fmt`: one canonical layout, comments kept.

The laws, over random policies in random layouts (hypothesis): `fmt(fmt(x)) == fmt(x)` and
`parse(fmt(x)) == parse(x)`; plus golden layouts and the CLI's --check/--diff.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from policy_strategies import policies

from policyrouter.cli import main
from policyrouter.fmt import format_policy
from policyrouter.parse import parse_policy


def _parses(text: str) -> bool:
    try:
        parse_policy(text)
    except Exception:
        return False
    return True


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(policies().filter(_parses))
def test_fmt_is_idempotent_and_keeps_the_tree(text: str) -> None:
    once = format_policy(text)
    assert format_policy(once) == once
    assert parse_policy(once).statements == parse_policy(text).statements


@settings(max_examples=60, deadline=None)
@given(policies().filter(_parses))
def test_fmt_keeps_every_comment(text: str) -> None:
    before = [c for _, c in parse_policy(text).comments]
    after = [c for _, c in parse_policy(format_policy(text)).comments]
    assert sorted(after) == sorted(before)


GOLDEN = [
    (
        "the card's line stays one line",
        "route  sonnet\n  when quota(work)>20% prefer work else personal\n",
        "route sonnet when quota(work) > 20% prefer work else personal\n",
    ),
    (
        "two deciding clauses make a block",
        "route sonnet when hour > 22 prefer personal otherwise prefer work",
        "route sonnet {\n    when hour > 22 prefer personal\n    otherwise prefer work\n}\n",
    ),
    (
        "a short block becomes one line",
        "route gpt-4o {\n  fallback gemini-pro,local-coder\n}\n",
        "route gpt-4o fallback gemini-pro, local-coder\n",
    ),
    (
        "parentheses only where precedence needs them",
        "route x when ((a or b)) and (not (c)) prefer p\n",
        "route x when (a or b) and not c prefer p\n",
    ),
    (
        "comments stay where they were",
        "# head\n\nroute x {  # why\n    # before\n    when a prefer p  # after\n    fallback y\n}\n# tail\n",
        "# head\n\nroute x {  # why\n    # before\n    when a prefer p  # after\n    fallback y\n}\n# tail\n",
    ),
    (
        "a when with comments beside its parts keeps a line per part",
        "route s {\n    when quota(w) > 20%   # room\n        prefer w  # cheaper\n        else p  # the other\n}\n",
        "route s {\n    when quota(w) > 20%  # room\n        prefer w  # cheaper\n        else p  # the other\n}\n",
    ),
    (
        "an and over lines with a comment per operand keeps a line per operand",
        'route s {\n    when quota(w) > 20%  # room\n      and not tag("i")   # batch\n        prefer w\n}\n',
        'route s {\n    when quota(w) > 20%  # room\n        and not tag("i")  # batch\n        prefer w\n}\n',
    ),
    (
        "so does a let of one",
        "let t = a or  # one\n  (b and c)  # two\n",
        "let t = a  # one\n    or b and c  # two\n",
    ),
    (
        "a comparison as one side of a comparison keeps its parentheses",
        "route s when (quota(w) > 20%) != early prefer w\nroute t when (hour in (1, 2)) == false prefer w\n",
        "route s when (quota(w) > 20%) != early prefer w\nroute t when (hour in (1, 2)) == false prefer w\n",
    ),
    (
        "a let in parentheses over lines keeps the comment after its closing one",
        "let busy = (\n    hour < 9  # early\n    or hour > 17  # late\n)  # office hours\n",
        "let busy = hour < 9  # early\n    # late\n    or hour > 17  # office hours\n",
    ),
    (
        "a comment at the end of a when alone keeps it on one line",
        "route x {\n    when a\n        prefer p  # why\n    fallback y\n}\n",
        "route x {\n    when a prefer p  # why\n    fallback y\n}\n",
    ),
    (
        "comments of lines joined into one: the last at its end, the others above it",
        "let t =  # why\n  hour > 3  # when\nroute x {\n    fallback a,  # first\n        b  # then\n}\n",
        "# why\nlet t = hour > 3  # when\nroute x {\n    # first\n    fallback a, b  # then\n}\n",
    ),
    (
        "blank lines between statements collapse to one",
        "let t = hour > 3\n\n\n\nroute x when t prefer p\n",
        "let t = hour > 3\n\nroute x when t prefer p\n",
    ),
]


@pytest.mark.parametrize(("text", "expected"), [(t, e) for _, t, e in GOLDEN], ids=[n for n, _, _ in GOLDEN])
def test_canonical_layout(text: str, expected: str) -> None:
    assert format_policy(text) == expected


def test_fmt_check_and_diff_change_nothing(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    messy = "route sonnet when quota(work)>20% prefer work else personal\n"
    path = tmp_path / "a.policy"
    path.write_text(messy)
    assert main(["fmt", "--check", str(tmp_path)]) == 1
    assert "would reformat" in capsys.readouterr().out
    assert main(["fmt", "--diff", str(tmp_path)]) == 1
    assert "+route sonnet when quota(work) > 20% prefer work else personal" in capsys.readouterr().out
    assert path.read_text() == messy
    assert main(["fmt", str(tmp_path)]) == 0
    assert path.read_text() == "route sonnet when quota(work) > 20% prefer work else personal\n"
    assert main(["fmt", "--check", str(tmp_path)]) == 0


def test_fmt_says_when_there_is_nothing_to_format(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # It said nothing and exited 0, as if every file were formatted: a wrong directory looked fine.
    assert main(["fmt", "--check", str(tmp_path)]) == 0
    expected = f"note: no `*.policy` or `registry.yaml` file in `{tmp_path}`: nothing to format\n"
    assert capsys.readouterr().err == expected


def test_fmt_reports_a_syntax_error_without_changing_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.policy"
    path.write_text("route sonnet when quota(work) > 20% prefr work\n")
    assert main(["fmt", str(path)]) == 1
    assert "did you mean `prefer`?" in capsys.readouterr().err
    assert path.read_text() == "route sonnet when quota(work) > 20% prefr work\n"


def test_the_shipped_policies_are_formatted() -> None:
    root = Path(__file__).resolve().parent.parent / "policies"
    for path in sorted(root.rglob("*.policy")):
        text = path.read_text()
        assert format_policy(text) == text, path


def test_a_file_named_twice_is_formatted_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "a.policy"
    path.write_text("route  sonnet when hour>3 prefer work\n")
    assert main(["fmt", "--check", str(tmp_path), str(path)]) == 1
    assert capsys.readouterr().out.count("would reformat") == 1  # it was said once per argument
