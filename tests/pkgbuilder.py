"""Build real conda packages and channels for tests and examples, byte-for-byte reproducibly.

``build_package`` writes what conda-build would: ``info/index.json``, ``info/paths.json``, ``info/files``,
``info/has_prefix`` (and ``info/link.json`` for noarch: python), plus the payload, as a ``.conda`` (zip of
``metadata.json`` and two zstd tarballs) or a ``.tar.bz2``. ``index_channel`` writes ``repodata.json`` (+ ``.zst``)
with the real hashes and sizes of every package file, as conda-index would.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Literal, Mapping, Union

import zstandard

from conda_package_streaming.package_streaming import stream_conda_info

#: A conda-build style host-prefix placeholder, 255 characters long, as found in real binary packages.
_PLACEHOLDER_HEAD = "/opt/conda-bld/oci-conda-test_1700000000000/_h_env"
LONG_PLACEHOLDER = (_PLACEHOLDER_HEAD + "_placehold" * 30)[:255]
#: The short placeholder older conda-build wrote (and ``has_prefix`` lines with only a path imply).
SHORT_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"

_SUBDIR_ARCH = {
    "linux-64": ("x86_64", "linux"),
    "linux-aarch64": ("aarch64", "linux"),
    "linux-ppc64le": ("ppc64le", "linux"),
    "osx-64": ("x86_64", "osx"),
    "osx-arm64": ("arm64", "osx"),
    "win-64": ("x86_64", "win"),
}


@dataclass(frozen=True)
class Symlink:
    """A payload entry that is a symbolic link with this (usually relative) target."""

    target: str


@dataclass(frozen=True)
class Hardlink:
    """A payload entry that is a tar hard link to another payload path (conda treats it as a plain file)."""

    target: str


@dataclass(frozen=True)
class Executable:
    """A payload file with mode 0755."""

    data: Union[bytes, str]


FileValue = Union[bytes, str, Symlink, Hardlink, Executable]


def _bytes(v: Union[bytes, str]) -> bytes:
    return v.encode() if isinstance(v, str) else v


def _tarinfo(name: str, mtime: int) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.mtime = mtime
    ti.uid = ti.gid = 0
    ti.uname = ti.gname = ""
    return ti


def _tar_bytes(entries: list[tuple[str, FileValue]], mtime: int) -> bytes:
    """An uncompressed, deterministic tar (entries in the order given)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, value in entries:
            ti = _tarinfo(name, mtime)
            if isinstance(value, Symlink):
                ti.type, ti.linkname, ti.mode = tarfile.SYMTYPE, value.target, 0o777
                tar.addfile(ti)
            elif isinstance(value, Hardlink):
                ti.type, ti.linkname, ti.mode = tarfile.LNKTYPE, value.target, 0o644
                tar.addfile(ti)
            else:
                data = _bytes(value.data if isinstance(value, Executable) else value)
                ti.size = len(data)
                ti.mode = 0o755 if isinstance(value, Executable) else 0o644
                tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def _file_content(files: Mapping[str, FileValue], path: str) -> bytes:
    v = files[path]
    seen = set()
    while isinstance(v, Hardlink):
        if v.target in seen:
            raise ValueError(f"hardlink loop at {path}")
        seen.add(v.target)
        v = files[v.target]
    if isinstance(v, Symlink):
        raise ValueError(f"{path}: hardlink to a symlink")
    return _bytes(v.data if isinstance(v, Executable) else v)


