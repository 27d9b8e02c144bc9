"""What the command line read from config files, kept on disk so that a fresh process can skip reading
an unchanged file again.

Most of a cold `policyrouter check` went to importing and running the readers (ruamel.yaml, pydantic,
lark) on files that had not changed since the last run. `FileCache.fetch` stores what a reader
returned for a file and hands it back next time, as long as everything the result is derived from is
the same: the file's text, the path messages show for it, any other input the caller names (litellm's
cost map, for registries), and the code that read it: the files of this package, the grammar, the
readers' own packages and the Python version (`_code_fingerprint`). A reader that raises stores
nothing, so problems always come from the readers themselves, with their positions and hints.

Entries live in `$XDG_CACHE_HOME/policyrouter` (default `~/.cache/policyrouter`), one per file read,
replaced when the file changes, and so does the parser's analysed grammar (`private_file`: Lark's own
default, a file of a predictable name in the shared temporary directory, would load a pickle anyone
could have put there). `POLICYROUTER_NO_CACHE` set to anything turns the cache off; a directory that
cannot be created, read or written is the same as no cache. Entries are pickles, so a directory or an
entry that is not the user's own, or that others may write to, is never read. Config files hold no secrets (a registry
names environment variables, never their values), and so neither do the entries.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
import pickle
import stat
import sys
import threading
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

DISABLE_VARIABLE = "POLICYROUTER_NO_CACHE"
FORMAT = "policyrouter-filecache-1"  # changes when the layout of an entry does
_READERS = ("lark", "ruamel.yaml", "pydantic", "pydantic_core")  # whose versions shape what is read
_PACKAGE_DIR = Path(__file__).resolve().parent
_MISSING = object()


class FileCache:
    """Results of reading files, in `directory`."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @classmethod
    def for_user(cls) -> FileCache | None:
        """The user's cache, or None when it is turned off or there is no home to keep it in."""
        if os.environ.get(DISABLE_VARIABLE):
            return None
        base = os.environ.get("XDG_CACHE_HOME", "")
        if not os.path.isabs(base):  # the XDG spec: a relative path is invalid, ignore it
            try:
                base = str(Path.home() / ".cache")
            except RuntimeError:  # no home directory to be found
                return None
        return cls(Path(base) / "policyrouter")

    def fetch(self, kind: str, source: Path, inputs: Sequence[str], read: Callable[[], T]) -> T:
        """What `read()` returns for the file `source` of `kind` ("registry", "policy", ...), given
        `inputs`: its text, the path messages show, and anything else the result depends on."""
        entry = self._entry(kind, source)
        # An entry is used only if it was made from exactly these inputs by exactly this code. The
        # inputs themselves are compared, not a hash of them: a few kilobytes, and nothing to doubt.
        stamp = (FORMAT, _code_fingerprint(), kind, tuple(inputs))
        found = self._load(entry, stamp)
        if found is not _MISSING:
            return found  # type: ignore[return-value]
        value = read()
        self._store(entry, stamp, value)
        return value

    def private_file(self, name: str) -> Path | None:
        """A path in the cache for a pickle another reader keeps (Lark's analysed grammar), or None
        when the directory, or a file already there, is not the user's alone: a pickle runs code."""
        path = self.directory / name
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(self.directory) or (path.exists() and not _private(path)):
                return None
        except OSError:
            return None
        return path

    def _entry(self, kind: str, source: Path) -> Path:
        """The one entry of the file: a new text of it replaces the old one. (Two files whose names
        collide take turns in it: a miss, never a wrong answer.)"""
        name = os.path.abspath(source).encode("utf-8", "surrogateescape")
        return self.directory / f"{kind}-{zlib.crc32(name):08x}{zlib.adler32(name):08x}.pickle"

    def _load(self, entry: Path, stamp: tuple[object, ...]) -> object:
        """The value stored with `stamp`, else `_MISSING`."""
        try:
            if not _private(self.directory) or not _private(entry):  # an entry others may write is theirs
                return _MISSING
            with entry.open("rb") as f:
                if pickle.load(f) != stamp:
                    return _MISSING  # another text, another version of the code: read the file again
                return pickle.load(f)
        except Exception:  # unreadable, or written by code since changed: unpickling fails in many ways
            return _MISSING

    def _store(self, entry: Path, stamp: tuple[object, ...], value: object) -> None:
        try:
            data = pickle.dumps(stamp) + pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:  # a value that cannot be pickled is simply not kept
            return
        temporary = entry.with_name(f"{entry.name}.{os.getpid()}-{threading.get_ident()}.tmp")
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if not _private(self.directory):
                return
            with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as f:
                f.write(data)  # the user's alone, whatever the umask
            os.replace(temporary, entry)  # readers see the old entry or the new one, never half of one
        except OSError:
            with contextlib.suppress(OSError):
                temporary.unlink(missing_ok=True)


def _private(path: Path) -> bool:
    """Whether only the current user can write to `path`, a directory or a file (always so where
    there are no uids)."""
    info = path.stat()
    getuid = getattr(os, "getuid", None)
    if getuid is None:
        return True
    return info.st_uid == getuid() and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)


@functools.cache
def _code_fingerprint() -> str:
    """The version of everything that reads config files: each file's name, size and modification
    time, for this package (so an edit in a source checkout counts), the grammar and the readers."""
    lines = [sys.version]
    for path in sorted(_code_files()):
        try:
            info = path.stat()
        except OSError:
            continue
        lines.append(f"{path}:{info.st_size}:{info.st_mtime_ns}")
    return "\n".join(lines)


def _code_files() -> Iterator[Path]:
    for root, dirs, files in os.walk(_PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        yield from (Path(root, name) for name in files if name.endswith((".py", ".lark")))
    yield _PACKAGE_DIR.parent / "grammar" / "policy.lark"  # where a source checkout keeps the grammar
    for name in _READERS:
        try:
            spec = importlib.util.find_spec(name)  # finds the package without importing it
        except ImportError:
            continue
        if spec is not None and spec.origin is not None:
            yield Path(spec.origin)  # rewritten whenever the package is installed or upgraded
