"""Bad input gets a clear error, never a traceback.

The shipped configs, edited at random (hypothesis: characters cut, tokens of the language and of YAML
put in, control characters, huge numbers), go through `policyrouter check` in-process. Whatever the
edit, the command returns an exit code, and every error it prints says where: `file:line:col`.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from text_edits import EDITS, edit

import policyrouter
from policyrouter.cli import main

POLICIES = Path(__file__).resolve().parent.parent / "policies"
CONFIGS = sorted(p.parent.name for p in POLICIES.glob("*/registry.yaml"))
LOCATED = re.compile(r"^\S+:\d+:\d+: error\[[a-z-]+\]: \S")


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run: CI never goes red by luck
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(config=st.sampled_from(CONFIGS), pick=st.integers(min_value=0), edits=EDITS)
def test_edited_configs_fail_with_located_errors(
    config: str,
    pick: int,
    edits: list[tuple[float, str, int, str]],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("POLICYROUTER_NO_CACHE", "1")  # every file read and checked, as after an edit
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp) / config
        shutil.copytree(POLICIES / config, directory, ignore=shutil.ignore_patterns(".policyrouter"))
        files = sorted(p for p in directory.rglob("*") if p.suffix in (".policy", ".yaml"))
        target = files[pick % len(files)]
        target.write_text(edit(target.read_text(encoding="utf-8"), edits), encoding="utf-8")
        capsys.readouterr()
        code = main(["check", str(directory)])
        out, err = capsys.readouterr()
    assert code in (0, 1), (code, err)
    errors = [line for line in (out + err).splitlines() if re.search(r"\berror\[", line)]
    unplaced = [line for line in errors if not LOCATED.match(line)]
    assert not unplaced, unplaced
    assert "Traceback" not in out + err


@pytest.fixture
def directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the first-policy example, every file read afresh."""
    monkeypatch.setenv("POLICYROUTER_NO_CACHE", "1")
    copy = tmp_path / "first-policy"
    shutil.copytree(POLICIES / "first-policy", copy, ignore=shutil.ignore_patterns(".policyrouter"))
    return copy


# Each kind of config file, with the code its unreadable-file errors carry.
FILE_KINDS = [
    ("registry.yaml", "registry-read"),
    ("first.policy", "config-unreadable"),
    ("tests/first.yaml", "test-syntax"),
]