def build_package(
    out_dir: Path,
    name: str,
    version: str,
    build: str = "0",
    build_number: int = 0,
    depends: Iterable[str] = (),
    files: Mapping[str, FileValue] | None = None,
    text_prefix_files: Iterable[str] = (),
    binary_prefix_files: Iterable[str] = (),
    noarch: str | None = None,
    entry_points: Iterable[str] = (),
    subdir: str = "linux-64",
    fmt: Literal["conda", "tar.bz2"] = "conda",
    constrains: Iterable[str] = (),
    timestamp: int = 1700000000000,
    placeholder: str = LONG_PLACEHOLDER,
    license: str = "MIT",
    extra_info: Mapping[str, Union[bytes, str]] | None = None,
    legacy: bool = False,
) -> Path:
    """Write ``<out_dir>/<name>-<version>-<build>.<fmt>``; same arguments give the same bytes.

    Files named in ``text_prefix_files`` / ``binary_prefix_files`` must contain ``placeholder`` (they get a
    prefix_placeholder record). ``legacy=True`` leaves out ``info/paths.json`` (old packages: ``files`` +
    ``has_prefix`` only). ``extra_info`` adds or replaces files under ``info/``.
    """
    files = dict(files or {})
    text_prefix = set(text_prefix_files)
    binary_prefix = set(binary_prefix_files)
    for p in text_prefix | binary_prefix:
        if placeholder.encode() not in _file_content(files, p):
            raise ValueError(f"{p} is declared to hold a prefix but does not contain the placeholder")
    if noarch == "python" and subdir != "noarch":
        subdir = "noarch"
    mtime = timestamp // 1000

    paths = []
    for path in sorted(files):
        v = files[path]
        rec: dict[str, object] = {"_path": path}
        if isinstance(v, Symlink):
            rec["path_type"] = "softlink"
            rec["sha256"] = hashlib.sha256(v.target.encode()).hexdigest()
            rec["size_in_bytes"] = len(v.target.encode())
        else:
            data = _file_content(files, path)
            rec["path_type"] = "hardlink"
            rec["sha256"] = hashlib.sha256(data).hexdigest()
            rec["size_in_bytes"] = len(data)
            if path in text_prefix or path in binary_prefix:
                rec["file_mode"] = "binary" if path in binary_prefix else "text"
                rec["prefix_placeholder"] = placeholder
        paths.append(rec)

    arch, platform = _SUBDIR_ARCH.get(subdir, (None, None))
    index: dict[str, object] = {
        "name": name,
        "version": version,
        "build": build,
        "build_number": build_number,
        "depends": list(depends),
        "license": license,
        "subdir": subdir,
        "timestamp": timestamp,
        "arch": arch,
        "platform": platform,
    }
    if list(constrains):
        index["constrains"] = list(constrains)
    if noarch:
        index["noarch"] = noarch

    info: dict[str, Union[bytes, str]] = {
        "info/index.json": json.dumps(index, indent=2, sort_keys=True) + "\n",
        "info/files": "".join(p + "\n" for p in sorted(files)),
    }
    if not legacy:
        info["info/paths.json"] = json.dumps({"paths": paths, "paths_version": 1}, indent=2, sort_keys=True) + "\n"
    has_prefix = [
        f"{placeholder} {'binary' if p in binary_prefix else 'text'} {p}\n" for p in sorted(text_prefix | binary_prefix)
    ]
    if has_prefix:
        info["info/has_prefix"] = "".join(has_prefix)
    if noarch == "python":
        link = {"noarch": {"type": "python", "entry_points": list(entry_points)}, "package_metadata_version": 1}
        info["info/link.json"] = json.dumps(link, indent=2, sort_keys=True) + "\n"
    info.update(extra_info or {})

    info_entries: list[tuple[str, FileValue]] = sorted(info.items())
    pkg_entries: list[tuple[str, FileValue]] = []
    # hard links must follow their targets in the stream
    for path in sorted(files, key=lambda p: (isinstance(files[p], Hardlink), p)):
        pkg_entries.append((path, files[path]))

    stem = f"{name}-{version}-{build}"
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if fmt == "tar.bz2":
        out = out_dir / f"{stem}.tar.bz2"
        out.write_bytes(bz2.compress(_tar_bytes(info_entries + pkg_entries, mtime), 9))
        return out
    if fmt != "conda":
        raise ValueError(f"unknown package format {fmt!r}")
    out = out_dir / f"{stem}.conda"
    zc = zstandard.ZstdCompressor(level=19, write_content_size=True, threads=0)
    members = [
        ("metadata.json", json.dumps({"conda_pkg_format_version": 2}).encode()),
        (f"pkg-{stem}.tar.zst", zc.compress(_tar_bytes(pkg_entries, mtime))),
        (f"info-{stem}.tar.zst", zc.compress(_tar_bytes(info_entries, mtime))),
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for member, data in members:
            zi = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.create_system = 3
            zf.writestr(zi, data)
    out.write_bytes(buf.getvalue())
    return out


def read_index_json(pkg: Path) -> dict:
    """``info/index.json`` of a package file (also of .conda files re-zipped under a directory)."""
    pkg = Path(pkg)
    if pkg.name.endswith(".conda"):
        with zipfile.ZipFile(pkg) as zf:
            infos = [n for n in zf.namelist() if n.rsplit("/", 1)[-1].startswith("info-") and n.endswith(".tar.zst")]
            raw = zstandard.ZstdDecompressor().decompress(zf.read(infos[0]), max_output_size=1 << 30)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
            f = tar.extractfile("info/index.json")
            assert f is not None
            return json.load(f)
    for tar, member in stream_conda_info(pkg):
        if member.name == "info/index.json":
            f = tar.extractfile(member)
            assert f is not None
            return json.load(f)
    raise ValueError(f"{pkg}: no info/index.json")


def index_channel(channel_dir: Path) -> None:
    """Write ``<subdir>/repodata.json`` and ``repodata.json.zst`` for every subdir holding packages."""
    channel_dir = Path(channel_dir)
    subdirs = {p.parent for p in channel_dir.glob("*/*") if p.name.endswith((".conda", ".tar.bz2"))}
    subdirs.add(channel_dir / "noarch")
    for sd in sorted(subdirs):
        sd.mkdir(parents=True, exist_ok=True)
        repodata: dict[str, object] = {
            "info": {"subdir": sd.name},
            "packages": {},
            "packages.conda": {},
            "removed": [],
            "repodata_version": 1,
        }
        for pkg in sorted(sd.iterdir()):
            if not pkg.name.endswith((".conda", ".tar.bz2")):
                continue
            data = pkg.read_bytes()
            rec = read_index_json(pkg)
            rec = {k: v for k, v in rec.items() if v is not None}
            rec.setdefault("subdir", sd.name)
            rec["md5"] = hashlib.md5(data).hexdigest()
            rec["sha256"] = hashlib.sha256(data).hexdigest()
            rec["size"] = len(data)
            key = "packages.conda" if pkg.name.endswith(".conda") else "packages"
            repodata[key][pkg.name] = rec  # type: ignore[index]
        text = json.dumps(repodata, indent=1, sort_keys=True) + "\n"
        (sd / "repodata.json").write_text(text)
        (sd / "repodata.json.zst").write_bytes(zstandard.ZstdCompressor(level=19, write_content_size=True).compress(text.encode()))
