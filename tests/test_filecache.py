"""The file cache of the command line: a hit gives what reading the file gives, anything that changes the
result reads the file again, and a cache that cannot be used is no cache at all."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import policyrouter
from policyrouter import cli, config, filecache
from policyrouter.filecache import FileCache

ROOT = Path(__file__).resolve().parent.parent
REGISTRY = """\
providers:
  work: {litellm_provider: anthropic, api_key_env: WORK_KEY, quota: {limit: 5M, unit: tokens, window: 5h}}
  personal: {litellm_provider: anthropic, api_key_env: PERSONAL_KEY}
  spare: {litellm_provider: openai}
models:
  sonnet:
    context_window: 200k
    price: {input_per_mtok: 3.00, output_per_mtok: 15.00}
    deployments:
      - {provider: work, model_id: claude-sonnet-4}
      - {provider: personal, model_id: claude-sonnet-4}
"""
POLICY = "route sonnet when quota(work) > 20% prefer work else personal\n"
TESTS = """\
- name: work first while it keeps its margin
  request: {model: sonnet, tokens: 2k}
  facts: {quota: {work: 0.5}}
  expect: {order: [work, personal]}
- name: deliberately wrong
  request: {model: sonnet}
  facts: {quota: {work: 10%}}
  expect: {first: work}
