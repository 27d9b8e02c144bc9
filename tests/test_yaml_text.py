"""The quick YAML readers build what ruamel's full round-trip loader builds, positions and all.

`load_yaml` reads with libyaml under ruamel's round-trip constructor (or, without libyaml, ruamel's
parser without its comment scanner) and falls back to the full loader only when that read fails. So
wherever a quick read succeeds, its data must be the full loader's: the same keys in the same order,
the same values of the same types, the same line and column for every key, value and item (but a null
value's, which nothing reads). The shipped configs and the tests' own YAML are compared as they are and
edited at random.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError
from text_edits import EDITS, edit

from policyrouter import yaml_text

ROOT = Path(__file__).resolve().parent.parent
FILES = sorted(
    str(path.relative_to(ROOT)) for folder in ("policies", "tests") for path in (ROOT / folder).rglob("*.yaml")
)


@pytest.fixture(params=["libyaml", "ruamel"])
def reader(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Each quick reader in turn: libyaml's, and ruamel's own parser as used where libyaml is missing."""
    if request.param == "ruamel":
        monkeypatch.setattr(yaml_text, "_libyaml_loader", lambda: None)
    yield request.param


def full_load(text: str) -> Any:
    return YAML(typ="rt").load(text)


def shape(data: Any) -> Any:
    """The data with the position of every key, value and item, and each value's type."""
    if isinstance(data, CommentedMap):
        return (
            "map",
            (data.lc.line, data.lc.col),
            [
                (key, data.lc.key(key), None if value is None else data.lc.value(key), shape(value))
                for key, value in data.items()
            ],
        )
    if isinstance(data, CommentedSeq):
        return ("seq", (data.lc.line, data.lc.col), [(data.lc.item(i), shape(item)) for i, item in enumerate(data)])
    return (type(data).__name__, repr(data))  # repr: nan is nan, a tagged scalar has no `==` of its own


def test_libyaml_is_installed_for_the_quick_reader() -> None:
    # ruamel.yaml.clib is a dependency on CPython: without it every read would quietly take the slow path.
    assert yaml_text._libyaml_loader() is not None


@pytest.mark.parametrize("name", FILES)
def test_quick_read_of_every_yaml_file_is_the_full_loaders(reader: str, name: str) -> None:
    text = (ROOT / name).read_text(encoding="utf-8")
    try:
        expected = shape(full_load(text))
    except Exception:
        return  # a deliberately broken file: load_yaml reads it with the full loader
    with contextlib.suppress(Exception):  # one the quick reader rejects is read by the full loader too
        assert shape(yaml_text.quick_load(text)) == expected
    try:
        loaded = yaml_text.load_yaml(text)
    except MarkedYAMLError as e:  # the one thing ruamel reads that load_yaml refuses: half a surrogate pair
        assert "surrogate pair" in str(e)
        return
    assert shape(loaded) == expected


@settings(max_examples=300, deadline=None, derandomize=True)
@given(name=st.sampled_from(FILES), edits=EDITS)
def test_quick_read_of_edited_yaml_is_the_full_loaders(name: str, edits: list[tuple[float, str, int, str]]) -> None:
    text = edit((ROOT / name).read_text(encoding="utf-8"), edits)
    try:
        quick = shape(yaml_text.quick_load(text))
    except Exception:
        return  # load_yaml then reads it with the full loader, which says what is wrong
    assert quick == shape(full_load(text))  # a text the quick reader takes, the full loader takes alike
