"""Golden tests of `policyrouter check` on bad inputs: rendered diagnostics compared verbatim.

A case is either `golden/policies/NAME.policy` (checked beside the shared `golden/policies/registry.yaml`)
or a directory `golden/policies/NAME/` holding its own `registry.yaml` and policies. Its expected
output is `golden/policies/NAME.out`: what `policyrouter check NAME` prints, run from the directory
that holds the case, then the exit code. `UPDATE_GOLDEN=1 pytest tests/test_golden_policies.py`
rewrites the `.out` files; read every one before keeping it.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from policyrouter import cli

GOLDEN = Path(__file__).parent / "golden" / "policies"
SHARED_REGISTRY = GOLDEN / "registry.yaml"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _cases() -> list[str]:
    files = [p.stem for p in GOLDEN.glob("*.policy")]
    directories = [p.name for p in GOLDEN.iterdir() if p.is_dir()]
    return sorted(files + directories)


def _materialize(name: str, root: Path) -> None:
    """The case as a config directory `root/NAME`, so diagnostics show `NAME/...` paths."""
    source, target = GOLDEN / name, root / name
    if source.is_dir():
        shutil.copytree(source, target)
    else:
        target.mkdir()
        shutil.copyfile(GOLDEN / f"{name}.policy", target / "routes.policy")
    if not (target / "registry.yaml").exists():
        shutil.copyfile(SHARED_REGISTRY, target / "registry.yaml")


def _check(name: str, root: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    _materialize(name, root)
    monkeypatch.chdir(root)
    code = cli.main(["check", name])
    out, err = capsys.readouterr()
    return out + (f"--- stderr\n{err}" if err else "") + f"--- exit {code}\n"


@pytest.mark.parametrize("name", _cases())
def test_golden(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    actual = _check(name, tmp_path, monkeypatch, capsys)
    expected_path = GOLDEN / f"{name}.out"
    if UPDATE:
        expected_path.write_text(actual, encoding="utf-8")
    assert expected_path.is_file(), f"no golden output for {name}: run with UPDATE_GOLDEN=1 and read it"
    assert actual == expected_path.read_text(encoding="utf-8")


def test_every_golden_output_has_its_input() -> None:
    outputs = sorted(p.stem for p in GOLDEN.glob("*.out"))
    assert outputs == _cases()
    assert len(outputs) >= 22


def test_no_golden_passes_cleanly() -> None:
    """Each case is a bad input: its check reports at least one diagnostic."""
    for path in GOLDEN.glob("*.out"):
        text = path.read_text(encoding="utf-8")
        assert "error[" in text or "warning[" in text, path.name
