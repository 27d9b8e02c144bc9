"""The command examples in README.md and docs/ print what the docs show.

Every `$ policyrouter explain|check|test …` of a ```console block that runs on the shipped examples
(`policies/…`) is run on a fresh copy of them, with the file cache off, and its output compared with
the lines that follow it in the docs, verbatim. Examples on a config the reader builds (`myrouter`) or
on a live state the text sets up are the docs' own to keep right; they are not run here.
"""

from __future__ import annotations

import re
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest

from policyrouter.cli import main

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
RUN = ("explain", "check", "test")
# Shown on a live state the surrounding text describes (a provider cooling down), not a fresh one.
ON_A_STATE_OF_THEIR_OWN = {("cli.md", "policyrouter explain gpt-4o --config policies/subscriptions")}


def examples() -> list[Any]:
    found = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for block in re.finditer(r"```console\n(.*?)```", text, re.S):
            for command in re.finditer(r"^\$ (.*)\n((?:(?!\$ ).*\n)*)", block.group(1), re.M):
                shown, output = command.group(1), command.group(2)
                args = shlex.split(shown)
                runs = args[:1] == ["policyrouter"] and args[1] in RUN and any("policies" in a for a in args)
                if runs and (page.name, shown) not in ON_A_STATE_OF_THEIR_OWN:
                    line = text.count("\n", 0, block.start(1) + command.start()) + 1
                    found.append(pytest.param(args[1:], output.rstrip(), id=f"{page.name}:{line}"))
    return found


@pytest.mark.parametrize(("argv", "shown"), examples())
def test_the_example_prints_what_the_docs_show(
    argv: list[str], shown: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "policies", tmp_path / "policies", ignore=shutil.ignore_patterns(".policyrouter"))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POLICYROUTER_NO_CACHE", "1")
    main(argv)
    out, err = capsys.readouterr()
    assert (out + err).rstrip() == shown
