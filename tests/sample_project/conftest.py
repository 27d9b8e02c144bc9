"""The sample project is run as a project of its own (tests/test_pytest_plugin.py copies it and runs
pytest there, with this folder as the rootdir). When the repository's own test run walks into it,
nothing here is collected: its tests need the plugin, and its YAML cases belong to its own run."""

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    return True if config.rootpath.resolve() != HERE else None
