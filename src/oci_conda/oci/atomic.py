"""Writing an output atomically: a temp path beside it, locked while in use, renamed into place when complete.

A killed build leaves ``.NAME.*.tmp`` / ``.old`` behind; the next writer removes those nobody holds a lock on.
"""

from __future__ import annotations

import os
from pathlib import Path

from oci_conda.cache import hold as cache_hold
from oci_conda.cache import sweep_stale
from oci_conda.errors import OutputError


def remove_stale_temps(out: Path) -> None:
    """Temp files/dirs a killed build left next to ``out`` (``.NAME.*.tmp``/``.old``): a live writer holds a lock on
    its own, so whatever can be locked belongs to nobody any more (the cache's one sweep)."""
    sweep_stale(out.parent, lambda n: n.startswith(f".{out.name}.") and n.endswith((".tmp", ".old")))


def hold(path: str) -> int:
    """Lock a temp file/dir for as long as the returned fd is open (see :func:`remove_stale_temps`)."""
    return cache_hold(path)


def check_parent(out: Path) -> None:
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {out}: directory {parent} is not writable")

