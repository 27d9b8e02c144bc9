"""Shared helpers: a config directory written into a temporary directory from strings.

Reached through fixtures only (`import conftest` is ambiguous once subdirectories add their own).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest

WriteConfig = Callable[..., Path]


def _write_config(
    directory: Path,
    registry: str,
    policy: str | None = None,
    *,
    tests: Mapping[str, str] | None = None,
    policy_name: str = "main.policy",
) -> Path:
    """Write `registry.yaml`, one policy file (unless None) and `tests/*.yaml` into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "registry.yaml").write_text(registry, encoding="utf-8")
    if policy is not None:
        (directory / policy_name).write_text(policy, encoding="utf-8")
    for name, text in (tests or {}).items():
        (directory / "tests").mkdir(exist_ok=True)
        (directory / "tests" / name).write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(scope="session")
def write_config() -> WriteConfig:
    """`write_config(directory, registry, policy, tests={"a.yaml": ...}, policy_name=...)` → directory."""
    return _write_config


@pytest.fixture
def make_config(tmp_path: Path) -> WriteConfig:
    """`make_config(registry, policy, tests={...}, name="cfg")` → a config directory under tmp_path."""

    def make(registry: str, policy: str | None = None, *, name: str = "cfg", **kwargs: object) -> Path:
        return _write_config(tmp_path / name, registry, policy, **kwargs)  # type: ignore[arg-type]

    return make


@pytest.fixture(scope="session", autouse=True)
def _own_file_cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The command-line runs of the tests (and the processes they start) keep their file cache to
    themselves, never in the user's. Session-wide, so module fixtures that start processes use it too."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        patch.delenv("POLICYROUTER_NO_CACHE", raising=False)
        yield