"""


class Reader:
    """A reader that counts its calls."""

    def __init__(self, value: object = "read") -> None:
        self.value = value
        self.calls = 0

    def __call__(self) -> object:
        self.calls += 1
        return self.value


@pytest.fixture
def cache(tmp_path: Path) -> FileCache:
    return FileCache(tmp_path / "cache")


def entries(cache: FileCache) -> list[Path]:
    return sorted(cache.directory.iterdir()) if cache.directory.is_dir() else []


# -- FileCache ----------------------------------------------------------------------------------------


def test_a_second_fetch_is_a_hit(cache: FileCache, tmp_path: Path) -> None:
    read = Reader({"a": [1, 2.5]})
    first = cache.fetch("kind", tmp_path / "f", ("f", "text"), read)
    second = cache.fetch("kind", tmp_path / "f", ("f", "text"), read)
    assert first == second == {"a": [1, 2.5]} and read.calls == 1


@pytest.mark.parametrize("inputs", [("f", "new text"), ("shown/elsewhere", "text"), ("f", "text", "cost map v2")])
def test_other_inputs_read_again_and_replace_the_entry(
    cache: FileCache, tmp_path: Path, inputs: tuple[str, ...]
) -> None:
    read = Reader()
    cache.fetch("kind", tmp_path / "f", ("f", "text"), read)
    cache.fetch("kind", tmp_path / "f", inputs, read)
    cache.fetch("kind", tmp_path / "f", inputs, read)
    assert read.calls == 2
    assert len(entries(cache)) == 1


def test_changed_code_reads_again(cache: FileCache, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    read = Reader()
    cache.fetch("kind", tmp_path / "f", ("f", "text"), read)
    monkeypatch.setattr(filecache, "_code_fingerprint", lambda: "the code after an edit")
    cache.fetch("kind", tmp_path / "f", ("f", "text"), read)
    assert read.calls == 2


def test_the_code_fingerprint_follows_the_package_and_the_grammar() -> None:
    fingerprint = filecache._code_fingerprint()
    package = Path(policyrouter.__file__).resolve().parent
    assert f"{package / 'registry_schema.py'}:" in fingerprint
    assert "policy.lark:" in fingerprint
    assert "pydantic" in fingerprint and "ruamel" in fingerprint and "lark" in fingerprint


def test_kinds_do_not_share_entries(cache: FileCache, tmp_path: Path) -> None:
    assert cache.fetch("one", tmp_path / "f", ("f", "text"), Reader(1)) == 1
    assert cache.fetch("two", tmp_path / "f", ("f", "text"), Reader(2)) == 2


def test_a_failed_read_stores_nothing(cache: FileCache, tmp_path: Path) -> None:
    def fail() -> object:
        raise ValueError("bad file")

    with pytest.raises(ValueError, match="bad file"):
        cache.fetch("kind", tmp_path / "f", ("f", "text"), fail)
    assert entries(cache) == []


def test_a_corrupt_entry_is_read_again_and_replaced(cache: FileCache, tmp_path: Path) -> None:
    cache.fetch("kind", tmp_path / "f", ("f", "text"), Reader())
    (entry,) = entries(cache)
    entry.write_bytes(b"\x80\x05not a pickle")
    read = Reader()
    assert cache.fetch("kind", tmp_path / "f", ("f", "text"), read) == "read" and read.calls == 1
    assert cache.fetch("kind", tmp_path / "f", ("f", "text"), read) == "read" and read.calls == 1


def test_a_directory_that_cannot_be_made_is_no_cache(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("in the way", encoding="utf-8")
    cache = FileCache(tmp_path / "file" / "cache")
    read = Reader()
    assert cache.fetch("kind", tmp_path / "f", ("f", "text"), read) == "read"
    assert cache.fetch("kind", tmp_path / "f", ("f", "text"), read) == "read"
    assert read.calls == 2


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="no file owners here")
def test_a_directory_others_may_write_is_never_read(cache: FileCache, tmp_path: Path) -> None:
    cache.fetch("kind", tmp_path / "f", ("f", "text"), Reader())
    cache.directory.chmod(0o777)
    read = Reader()
    cache.fetch("kind", tmp_path / "f", ("f", "text"), read)
    assert read.calls == 1


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="no file owners here")
def test_an_entry_others_may_write_is_never_read_and_entries_are_written_the_users_alone(
    cache: FileCache, tmp_path: Path
) -> None:
    # under `umask 000` entries came out 0666 in a 0755 directory, and were read: anyone could plant one
    old = os.umask(0)
    try:
        cache.fetch("kind", tmp_path / "f", ("f", "text"), Reader())
    finally:
        os.umask(old)
    (entry,) = cache.directory.iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600
    cache.directory.chmod(0o755)
    entry.chmod(0o666)
    read = Reader()
    cache.fetch("kind", tmp_path / "f", ("f", "text"), read)
    assert read.calls == 1


def test_the_grammar_is_kept_in_the_users_cache_not_the_shared_temporary_directory(tmp_path: Path) -> None:
    # Lark's default, a pickle of a predictable name in /tmp, ran whatever another user had put there
    shared, home = tmp_path / "tmp", tmp_path / "cache"
    shared.mkdir()
    env = {**os.environ, "TMPDIR": str(shared), "XDG_CACHE_HOME": str(home), "PYTHONPATH": str(ROOT)}
    env.pop("POLICYROUTER_NO_CACHE", None)
    script = "from policyrouter.parse import parse_policy; parse_policy('route a prefer b', 'p.policy')"
    for _ in range(2):  # one run writes it, the next reads it
        subprocess.run([sys.executable, "-c", script], env=env, check=True)
    assert list(shared.iterdir()) == []
    (kept,) = (home / "policyrouter").glob("grammar-*.pickle")
    assert kept.stat().st_mode & 0o777 == 0o600
    subprocess.run([sys.executable, "-c", script], env={**env, "POLICYROUTER_NO_CACHE": "1"}, check=True)
    assert list(shared.iterdir()) == []


def test_the_users_cache(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert getattr(FileCache.for_user(), "directory", None) == tmp_path / "policyrouter"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/is/ignored")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert getattr(FileCache.for_user(), "directory", None) == tmp_path / "home" / ".cache" / "policyrouter"
    monkeypatch.setenv("POLICYROUTER_NO_CACHE", "1")
    assert FileCache.for_user() is None


# -- config files through the cache -------------------------------------------------------------------


def check(*argv: str) -> tuple[int, str, str]:
    """`policyrouter check ARGV` in this process: exit code, stdout, stderr."""
    from contextlib import redirect_stderr, redirect_stdout
    from io import StringIO

    out, err = StringIO(), StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["check", *argv])
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def project(make_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config with a warning (an unused provider), decision tests (one failing), run from tmp_path."""
    monkeypatch.chdir(tmp_path)
    return make_config(REGISTRY, POLICY, tests={"cases.yaml": TESTS})


