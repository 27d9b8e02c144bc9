"""Config files as text: UTF-8, with a byte-order mark at the start dropped (editors on Windows write
one) and line breaks read as `\n` whatever the file has (as Python's text mode reads them), and a byte
that is not UTF-8 reported where it is, its line shown, as any other problem."""

from __future__ import annotations

import errno
from pathlib import Path

from policyrouter.diagnostics import Diagnostic, Source, Span, line_and_column
from policyrouter.errors import ConfigError


def read_config_text(path: Path, shown: str, code: str) -> str:
    """The text of the config file at `path`, `shown` under that name in diagnostics. Raises
    `ConfigError` (a `code` diagnostic on the first byte that is not UTF-8), or `OSError`."""
    if path.exists() and not path.is_file():  # a FIFO would wait for a writer forever, a directory fail late
        raise OSError(errno.EINVAL, "not a regular file", str(path))
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        readable = data.decode("utf-8", errors="replace")  # the same text up to the bad byte, then U+FFFD
        line, column = line_and_column(readable, len(data[: e.start].decode("utf-8")))
        where = Span(Source(shown, readable), line, column, line, column + 1)
        message = f"not UTF-8 text: byte 0x{data[e.start]:02x} here"
        help = "save the file as UTF-8 (the caret marks the first byte that is not)"
        raise ConfigError([Diagnostic(code, message, where, help=help)]) from None
    return text.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")


def unreadable(code: str, shown: str, error: OSError) -> Diagnostic:
    """The `code` diagnostic for a config file the system would not give us, `shown` by that name."""
    return Diagnostic(code, f"cannot read the file: {error.strerror or error}", path=shown)
