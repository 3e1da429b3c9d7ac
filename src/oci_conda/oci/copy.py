"""Copying a blob's bytes from one file into another kernel-side, when the blob is known good without reading it.

Writing an archive of cached layers is mostly copying: through Python buffers (and a hash) that is ~0.5 s for
140 MiB on the 2-core machine of issue 16. ``copy_file_range`` (or ``sendfile``) moves the bytes inside the
kernel, or shares the extents on a file system that can. That skips hashing, so it is taken only for a file the
cache has a verification record for (``cache_verify``: digests plus a stat stamp with ``ctime``, which no user can
set back) and whose stamp has not changed since; any other source is read, hashed and written as before.
"""

from __future__ import annotations

import errno
import hashlib
import io
import os
import stat
from pathlib import Path
from typing import BinaryIO, Callable

from ..cache_verify import file_digests, identity_stamp, record_path
from ..errors import ImageError

#: errors meaning "this kernel or file system cannot do that copy": fall back to the next way
_UNSUPPORTED = {errno.ENOSYS, errno.EXDEV, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EBADF, errno.EPERM}
_CHUNK = 1 << 20


def verified_fd(f: BinaryIO, sha256: str, size: int) -> int | None:
    """The fd of ``f`` when it is a regular file whose cache record says it holds ``sha256`` and ``size`` and whose
    stamp still matches (so its bytes need not be read to be trusted); else None (read and verify it instead)."""
    try:
        fd = f.fileno()
        name = os.fspath(f.name)  # type: ignore[attr-defined]
    except (AttributeError, OSError, TypeError, io.UnsupportedOperation):
        return None
    if not isinstance(name, str):
        return None
    path = Path(name)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode) or before.st_size != size or not record_path(path).is_file():
            return None
        got = file_digests(path, remember=False)  # hashes only if the stamp no longer matches the record
        if got.sha256 != sha256 or got.size != size:
            return None
        # the path still names the file we hold, unchanged since before the record was consulted
        was = identity_stamp(before)
        if identity_stamp(os.stat(path)) != was or identity_stamp(os.fstat(fd)) != was:
            return None
    except OSError:
        return None
    return fd


def copy_verified(f: BinaryIO, dst: int, sha256: str, size: int, what: str) -> bool:
    """Append the blob ``f`` (``sha256``, ``size``) at ``dst``'s position kernel-side when :func:`verified_fd`
    vouches for it; False (nothing written) when it does not.

    Should the source's stamp change during the copy (a concurrent build renaming the same blob over it changes
    its ctime, an edit its content), the bytes just written are read back from ``dst`` and hashed: ImageError
    unless they are the blob."""
    src = verified_fd(f, sha256, size)
    if src is None:
        return False
    before = identity_stamp(os.fstat(src))
    start = os.lseek(dst, 0, os.SEEK_CUR)
    copy_fd(src, dst, size, what)
    if identity_stamp(os.fstat(src)) != before and _sha256_range(dst, start, size) != sha256:
        raise ImageError(f"{what} changed while it was being written")
    return True


def _sha256_range(fd: int, start: int, size: int) -> str:
    h = hashlib.sha256()
    done = 0
    while done < size:
        chunk = os.pread(fd, min(_CHUNK, size - done), start + done)
        if not chunk:
            break
        h.update(chunk)
        done += len(chunk)
    return h.hexdigest()


def copy_fd(src: int, dst: int, size: int, what: str) -> None:
    """Append ``size`` bytes of ``src`` (from offset 0) at ``dst``'s position: ``copy_file_range``, else
    ``sendfile``, else read/write. ImageError if ``src`` is shorter (``what`` names it); OSError if ``dst``
    cannot be written."""
    done = _copy_file_range(src, dst, size)
    if done is None:
        done = _sendfile(src, dst, size)
    if done is None:
        done = 0
    while done < size:  # whatever the kernel could not do, done here
        chunk = os.pread(src, min(_CHUNK, size - done), done)
        if not chunk:
            break
        write_all(dst, chunk)
        done += len(chunk)
    if done != size:
        raise ImageError(f"{what} is shorter than its {size} bytes")


def write_all(fd: int, data: bytes) -> None:
    """``data`` written at ``fd``'s position, however many calls that takes."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _copy_file_range(src: int, dst: int, size: int) -> int | None:
    """Bytes copied (short only at the source's end), or None when unsupported before anything was copied."""
    fn = getattr(os, "copy_file_range", None)
    return None if fn is None else _kernel_copy(lambda n, at: fn(src, dst, n, at), size)


def _sendfile(src: int, dst: int, size: int) -> int | None:
    return _kernel_copy(lambda n, at: os.sendfile(dst, src, at, n), size)


def _kernel_copy(step: Callable[[int, int], int], size: int) -> int | None:
    """Call ``step(count, source offset)`` until ``size`` bytes are copied or the source ends; None when the kernel
    refuses it before anything was copied."""
    done = 0
    while done < size:
        try:
            n = step(size - done, done)
        except OSError as exc:
            if exc.errno in _UNSUPPORTED and done == 0:
                return None
            raise
        if n == 0:
            break
        done += n
    return done