@pytest.mark.parametrize("argv", [["--notes"], ["--format", "json"], ["--format", "github"]])
def test_check_says_the_same_from_the_cache(project: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]) -> None:
    monkeypatch.setenv("POLICYROUTER_NO_CACHE", "1")
    uncached = check("cfg", *argv)
    monkeypatch.delenv("POLICYROUTER_NO_CACHE")
    filling, warm = check("cfg", *argv), check("cfg", *argv)
    assert uncached == filling == warm
    assert uncached[0] == 1 and "unused-provider" in uncached[1] and "deliberately wrong" in uncached[1]


def test_cached_files_are_used(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    check("cfg")

    def unread(*args: object) -> object:
        raise AssertionError("read a file the cache holds")

    monkeypatch.setattr(config, "_validate", unread)
    monkeypatch.setattr(config, "_parse", unread)
    monkeypatch.setattr("policyrouter.decision_tests._cases_from_text", unread)
    code, out, _ = check("cfg")
    assert code == 1 and "1 passed, 1 failed decision tests" in out


def test_an_edited_registry_is_read_again_with_positions(project: Path) -> None:
    check("cfg")
    registry = project / "registry.yaml"
    registry.write_text(REGISTRY.replace("context_window: 200k", "context_windw: 200k"), encoding="utf-8")
    code, out, _ = check("cfg")
    assert code == 1
    assert "cfg/registry.yaml:7:5: error[registry-unknown-key]: unknown key `context_windw` in `models.sonnet`" in out
    assert "7 |     context_windw: 200k\n  |     ^^^^^^^^^^^^^" in out
    assert "= help: did you mean `context_window`?" in out


def test_edited_policies_and_tests_are_read_again(project: Path) -> None:
    check("cfg")
    (project / "main.policy").write_text(POLICY.replace("quota(work)", "quota(wrok)"), encoding="utf-8")
    assert "cfg/main.policy:1:" in check("cfg")[1]
    (project / "main.policy").write_text(POLICY, encoding="utf-8")
    (project / "tests" / "cases.yaml").write_text(TESTS.replace("first: work", "first: personal"), encoding="utf-8")
    code, out, _ = check("cfg")
    assert code == 0 and out.endswith("2 passed, 0 failed decision tests\n")


def test_paths_follow_the_working_directory(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert "\ncfg/registry.yaml:4:3: warning[unused-provider]" in "\n" + check("cfg")[1]
    monkeypatch.chdir(project)
    assert "\nregistry.yaml:4:3: warning[unused-provider]" in "\n" + check(".")[1]


def test_a_changed_cost_map_reads_the_registry_again(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cache = FileCache.for_user()
    path = Path("cfg/registry.yaml")
    first = config.read_registry(path, cache)
    monkeypatch.setattr(config, "cost_map_version", lambda: "a newer cost map")
    read = Reader(first)
    monkeypatch.setattr(config, "_validate", lambda text, path: read())
    config.read_registry(path, cache)
    assert read.calls == 1


def test_decision_test_floats_are_plain(project: Path) -> None:
    from policyrouter.decision_tests import load_cases

    cases, _ = load_cases(project / "tests" / "cases.yaml")
    assert type(cases[0].facts["quota"]["work"]) is float  # type: ignore[index]


WARM_CHECK = """\
import sys
from policyrouter import cli
assert cli.main(["check", "cfg"]) == 1
assert cli.main(["explain", "sonnet", "--config", "cfg", "--fact", "quota.work=15%"]) == 0
readers = sorted(m for m in sys.modules if m.startswith(("pydantic", "ruamel.yaml", "lark")))
assert not readers, readers
"""


def test_a_warm_check_imports_no_reader(project: Path, tmp_path: Path) -> None:
    root = str(Path(policyrouter.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))}
    fill = subprocess.run(
        [sys.executable, "-m", "policyrouter.cli", "check", "cfg"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert fill.returncode == 1
    done = subprocess.run(
        [sys.executable, "-c", WARM_CHECK], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
