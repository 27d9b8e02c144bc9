"""A config directory: `registry.yaml`, `*.policy` files and decision tests under `tests/`.

`load_config` runs the whole front half of the pipeline (read → parse → compile) and keeps every
diagnostic instead of stopping at the first, so `check` can show them all at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from policyrouter import ast
from policyrouter.collector import collector_paused
from policyrouter.compile import check_custom_facts, compile_program
from policyrouter.diagnostics import Diagnostic
from policyrouter.errors import ConfigError
from policyrouter.facts import Fact
from policyrouter.lint import lint, suppress
from policyrouter.prices import cost_map_version
from policyrouter.program import Program
from policyrouter.registry import Registry
from policyrouter.text_files import read_config_text, unreadable

if TYPE_CHECKING:
    from policyrouter.filecache import FileCache

REGISTRY_FILE = "registry.yaml"


def yaml_files(directory: Path) -> list[Path]:
    """The decision-test files of a directory: its `*.yaml` and `*.yml` files (not a folder or a pipe
    named so, which pytest does not collect either)."""
    if not directory.is_dir():
        return []
    return [p for p in sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml")) if p.is_file()]


@dataclass
class Config:
    directory: Path
    registry: Registry | None
    files: list[ast.PolicyFile]
    program: Program | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    custom_facts: Mapping[str, Fact] = field(default_factory=dict)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    def test_files(self) -> list[Path]:
        return yaml_files(self.directory / "tests")


def _config_missing_help(path: Path) -> str:
    """A file of a config given where its directory belongs; or what a config directory holds."""
    if path.is_file() and (path.parent / REGISTRY_FILE).is_file():
        return f"give the config directory that holds it: `{display_path(path.parent)}`"
    return f"a config directory holds `{REGISTRY_FILE}` and `*.policy` files"


def display_path(path: Path) -> str:
    """Paths in messages are relative to the working directory when they can be."""
    try:
        relative = os.path.relpath(path)
    except ValueError:
        return str(path)
    return str(path) if relative.startswith("..") else relative


def config_dirs(root: Path) -> list[Path]:
    """`root` itself when it holds a registry, else every directory below it that does."""
    if (root / REGISTRY_FILE).is_file() or not root.is_dir():
        return [root]
    found = []
    seen: set[str] = set()  # folders walked, by real path: a link back up is not walked again
    # a folder that cannot be read, or goes, is passed over; a linked config directory is checked
    for folder, subfolders, files in os.walk(root, followlinks=True):
        real = os.path.realpath(folder)
        if real in seen:
            subfolders[:] = []
            continue
        seen.add(real)
        subfolders[:] = [d for d in subfolders if d != ".policyrouter"]
        if REGISTRY_FILE in files:
            found.append(Path(folder))
    return sorted(found) or [root]


def load_config(
    directory: Path,
    custom_facts: Mapping[str, Fact] | None = None,
    *,
    deep: bool = False,
    cache: FileCache | None = None,
) -> Config:
    """Read, parse, compile and lint a config directory. `deep` adds the lints that search for
    requests a route leaves with nothing (what `check` runs; loading a router skips them). With a
    `cache`, files unchanged since they were last read there are not read again."""
    facts = check_custom_facts(custom_facts) if custom_facts else None
    with collector_paused():
        return _load(directory, facts, deep, cache)


def config_missing(directory: Path) -> Diagnostic | None:
    """The `config-missing` error when `directory` is none, or holds nothing of a config (said once,
    rather than as a missing registry and a missing policy)."""
    shown = display_path(directory)
    if not directory.is_dir():
        message = f"`{shown}` is not a directory" if directory.exists() else f"no directory `{shown}`"
    elif not (directory / REGISTRY_FILE).exists() and next(directory.glob("*.policy"), None) is None:
        message = f"`{shown}` is not a config directory: no `{REGISTRY_FILE}` and no `*.policy` file"
    else:
        return None
    return Diagnostic("config-missing", message, path=shown, help=_config_missing_help(directory))


def _load(directory: Path, custom_facts: Mapping[str, Fact] | None, deep: bool, cache: FileCache | None) -> Config:
    registry_path = directory / REGISTRY_FILE
    missing = config_missing(directory)
    if missing is not None:
        return Config(directory, None, [], None, [missing], dict(custom_facts or {}))
    policy_paths = sorted(directory.glob("*.policy"))
    diagnostics: list[Diagnostic] = []
    registry = None
    try:
        registry = read_registry(Path(display_path(registry_path)), cache)
    except ConfigError as e:
        diagnostics += e.diagnostics
    files = []
    if not policy_paths:
        diagnostics.append(
            Diagnostic(
                "no-policies",
                f"no `*.policy` file in `{display_path(directory)}`",
                severity="warning",
                path=display_path(directory),
                help="every model is routed by registry order",
            )
        )
    for path in policy_paths:
        try:
            files.append(_read_policy(path, cache))
        except ConfigError as e:
            diagnostics += e.diagnostics
        except OSError as e:
            diagnostics.append(unreadable("config-unreadable", display_path(path), e))
    program = None
    if registry is not None:
        program, found = compile_program(registry, files, custom_facts)
        diagnostics += found
        if any(d.severity == "error" for d in diagnostics):
            program = None
        elif program is not None:
            diagnostics += lint(program, files, deep=deep)
    diagnostics = suppress(diagnostics)
    return Config(directory, registry, files, program, diagnostics, dict(custom_facts or {}))


def read_registry(path: Path, cache: FileCache | None = None) -> Registry:
    """The registry at `path`, or a `ConfigError` with every problem in it."""
    if cache is not None and (text := _text_or_none(path)) is not None:
        return cache.fetch("registry", path, (str(path), text, cost_map_version()), lambda: _validate(text, path))
    from policyrouter.registry_schema import load_registry

    return load_registry(path)  # which also says why a file cannot be read


# The readers below import pydantic, ruamel.yaml and lark only when a file is read: importing them
# costs more than the rest of a cold start, and a file found in the cache needs none of them.


def _validate(text: str, path: Path) -> Registry:
    from policyrouter.registry_schema import registry_from_text

    return registry_from_text(text, path)


def _parse(text: str, path: str) -> ast.PolicyFile:
    from policyrouter.parse import parse_policy

    return parse_policy(text, path)


def _read_policy(path: Path, cache: FileCache | None) -> ast.PolicyFile:
    shown = display_path(path)
    text = read_config_text(path, shown, "config-unreadable")
    if cache is None:
        return _parse(text, shown)
    return cache.fetch("policy", path, (shown, text), lambda: _parse(text, shown))


def _text_or_none(path: Path) -> str | None:
    try:
        return read_config_text(path, str(path), "registry-read")
    except (OSError, ConfigError):
        return None
