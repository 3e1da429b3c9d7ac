"""Writing an output atomically: a temp path beside it, locked while in use, renamed into place when complete.

A killed build leaves ``.NAME.*.tmp`` / ``.old`` behind; the next writer removes those nobody holds a lock on.

An output file that is still exactly what the last write put there need not be written again (a no-op rebuild,
issue 16): after each write the cache records the output's path, a key naming every byte written and the file's
stat stamp (device, inode, size, mtime and ctime; ``ctime`` changes with any write, truncation, ``touch``, rename
or ``chmod`` and cannot be set back by a user; the same trust as the cache's own entries, cache_verify.py). A
later write of the same key finds the record and the same stamp and keeps the file; a modified, truncated,
replaced or symlinked output, another key, or no record means the output is written again.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

from oci_conda.cache import atomic_write, cache_dir, cache_root, sweep_stale
from oci_conda.cache import hold as cache_hold
from oci_conda.cache_verify import identity_stamp
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



OUTPUTS_DIR = "outputs"


def _record_name(out: Path) -> str:
    return hashlib.sha256(os.fsencode(str(out))).hexdigest() + ".json"


def output_unchanged(out: Path, key: str) -> bool:
    """Whether ``out`` (absolute) is still the regular file the last write of ``key`` left there."""
    try:
        doc = json.loads((cache_root() / OUTPUTS_DIR / _record_name(out)).read_bytes())
        st = os.lstat(out)
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return (isinstance(doc, dict) and doc.get("path") == str(out) and doc.get("key") == key
            and stat.S_ISREG(st.st_mode) and doc.get("stamp") == identity_stamp(st))


def record_output(out: Path, fd: int, key: str) -> None:
    """Remember that ``out`` (absolute) is the file open at ``fd``, just renamed into place, holding ``key``'s bytes.

    Nothing is recorded if ``out`` is no longer that file (another writer replaced it), or if its file system keeps
    whole seconds only (an edit within the second of the rename would keep the stamp); a cache that cannot be
    written only means the next build writes the output again."""
    try:
        st = os.fstat(fd)
        if identity_stamp(os.lstat(out)) != identity_stamp(st) or st.st_ctime_ns % 1_000_000_000 == 0:
            return
        doc = {"path": str(out), "key": key, "stamp": identity_stamp(st)}
        with atomic_write(cache_dir(OUTPUTS_DIR) / _record_name(out), fsync=False) as f:
            f.write(json.dumps(doc, sort_keys=True).encode())
    except OSError:
        return

