"""docs/tutorial.md, walked as a reader would: each file it shows written, each command it shows run,
each output compared with what it prints, verbatim. The tutorial's blocks are taken in order; the
steps below say what the text around each does with it (create a file, add a case, replace it)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from policyrouter.cli import main

TUTORIAL = Path(__file__).resolve().parent.parent / "docs" / "tutorial.md"


def blocks(kind: str) -> list[str]:
    """The tutorial's ```kind blocks, in order."""
    return re.findall(rf"```{kind}\n(.*?)```", TUTORIAL.read_text(encoding="utf-8"), re.S)


def commands() -> list[tuple[list[str], str]]:
    """Each `$ policyrouter …` of the console blocks, in order, with the output shown under it."""
    found = []
    for block in blocks("console"):
        for command in re.finditer(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", block, re.M):
            found.append((shlex.split(command.group(1))[1:], command.group(2).rstrip()))
    return found


def test_the_tutorial_prints_what_it_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POLICYROUTER_NO_CACHE", "1")
    registry, tests, failing_case, fixed_case = blocks("yaml")
    (policy,) = blocks("policy")
    config = tmp_path / "myrouter"
    steps = {  # before the command at this index, the files as the text has them then
        0: lambda: (config.mkdir(), (config / "registry.yaml").write_text(registry)),
        1: lambda: (config / "routes.policy").write_text(policy),
        7: lambda: ((config / "tests").mkdir(), (config / "tests" / "sonnet.yaml").write_text(tests)),
        9: lambda: (config / "tests" / "sonnet.yaml").write_text(tests + "\n" + failing_case),
        10: lambda: (config / "tests" / "sonnet.yaml").write_text(tests + "\n" + fixed_case),
    }
    runs = commands()
    assert len(runs) == 11, "the tutorial's commands changed: update the steps of this test"
    for index, (argv, shown) in enumerate(runs):
        if index in steps:
            steps[index]()
        main(argv)
        out, err = capsys.readouterr()
        assert (out + err).rstrip() == shown, f"command {index + 1}: policyrouter {' '.join(argv)}"

    for source, shown in zip(blocks("python"), blocks("text"), strict=True):
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(source, str(TUTORIAL), "exec"), {})
        assert printed.getvalue().rstrip() == shown.rstrip()
