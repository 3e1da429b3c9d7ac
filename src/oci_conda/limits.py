"""Bounded reads of what comes from outside: the ONE way to read a file, a stream or JSON someone else made.

A path may name a FIFO (``open`` blocks forever), ``/dev/zero`` (``read`` never ends) or a huge file; a stream may be
endless; JSON may nest deep enough to exhaust the interpreter's stack. Each helper here refuses those with a one-line
:class:`LimitError` naming what was read, before memory or time run out. HTTP bodies have their twin in
:func:`oci_conda.http.read_capped`.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
from pathlib import Path
from typing import IO, Any, BinaryIO

from .errors import OciCondaError

#: JSON documents we read from images, locks and bundles are far smaller than this.
MAX_JSON = 64 << 20


class LimitError(OciCondaError):
    """Input from outside is not a regular file, is larger than its cap, or nests too deeply."""


def open_regular(path: str | os.PathLike[str], what: str) -> BinaryIO:
    """``path`` opened for reading only if it is a regular file (a FIFO is refused without blocking on it)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise LimitError(f"{what}: {path} is not a regular file")
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_stream_capped(f: IO[bytes], cap: int, what: str) -> bytes:
    """At most ``cap`` bytes of ``f``; more is refused (one read of ``cap + 1`` bytes, never the whole stream)."""
    data = f.read(cap + 1)
    if len(data) > cap:
        raise LimitError(f"{what}: larger than the {cap}-byte limit")
    return data


def read_file_capped(path: str | os.PathLike[str], cap: int, what: str) -> bytes:
    """The bytes of the regular file ``path``, refused when larger than ``cap``; ``OSError`` passes through."""
    with open_regular(path, what) as f:
        size = os.fstat(f.fileno()).st_size
        if size > cap:
            raise LimitError(f"{what}: {size} bytes is larger than the {cap}-byte limit")
        return read_stream_capped(f, cap, what)


def loads_json(data: bytes | str, what: str, *, cap: int = MAX_JSON) -> Any:
    """A JSON value, with size and nesting bounded: too big or too deep is a :class:`LimitError`; bad JSON stays
    a ``ValueError`` (``json.JSONDecodeError``) for the caller to name."""
    if len(data) > cap:
        raise LimitError(f"{what}: larger than the {cap}-byte limit")
    try:
        return json.loads(data)
    except RecursionError:  # the C parser counts its nesting against the interpreter's recursion limit
        raise LimitError(f"{what}: JSON nested too deeply") from None


def read_json_file(path: str | Path, what: str, *, cap: int = MAX_JSON) -> Any:
    """:func:`loads_json` of a regular file of at most ``cap`` bytes."""
    return loads_json(read_file_capped(path, cap, what), what, cap=cap)
