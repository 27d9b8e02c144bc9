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

from policyrouter.cli import main

POLICIES = Path(__file__).resolve().parent.parent / "policies"
CONFIGS = sorted(p.parent.name for p in POLICIES.glob("*/registry.yaml"))
# Pieces of policies and of YAML, and characters that trip readers up; each kind as likely as the others.
PIECES = st.one_of(
    st.sampled_from(["route", "when", "prefer", "else", "use", "only", "avoid", "deny", "fallback", "strategy"]),
    st.sampled_from(["requires", "let", "and", "or", "not", "quota(", "spend(", 'tag("', "tokens", "errors("]),
    st.sampled_from(["{", "}", "(", ")", "[", "]", "%", ">", "<=", "==", "=", ":", ",", "-", "*", "#", '"', "'"]),
    st.sampled_from(["10k", "1.5M", "1e309", "-1", "0", "99999999999999999999", "5h", "20%", "$", "null", "~"]),
    st.sampled_from(["&a", "*a", "<<: *a", "!!python/object:os.system", "---", "...", "yes", "? "]),
    st.sampled_from(["\n", "\n  ", "\t", "\x00", "\x07", "\x1b", "\u00e9", "\u2028", "\ufeff", "\U0001f600"]),
)
EDITS = st.lists(
    st.tuples(
        st.floats(min_value=0, max_value=1),  # where, as a share of the text
        st.sampled_from(["cut", "insert", "replace", "repeat"]),
        st.integers(min_value=0, max_value=24),  # how many characters it takes
        PIECES,
    ),
    min_size=1,
    max_size=4,
)
LOCATED = re.compile(r"^\S+:\d+:\d+: error\[[a-z-]+\]: \S")


def edit(text: str, edits: list[tuple[float, str, int, str]]) -> str:
    for where, action, length, piece in edits:
        i = int(where * len(text))
        j = min(len(text), i + length)
        if action == "cut":
            text = text[:i] + text[j:]
        elif action == "insert":
            text = text[:i] + piece + text[i:]
        elif action == "replace":
            text = text[:i] + piece + text[j:]
        else:  # a stretch of the text again, as a careless paste would
            text = text[:i] + text[i:j] + text[i:]
    return text


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