@pytest.mark.parametrize(("name", "code"), FILE_KINDS, ids=[name for name, _ in FILE_KINDS])
def test_a_byte_that_is_not_utf8_is_placed_and_shown(
    name: str, code: str, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = directory / name
    lines = len(target.read_bytes().splitlines())
    target.write_bytes(target.read_bytes() + "# café, saved as Latin-1\n".encode("latin-1"))
    commands = [["check", str(directory)], ["fmt", "--check", str(target)]] if name.endswith(".policy") else []
    for argv in commands or [["check", str(directory)]]:
        code_returned = main(argv)
        out, err = capsys.readouterr()
        assert code_returned == 1, argv
        assert f"{target}:{lines + 1}:6: error[{code}]: not UTF-8 text: byte 0xe9 here" in out + err, argv
        assert "# caf\ufffd, saved as Latin-1" in out + err  # the line, the byte shown as U+FFFD, then a caret
        assert "Traceback" not in out + err


@pytest.mark.parametrize("name", [name for name, _ in FILE_KINDS])
def test_a_byte_order_mark_is_read_as_nothing(name: str, directory: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Editors on Windows start UTF-8 files with one; the file means what it says without it.
    target = directory / name
    target.write_bytes(b"\xef\xbb\xbf" + target.read_bytes())
    assert main(["check", str(directory)]) == 0, capsys.readouterr()
    assert "0 errors, 0 warnings" in capsys.readouterr().out


@pytest.mark.parametrize("newline", ["\r\n", "\r"], ids=["CRLF", "CR"])
def test_line_breaks_of_other_systems_read_as_newlines(
    newline: str, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name, _ in FILE_KINDS:
        target = directory / name
        target.write_bytes(target.read_bytes().replace(b"\n", newline.encode()))
    assert main(["check", str(directory)]) == 0, capsys.readouterr()
    policy = directory / "first.policy"
    assert main(["fmt", "--check", str(policy)]) == 0, capsys.readouterr()  # canonical but for its line breaks
    policy.write_bytes(policy.read_bytes().replace(b"route ", b"route  "))  # now it needs formatting
    assert main(["fmt", str(policy)]) == 0, capsys.readouterr()
    written = policy.read_bytes()
    assert b"route sonnet" in written
    assert len(set(re.findall(rb"\r\n|\r|\n", written))) == 1  # one kind of line break, not a mix


def _lets(n: int) -> str:
    """`a0` a comparison, each next `let` the `not` of the one before: `a{n-1}` nests n deep."""
    return "let a0 = quota(work) > 20%\n" + "".join(f"let a{i} = not a{i - 1}\n" for i in range(1, n))


CONDITION = "quota(work) > 20%"
# (policy, where its one `nested-too-deep` error is and how the message starts) or, for a policy that
# loads, (policy, None, the provider it puts first when `work` has half its quota left).
NESTING: list[tuple[str, str | None, str]] = [
    (f"route sonnet when {'not ' * 98}{CONDITION} prefer work else personal\n", None, "work"),
    (f"route sonnet when {'not ' * 99}{CONDITION} prefer work else personal\n", None, "personal"),
    (f"route sonnet when {'not ' * 100}{CONDITION} prefer work\n", "1:19", "nests 101 deep; at most 100"),
    (f"route sonnet when {'not ' * 900}{CONDITION} prefer work\n", "1:19", "nests more than 100 deep"),
    (f"route sonnet when {'(hour > 1 and ' * 300}true{')' * 300} prefer work\n", "1:20", "nests more than 100"),
    (f"route sonnet when {' and '.join([CONDITION] * 3000)} prefer work else personal\n", None, "work"),
    (_lets(100) + "route sonnet when a99 prefer work else personal\n", None, "personal"),
    (_lets(150) + "route sonnet when a149 prefer work\n", "101:12", "nests 101 deep through the `let`s it uses"),
]


@pytest.mark.parametrize(("policy", "place", "expected"), NESTING, ids=[f"nesting-{i}" for i in range(len(NESTING))])
def test_a_condition_nests_at_most_100_deep(
    policy: str, place: str | None, expected: str, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # A condition is built, checked and evaluated by walks that recurse: past the limit, one placed
    # error (not one per `let` after it), never a RecursionError, at load or at decision time.
    (directory / "first.policy").write_text(policy, encoding="utf-8")
    (directory / "tests" / "first.yaml").unlink()
    code = main(["check", str(directory)])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    errors = [line for line in out.splitlines() if "error[" in line]
    if place is None:
        assert code == 0 and not errors, out + err
        router = policyrouter.load(directory)
        other = "personal" if expected == "work" else "work"
        assert router.decide("sonnet", facts={"quota": {"work": "50%"}}).order[0].provider == expected
        assert router.decide("sonnet", facts={"quota": {"work": "15%"}}).order[0].provider == other
        return
    assert code == 1
    (error,) = errors
    assert f"first.policy:{place}: error[nested-too-deep]: this condition {expected}" in error, error


# (file, YAML appended to it, the diagnostic's code, the column; its line is the first appended)
DEEP_YAML = [
    ("registry.yaml", f"budgets: {'[' * 3000}{']' * 3000}\n", "registry-syntax", 10),
    (
        "tests/first.yaml",
        "- name: x\n  facts:\n" + "".join(" " * i + f"k{i}:\n" for i in range(3, 400)),
        "test-syntax",
        1,
    ),
]


@pytest.mark.parametrize(("name", "text", "code", "column"), DEEP_YAML, ids=["flow", "block"])
def test_yaml_nested_hundreds_deep_is_a_placed_error(
    name: str, text: str, code: str, column: int, directory: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # ruamel builds nested collections recursively and ran out of stack at a few hundred levels.
    target = directory / name
    line = len(target.read_text(encoding="utf-8").splitlines()) + 1
    target.write_text(target.read_text(encoding="utf-8") + text, encoding="utf-8")
    assert main(["check", str(directory)]) == 1
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    assert f"{target}:{line}:{column}: error[{code}]: invalid YAML: nested too deeply to read" in out, out + err


# (the line, the marked text): the caret line mirrors what comes before the mark, a tab as a tab and
# a wide character as two columns, so on a terminal the carets sit under the mark
CARET_LINES = [
    ("\twhen quota(wrk) > 20% prefer work", "wrk", "\t           ^^^"),
    ('route opus deny "日本語" prefer wrk', "wrk", " " * 17 + " " * 6 + " " * 9 + "^^^"),
    ('deny "x" prefer 日本', "日本", " " * 16 + "^^^^"),
    ("route e\u0301t prefer wrk", "wrk", " " * 16 + "^^^"),  # an accent combined with its letter: no column
]


@pytest.mark.parametrize(("line", "marked", "carets"), CARET_LINES, ids=["tab", "wide", "wide marked", "combining"])
def test_the_caret_sits_under_the_marked_text(line: str, marked: str, carets: str) -> None:
    from policyrouter.diagnostics import Diagnostic, Source, Span

    column = line.index(marked) + 1
    span = Span(Source("p.policy", line + "\n"), 1, column, 1, column + len(marked))
    rendered = Diagnostic("unknown-provider", "x", span).render().split("\n")
    assert rendered[2] == f"1 | {line}"
    assert rendered[3] == f"  | {carets}"
