"""Writing an output atomically: a temp path beside it, locked while in use, renamed into place when complete.

A killed build leaves ``.NAME.*.tmp`` / ``.old`` behind; the next writer removes those nobody holds a lock on.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
from pathlib import Path

from oci_conda.errors import OutputError


def remove_stale_temps(out: Path) -> None:
    """Temp files/dirs a killed build left next to ``out`` (``.NAME.*.tmp``/``.old``): a live writer holds a lock on
    its own, so whatever can be locked belongs to nobody any more."""
    try:
        names = os.listdir(out.parent)
    except OSError:
        return
    for n in names:
        if not (n.startswith(f".{out.name}.") and n.endswith((".tmp", ".old"))):
            continue
        p = out.parent / n
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # in use
        finally:
            os.close(fd)  # closing drops the lock; a writer that locks from here on is not ours to touch
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def hold(path: str) -> int:
    """Lock a temp file/dir for as long as the returned fd is open (see :func:`remove_stale_temps`)."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def check_parent(out: Path) -> None:
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {out}: directory {parent} is not writable")

