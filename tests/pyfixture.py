"""A conda package of the host's own CPython, for tests that need a real interpreter in an image.

None of the real upstream package files in ``shared/realdata`` is a Python interpreter, but noarch: python packages
(pip, setuptools, wheel) are. ``host_python_package()`` packs the running interpreter (``sys.base_prefix``) the way
conda-build would pack its build prefix: ``bin/pythonX.Y`` (+ ``python3``/``python`` links), ``lib/libpythonX.Y.so*``
when the build is shared, and the standard library without ``site-packages``, the test suites, ``__pycache__``,
the static library and the GUI/IDE parts. Prefix records as conda-build writes them:

* text files that mention the host prefix get it replaced by a 255-character placeholder (``file_mode: text``);
* binary files (``RUNPATH``) keep it, and the host prefix itself is their placeholder (``file_mode: binary``):
  conda's placeholder is nothing but the build prefix, and the installer rewrites each NUL-terminated string
  holding it to the target prefix, NUL-padded (see ``_unshare_tail`` for the one string that cannot be).

The interpreter links against the host's glibc, so images built with it need a glibc base (``realenv.debian_base``).
The package is built once per Python version and kept under the test cache.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import stat
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from pathlib import Path

import pytest
import zstandard

from pkgbuilder import LONG_PLACEHOLDER, Executable, FileValue, Symlink, _tar_bytes
from realenv import TEST_CACHE

FORMAT = 2  # bump when what goes into the package changes
TIMESTAMP = 1700000000000
BUILD = "0_host"

# Parts of the standard library a command-line interpreter does not need (directory names under lib/pythonX.Y).
_SKIP_TOP = {"site-packages", "test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "__pycache__"}
_SKIP_ANYWHERE = {"__pycache__", "test", "tests", "idle_test"}


def host_python_version() -> str:
    return "%d.%d.%d" % sys.version_info[:3]


def host_python_package() -> Path:
    """``python-X.Y.Z-0_host.conda`` (linux-64) made from the running interpreter; cached, built once."""
    if sys.implementation.name != "cpython" or not sys.platform.startswith("linux") or os.uname().machine != "x86_64":
        pytest.skip("the host-python fixture needs CPython on linux x86_64")
    version = host_python_version()
    prefix, xy = Path(sys.base_prefix), "%d.%d" % sys.version_info[:2]
    if len(str(prefix)) < len("/opt/conda") or str(prefix) in ("/usr", "/usr/local"):
        # a distribution's python: /usr is no build prefix (every binary names /usr/lib; shebangs say /usr/bin/env)
        pytest.skip(f"the host python lives in {prefix}, not in a prefix of its own (pyenv, a source build, conda)")
    if not (prefix / "bin" / f"python{xy}").is_file() or not (prefix / "lib" / f"python{xy}" / "os.py").is_file():
        pytest.skip(f"{prefix} does not have the layout bin/python{xy} + lib/python{xy}/")
    fn = f"python-{version}-{BUILD}.conda"
    out = TEST_CACHE / "host-python" / f"v{FORMAT}" / fn
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".python-", dir=out.parent)
        os.close(fd)
        try:
            Path(tmp).write_bytes(_build(prefix, version))
            os.replace(tmp, out)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    return out


def _stripped(path: Path) -> bytes:
    """The file without debug info (the host build keeps it: 23 MB of libpython), if ``strip`` is there."""
    strip = shutil.which("strip")
    if strip is None:
        return path.read_bytes()
    with tempfile.TemporaryDirectory() as d:
        dst = Path(d) / path.name
        p = subprocess.run([strip, "--strip-debug", "-o", str(dst), str(path)], capture_output=True)
        return dst.read_bytes() if p.returncode == 0 else path.read_bytes()


def _payload(prefix: Path, xy: str) -> dict[str, FileValue]:
    files: dict[str, FileValue] = {}

    def add(rel: str, src: Path, elf: bool = False) -> None:
        st = src.lstat()
        if stat.S_ISLNK(st.st_mode):
            target = os.readlink(src)
            if target.startswith("/"):
                return
            files[rel] = Symlink(target)
            return
        data = _stripped(src) if elf else src.read_bytes()
        files[rel] = Executable(data) if st.st_mode & 0o111 else data

    exe = prefix / "bin" / f"python{xy}"
    add(f"bin/python{xy}", exe, elf=True)
    files["bin/python3"] = Symlink(f"python{xy}")
    files["bin/python"] = Symlink(f"python{xy}")
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        for lib in sorted((prefix / "lib").glob("libpython3*.so*")):
            add(f"lib/{lib.name}", lib, elf=not lib.is_symlink())
    stdlib = prefix / "lib" / f"python{xy}"
    for root, dirs, names in os.walk(stdlib):
        rel_root = Path(root).relative_to(stdlib)
        top = rel_root == Path(".")
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_ANYWHERE and not (top and (d in _SKIP_TOP or
                                                                                      d.startswith("config-"))))
        for name in sorted(names):
            if name.endswith((".pyc", ".pyo")):
                continue
            src = Path(root) / name
            add(f"lib/python{xy}/{(rel_root / name).as_posix()}", src, elf=name.endswith(".so"))
    # what a conda python ships there, so the directory exists before any package adds to it
    files[f"lib/python{xy}/site-packages/README.txt"] = "This directory exists so that 3rd party packages can be " \
                                                        "installed here.  Read the source for site.py for more " \
                                                        "details.\n"
    return files


def _unshare_tail(data: bytes, host: bytes) -> bytes:
    """Blank the directory part of a C string that is exactly the host prefix (libpython's compiled-in PREFIX).

    The linker merges string constants by tail: ``PY_VERSION`` ("3.11.7") is stored as the last bytes of
    "/root/.pyenv/versions/3.11.7", so rewriting that string to "/opt/conda" NUL-padded would leave
    ``sys.version`` empty of its version. conda-build's placeholders (long, ending in "_placehold") never share a
    tail with anything; the host prefix can. That string only serves as a fallback when the interpreter does not
    find its landmarks next to the executable, so its directory part becomes slashes and the tail stays in place;
    the prefix in RUNPATH (".../lib") remains the binary placeholder the installer rewrites.
    """
    tail = host.rsplit(b"/", 1)[1]
    blank = b"/" * (len(host) - len(tail)) + tail
    return data.replace(b"\0" + host + b"\0", b"\0" + blank + b"\0")


def _build(prefix: Path, version: str) -> bytes:
    xy = ".".join(version.split(".")[:2])
    files = _payload(prefix, xy)
    host = str(prefix).encode()
    placeholders: dict[str, tuple[str, str]] = {}  # path -> (placeholder, mode)
    for path, v in list(files.items()):
        if isinstance(v, Symlink):
            continue
        data = v.data if isinstance(v, Executable) else v
        data = data.encode() if isinstance(data, str) else data
        if host not in data:
            continue
        if b"\0" in data:
            data = _unshare_tail(data, host)
            files[path] = Executable(data) if isinstance(v, Executable) else data
            if host in data:
                placeholders[path] = (str(prefix), "binary")
        else:
            data = data.replace(host, LONG_PLACEHOLDER.encode())
            files[path] = Executable(data) if isinstance(v, Executable) else data
            placeholders[path] = (LONG_PLACEHOLDER, "text")

    paths = []
    for path in sorted(files):
        v = files[path]
        rec: dict[str, object] = {"_path": path}
        if isinstance(v, Symlink):
            blob = v.target.encode()
            rec["path_type"] = "softlink"
        else:
            blob = v.data if isinstance(v, Executable) else v  # type: ignore[assignment]
            blob = blob.encode() if isinstance(blob, str) else blob
            rec["path_type"] = "hardlink"
            if path in placeholders:
                rec["prefix_placeholder"], rec["file_mode"] = placeholders[path]
        rec["sha256"] = hashlib.sha256(blob).hexdigest()
        rec["size_in_bytes"] = len(blob)
        paths.append(rec)
    index = {
        "name": "python", "version": version, "build": BUILD, "build_number": 0, "depends": [],
        "license": "Python-2.0", "subdir": "linux-64", "arch": "x86_64", "platform": "linux", "timestamp": TIMESTAMP,
    }
    info: dict[str, FileValue] = {
        "info/index.json": json.dumps(index, indent=2, sort_keys=True) + "\n",
        "info/files": "".join(p + "\n" for p in sorted(files)),
        "info/paths.json": json.dumps({"paths": paths, "paths_version": 1}, indent=2, sort_keys=True) + "\n",
        "info/has_prefix": "".join(f'"{ph}" {mode} {p}\n' for p, (ph, mode) in sorted(placeholders.items())),
    }
    stem = f"python-{version}-{BUILD}"
    mtime = TIMESTAMP // 1000
    zc = zstandard.ZstdCompressor(level=6, write_content_size=True, threads=0)
    members = [
        ("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
        (f"pkg-{stem}.tar.zst", zc.compress(_tar_bytes(sorted(files.items()), mtime))),
        (f"info-{stem}.tar.zst", zc.compress(_tar_bytes(sorted(info.items()), mtime))),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for member, data in members:
            zi = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.create_system = 3
            zf.writestr(zi, data)
    return buf.getvalue()


def prefix_files(pkg: Path) -> dict[str, dict]:
    """``info/paths.json`` records of a package built here, by path."""
    with zipfile.ZipFile(pkg) as zf:
        name = next(n for n in zf.namelist() if n.startswith("info-"))
        raw = zstandard.ZstdDecompressor().decompress(zf.read(name), max_output_size=1 << 28)
    import tarfile

    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        f = tar.extractfile("info/paths.json")
        assert f is not None
        return {p["_path"]: p for p in json.load(f)["paths"]}
