"""Unpack conda package files (``.conda`` and ``.tar.bz2``) into the shared cache, and read their ``info/`` metadata.

Package archives come from the network, so extraction trusts nothing: member names must stay inside the package,
links must point inside it, and only regular files, directories and links are accepted. An extracted directory
appears atomically (built next to its final place, then renamed) and is trusted only when its marker file, written
last, exists; several builds can extract the same package at once.
"""

from __future__ import annotations

import bz2
import io
import json
import os
import posixpath
import re
import shlex
import shutil
import tarfile
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from ..cache import file_lock, hold
from ..cache_verify import file_digests, tree_manifest, verify_tree
from ..errors import PackageError
from ..payload_names import refused_payload_path

#: Written last into an extracted package dir: the manifest of every file as extracted (see cache_verify). A dir
#: without it is unfinished, one whose files no longer match it is damaged; neither is ever used.
MARKER = ".oci-conda-extracted"

#: The placeholder old conda-build wrote into ``info/has_prefix`` lines that name only a path.
DEFAULT_PLACEHOLDER = "/opt/anaconda1anaconda2anaconda3"

_READ_SIZE = 1 << 20
#: Packages are decompressed in chunks of this size: tarfile reads its stream 10 KiB at a time, and a decompressor
#: called that often spent more time in Python calls than in decompressing.
_DECOMPRESS_CHUNK = 1 << 20

#: Decompression-bomb limits: a package may unpack to at most max(ratio x its file size, floor) bytes and never more
#: than the absolute cap. Environment overrides: OCI_CONDA_MAX_UNPACK_RATIO, OCI_CONDA_MAX_UNPACKED_SIZE (bytes).
MAX_UNPACK_RATIO = 200
MIN_UNPACK_CAP = 256 << 20
MAX_UNPACKED_SIZE = 32 << 30


def unpack_limit(pkg_size: int) -> int:
    """How many bytes of tar stream a package of ``pkg_size`` bytes may unpack to."""

    def env_int(name: str, default: int) -> int:
        v = os.environ.get(name, "").strip()
        if not v:
            return default
        try:
            n = int(v)
        except ValueError:
            raise PackageError(f"{name} must be a whole number, got {v!r}") from None
        if n <= 0:
            raise PackageError(f"{name} must be positive, got {n}")
        return n

    ratio = env_int("OCI_CONDA_MAX_UNPACK_RATIO", MAX_UNPACK_RATIO)
    cap = env_int("OCI_CONDA_MAX_UNPACKED_SIZE", MAX_UNPACKED_SIZE)
    return min(cap, max(ratio * pkg_size, min(MIN_UNPACK_CAP, cap)))


@dataclass(frozen=True)
class PathEntry:
    """One entry of a package's file manifest (``info/paths.json``, or rebuilt from the legacy files)."""

    path: str
    path_type: str  # "hardlink" | "softlink" | "directory"
    file_mode: str | None = None  # "text" | "binary"
    prefix_placeholder: str | None = None
    sha256: str | None = None
    size: int | None = None
    no_link: bool = False


# ---------------------------------------------------------------------------------------------------------------
# extraction


def extract_package(pkg_file: Path, dest_root: Path, key: str | None = None, *, label: str | None = None) -> Path:
    """Unpack ``pkg_file`` into a directory under ``dest_root`` once; return that dir (``info/`` + payload).

    The directory is named by the package file's sha256 (plus a readable name from ``label`` or ``key``), so two
    packages with the same file name from different channels never share an entry. An existing entry is used only
    after :func:`oci_conda.cache_verify.verify_tree` found it unchanged since extraction; a damaged or unfinished
    one is removed and extracted again. Safe against concurrent builds sharing ``dest_root`` and against hostile
    archives (PackageError). ``label`` names the package in error messages (e.g. its ``fn``).
    """
    pkg_file = Path(pkg_file)
    dest_root = Path(dest_root)
    name = label or pkg_file.name
    try:
        digest = file_digests(pkg_file, remember=False).sha256
    except OSError as e:
        raise PackageError(f"{name}: cannot read package file: {e.strerror or e}") from None
    entry = f"{digest}-{_readable(label or key or pkg_file.name)}"
    final = dest_root / entry
    if _usable(final):
        return final
    dest_root.mkdir(parents=True, exist_ok=True)
    with file_lock(dest_root / f".{entry}.lock"):
        if _usable(final):  # another build finished it while we waited
            return final
        tmp = Path(tempfile.mkdtemp(prefix=f".{entry}.", suffix=".tmp", dir=dest_root))
        held = hold(tmp)  # a sweep by another build leaves it alone while we live
        try:
            os.chmod(tmp, 0o755)
            _extract_all(pkg_file, tmp, name)
            manifest = tree_manifest(tmp)
            _verify_manifest(tmp, manifest, name)
            with open(tmp / MARKER, "wb") as f:  # written last: its presence says "complete"
                f.write(json.dumps({"package_sha256": digest, **manifest}, sort_keys=True).encode())
            if final.exists() or final.is_symlink():  # unfinished or damaged: never used, replaced
                _discard(final, dest_root)
            os.rename(tmp, final)
        except BaseException:
            _rmtree(tmp)
            raise
        finally:
            os.close(held)
    return final


def _readable(text: str) -> str:
    """A file-name-safe, bounded rendering of a package's name for its cache directory (the digest is the key)."""
    for ext in (".conda", ".tar.bz2"):
        text = text.removesuffix(ext)
    text = re.sub(r"[^A-Za-z0-9._+-]", "_", text).lstrip(".")[:100]
    return text or "package"


def _usable(final: Path) -> bool:
    """``final`` is a complete extraction whose every file is still what was extracted."""
    try:
        manifest = json.loads((final / MARKER).read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    return verify_tree(final, manifest) is None


def _discard(path: Path, dest_root: Path) -> None:
    """Move a bad entry out of the way first (readers see it vanish at once), then delete it."""
    aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=dest_root))
    held = hold(aside)
    try:
        os.rename(path, aside / "old")
        _rmtree(aside)
    finally:
        os.close(held)


def _rmtree(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.exists():
        shutil.rmtree(path)


def _package_format(pkg_file: Path, name: str) -> str:
    if pkg_file.name.endswith(".conda"):
        return "conda"
    if pkg_file.name.endswith(".tar.bz2"):
        return "tar.bz2"
    try:  # cache files may be named by digest only: look at the magic bytes
        with open(pkg_file, "rb") as f:
            head = f.read(4)
    except OSError as e:
        raise PackageError(f"{name}: cannot read package file: {e.strerror}") from None
    if head.startswith(b"PK\x03\x04"):
        return "conda"
    if head.startswith(b"BZh"):
        return "tar.bz2"
    raise PackageError(f"{name}: not a conda package (neither .conda nor .tar.bz2)")


class _Budget:
    """Counts the bytes every tar stream of one package unpacks to; over the limit is a decompression bomb."""

    def __init__(self, limit: int):
        self.limit = limit
        self.used = 0

    def refuse(self, what: str) -> PackageError:
        return PackageError(f"{what} unpacks to more than {self.limit} bytes, the limit for this package "
                            f"(set OCI_CONDA_MAX_UNPACK_RATIO / OCI_CONDA_MAX_UNPACKED_SIZE to allow more)")


class _Counted:
    """A read-only stream that charges what it returns to a :class:`_Budget`."""

    def __init__(self, raw: Any, budget: _Budget, where: str):
        self.raw = raw
        self.budget = budget
        self.where = where

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self.budget.limit - self.budget.used + 1
        data = self.raw.read(min(n, self.budget.limit - self.budget.used + 1))
        self.budget.used += len(data)
        if self.budget.used > self.budget.limit:
            raise self.budget.refuse(f"{self.where}: the archive")
        return data

    def close(self) -> None:
        self.raw.close()


def _tar_streams(pkg_file: Path, name: str,
                 budget: _Budget) -> Iterator[tuple[str, Iterator[tuple[tarfile.TarFile, tarfile.TarInfo]]]]:
    """Yield ``(where, member stream)`` for every tarball inside the package (info first for ``.conda``)."""
    from conda_package_streaming import package_streaming

    fmt = _package_format(pkg_file, name)
    if fmt == "tar.bz2":
        raw = io.BufferedReader(bz2.open(pkg_file, "rb"), _DECOMPRESS_CHUNK)  # type: ignore[arg-type]
        yield name, package_streaming.tar_generator(_Counted(raw, budget, name), closefd=True)
        return
    if package_streaming.zstd is None:  # pragma: no cover - conda-package-streaming always ships it on 3.11
        raise PackageError(f"{name}: no zstd support to read .conda packages")
    with zipfile.ZipFile(pkg_file) as zf:
        # Find the two inner tarballs by their base name: some real archives were re-zipped under a directory.
        found: dict[str, zipfile.ZipInfo] = {}
        seen: set[str] = set()
        for zi in zf.infolist():
            if zi.filename in seen:
                raise PackageError(f"{name}: zip member {zi.filename!r} appears twice")
            seen.add(zi.filename)
            if zi.is_dir():
                continue
            base = zi.filename.rsplit("/", 1)[-1]
            comp = next((c for c in ("info", "pkg") if base.startswith(c + "-") and base.endswith(".tar.zst")), None)
            if comp is None:
                if base == "metadata.json":
                    comp = "metadata"
                else:
                    raise PackageError(f"{name}: unexpected zip member {zi.filename!r} (a .conda holds metadata.json, "
                                       "info-*.tar.zst and pkg-*.tar.zst only)")
            if comp in found:
                raise PackageError(f"{name}: two {comp} members ({found[comp].filename!r}, {zi.filename!r})")
            found[comp] = zi
        if "info" not in found:
            raise PackageError(f"{name}: no info-*.tar.zst member (not a .conda package)")
        if "pkg" not in found:
            raise PackageError(f"{name}: no pkg-*.tar.zst member (the package's files are missing)")
        for comp in ("info", "pkg"):
            where = f"{name}:{found[comp].filename}"
            raw = io.BufferedReader(package_streaming.zstd.open(zf.open(found[comp])), _DECOMPRESS_CHUNK)
            reader = _Counted(raw, budget, where)
            yield where, package_streaming.tar_generator(reader, closefd=True)


def package_members(pkg_file: Path, name: str) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
    """Every member of every tarball inside the package as ``(where, tar, member)``, in archive order (``info/``
    first for ``.conda``), charged to the package's decompression-bomb budget; a corrupt archive is a PackageError.

    Member names are not checked here: a reader checks each as extraction does (:func:`checked_member_name`)."""
    where = name
    try:
        size = os.stat(pkg_file).st_size
    except OSError as e:
        raise PackageError(f"{name}: cannot read package file: {e.strerror}") from None
    budget = _Budget(unpack_limit(size))
    try:
        for where, stream in _tar_streams(pkg_file, name, budget):
            for tar, member in stream:
                if member.isreg() and budget.used + member.size > budget.limit:
                    raise budget.refuse(f"{where}: member {member.name!r} ({member.size} bytes)")
                yield where, tar, member
    except PackageError:
        raise
    except (tarfile.TarError, zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, UnicodeDecodeError) as e:
        raise PackageError(f"{where}: corrupt package archive ({type(e).__name__}: {e})") from None
    except OSError as e:
        # bz2/zstd report corrupt streams as OSError (or a subclass of it)
        if e.filename:  # a real file-system problem, not corrupt data
            raise
        raise PackageError(f"{where}: corrupt package archive ({type(e).__name__}: {e})") from None
    except Exception as e:
        if type(e).__name__ == "ZstdError":  # not an OSError in every zstd backend
            raise PackageError(f"{where}: corrupt package archive ({e})") from None
        raise


def checked_member_name(member: tarfile.TarInfo, where: str) -> str:
    """The member's name as a clean relative path, or PackageError: absolute, outside the package, not UTF-8,
    or a name no package may write (see payload_names)."""
    rel = _safe_name(member.name, where)
    why = refused_payload_path(rel)
    if why is not None:
        raise PackageError(f"{where}: member {member.name!r} {why}")
    return rel


def _extract_all(pkg_file: Path, root: Path, name: str) -> None:
    ex = _Extractor(root)
    for where, tar, member in package_members(pkg_file, name):
        ex.member(tar, member, where)


def _verify_manifest(root: Path, manifest: dict, name: str) -> None:
    """Every regular file ``info/paths.json`` lists exists in the archive with the recorded size and sha256."""
    try:
        with open(root / "info" / "paths.json", "rb") as f:
            doc = json.load(f)
    except (FileNotFoundError, NotADirectoryError):
        return
    except (ValueError, UnicodeDecodeError, RecursionError) as e:
        raise PackageError(f"{name}: info/paths.json is not valid JSON ({e})") from None
    paths = doc.get("paths") if isinstance(doc, dict) else None
    if not isinstance(paths, list):
        raise PackageError(f"{name}: info/paths.json has no 'paths' list")
    for raw in paths:
        if not isinstance(raw, dict):
            raise PackageError(f"{name}: info/paths.json has a non-object entry")
        if (raw.get("path_type") or "hardlink") != "hardlink":
            continue
        rel = _check_rel(raw.get("_path"), name, "info/paths.json")
        entry = manifest["files"].get(rel)
        if entry is None:
            raise PackageError(f"{name}: member {rel!r} is listed in info/paths.json but is not a file in the archive")
        got_sha, got_size = entry[0], entry[1]
        size, sha = raw.get("size_in_bytes"), raw.get("sha256")
        if size is not None and (not isinstance(size, int) or isinstance(size, bool) or got_size != size):
            raise PackageError(f"{name}: member {rel!r} has {got_size} bytes, info/paths.json says {size!r}")
        if sha is not None and (not isinstance(sha, str) or got_sha != sha.lower()):
            raise PackageError(f"{name}: member {rel!r} has sha256 {got_sha}, info/paths.json says {sha!r}")


def _safe_name(name: str, where: str) -> str:
    """The member name as a clean relative path, or PackageError."""
    if name.startswith("/") or re.match(r"^[A-Za-z]:[/\\]", name):
        raise PackageError(f"{where}: member {name!r} has an absolute path")
    if "\0" in name:
        raise PackageError(f"{where}: member {name!r} has a NUL byte in its name")
    if not _utf8(name):
        raise PackageError(f"{where}: member {name!r} has a name that is not valid UTF-8")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise PackageError(f"{where}: member {name!r} points outside the package ('..')")
    if not parts:
        raise PackageError(f"{where}: member {name!r} has an empty name")
    return "/".join(parts)


def _utf8(name: str) -> bool:
    try:  # tarfile decodes undecodable bytes to lone surrogates, which no UTF-8 encoder accepts
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _Extractor:
    """Writes members under ``root``; remembers parent dirs already proven to lie inside it."""

    def __init__(self, root: Path):
        self.root = root
        self.real_root = os.path.realpath(root)
        self.good_dirs: set[str] = {""}

    def _parent(self, rel: str, where: str, member: str) -> Path:
        parent_rel = rel.rpartition("/")[0]
        if parent_rel not in self.good_dirs:
            cur = self.root
            for part in parent_rel.split("/"):
                cur = cur / part
                if cur.is_symlink():
                    # never create a directory through a link before knowing where the link leads
                    if not _inside(os.path.realpath(cur), self.real_root):
                        raise PackageError(
                            f"{where}: member {member!r} is written through a link leading outside the package")
                    continue
                if not cur.exists():
                    os.mkdir(cur)
                    os.chmod(cur, 0o755)
                elif not cur.is_dir():
                    raise PackageError(f"{where}: member {member!r} needs {part!r} to be a directory, not a file")
            if not _inside(os.path.realpath(self.root / parent_rel), self.real_root):
                raise PackageError(f"{where}: member {member!r} is written through a link leading outside the package")
            self.good_dirs.add(parent_rel)
        return self.root / rel

    def _forget(self, rel: str) -> None:
        """A link now sits at ``rel``: dirs must be proven again. All of them, not just those below ``rel``: a new
        link can change where an older link leads (``w -> u/..`` then ``u -> .`` makes ``w`` the parent dir)."""
        self.good_dirs = {""}

    @staticmethod
    def _clear(dest: Path, where: str, member: str) -> None:
        # a later member with the same name replaces the earlier one, as tar does
        if dest.is_symlink() or dest.is_file():
            dest.unlink()
        elif dest.is_dir():
            raise PackageError(f"{where}: member {member!r} would replace a directory")

    def member(self, tar: tarfile.TarFile, m: tarfile.TarInfo, where: str) -> None:
        rel = checked_member_name(m, where)
        if m.isreg():
            dest = self._parent(rel, where, m.name)
            self._clear(dest, where, m.name)
            src = tar.extractfile(m)
            assert src is not None
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(src, out, _READ_SIZE)
            os.chmod(dest, 0o755 if m.mode & 0o111 else 0o644)
        elif m.isdir():
            dest = self._parent(rel, where, m.name)
            if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
                raise PackageError(f"{where}: directory member {m.name!r} collides with a file or link")
            if not dest.exists():
                os.mkdir(dest)
            os.chmod(dest, 0o755)
        elif m.issym():
            target = m.linkname
            if not target:
                raise PackageError(f"{where}: symlink {m.name!r} has an empty target")
            if not _utf8(target) or "\0" in target:
                raise PackageError(f"{where}: symlink {m.name!r} has a target that is not valid UTF-8: {target!r}")
            if target.startswith("/"):
                raise PackageError(f"{where}: symlink {m.name!r} points to absolute path {target!r} outside the package")
            resolved = posixpath.normpath(posixpath.join(posixpath.dirname(rel), target))
            if resolved == ".." or resolved.startswith("../"):
                raise PackageError(f"{where}: symlink {m.name!r} -> {target!r} points outside the package")
            dest = self._parent(rel, where, m.name)
            self._clear(dest, where, m.name)
            os.symlink(target, dest)
            self._forget(rel)
            if not _inside(os.path.realpath(dest), self.real_root):
                dest.unlink()
                raise PackageError(f"{where}: symlink {m.name!r} -> {target!r} points outside the package")
        elif m.islnk():
            target_rel = _safe_name(m.linkname, where) if m.linkname else ""
            if not target_rel:
                raise PackageError(f"{where}: hardlink {m.name!r} has an empty target")
            src_path = self.root / target_rel
            if (
                not _inside(os.path.realpath(src_path), self.real_root)
                or src_path.is_symlink()
                or not src_path.is_file()
            ):
                raise PackageError(f"{where}: hardlink {m.name!r} -> {m.linkname!r} does not name a file of the package")
            dest = self._parent(rel, where, m.name)
            self._clear(dest, where, m.name)
            shutil.copyfile(src_path, dest, follow_symlinks=False)
            os.chmod(dest, 0o755 if os.stat(src_path).st_mode & 0o111 else 0o644)
        else:
            kind = {tarfile.CHRTYPE: "character device", tarfile.BLKTYPE: "block device", tarfile.FIFOTYPE: "FIFO"}.get(
                m.type, f"tar entry of type {m.type!r}"
            )
            raise PackageError(f"{where}: member {m.name!r} is a {kind}; only files, directories and links are allowed")


# ---------------------------------------------------------------------------------------------------------------
# metadata


def package_label(pkg_dir: Path) -> str:
    """How messages name an extracted package: its directory name without the leading content digest."""
    name = Path(pkg_dir).name
    m = re.match(r"^[0-9a-f]{64}-(.+)$", name)
    return m.group(1) if m else name


#: The shortest prefix placeholder accepted. conda-build's shortest ever (the legacy default
#: ``/opt/anaconda1anaconda2anaconda3``) has 32 characters, its modern one 255. A short placeholder is not a
#: placeholder but a common string: ``/`` or ``/usr/lib`` occurs in unrelated bytes, so rewriting it corrupts the
#: file and can multiply its size (an empty one inserts the prefix between every byte). 16 leaves room for
#: hand-made packages while ruling out every short system path.
MIN_PLACEHOLDER_LENGTH = 16
MAX_PLACEHOLDER_LENGTH = 4096  # PATH_MAX: nothing longer is a path


def check_placeholder(placeholder: object, pkg: str, where: str) -> str:
    """``placeholder`` if it can be a build prefix to rewrite (an absolute path of sane length), else PackageError."""
    if not isinstance(placeholder, str) or not placeholder:
        raise PackageError(f"{pkg}: {where}: prefix placeholder {placeholder!r} is empty or not a string")
    if len(placeholder) < MIN_PLACEHOLDER_LENGTH or len(placeholder) > MAX_PLACEHOLDER_LENGTH:
        shown = placeholder if len(placeholder) < 80 else placeholder[:40] + "..."
        raise PackageError(f"{pkg}: {where}: prefix placeholder {shown!r} has {len(placeholder)} characters; a build "
                           f"prefix has {MIN_PLACEHOLDER_LENGTH} to {MAX_PLACEHOLDER_LENGTH}")
    if not placeholder.startswith("/") or any(c in placeholder for c in "\0\n\r"):
        raise PackageError(f"{pkg}: {where}: prefix placeholder {placeholder[:80]!r} is not an absolute path")
    return placeholder


def _load_json(pkg_dir: Path, rel: str) -> Any:
    p = Path(pkg_dir) / rel
    try:
        with open(p, "rb") as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (ValueError, UnicodeDecodeError) as e:
        raise PackageError(f"{package_label(pkg_dir)}: {rel} is not valid JSON ({e})") from None


def read_index(pkg_dir: Path) -> dict:
    """``info/index.json``: the package's own idea of its name, version, build, depends ..."""
    return parse_index(_load_json(pkg_dir, "info/index.json"), package_label(pkg_dir))


def parse_index(d: object, pkg: str) -> dict:
    """``info/index.json`` (already decoded, None when absent) checked to be an object."""
    if not isinstance(d, dict):
        raise PackageError(f"{pkg}: info/index.json is missing or not an object")
    return d


def read_link_json(pkg_dir: Path) -> dict | None:
    """``info/link.json`` (noarch type and entry points), falling back to the older names of the same file."""
    return parse_link_json(lambda rel: _load_json(pkg_dir, rel), package_label(pkg_dir))


#: Where a package keeps its noarch type and entry points, newest name first.
LINK_JSON_NAMES = ("info/link.json", "info/package_metadata.json", "info/noarch.json")


def parse_link_json(load: Callable[[str], object], pkg: str) -> dict | None:
    """The first of :data:`LINK_JSON_NAMES` that ``load`` finds (decoded; None when absent), as ``link.json``."""
    for rel in LINK_JSON_NAMES:
        d = load(rel)
        if d is None:
            continue
        if not isinstance(d, dict):
            raise PackageError(f"{pkg}: {rel} is not an object")
        if rel == "info/noarch.json":  # very old: the noarch section itself
            return {"noarch": d, "package_metadata_version": 1}
        return d
    return None


def _check_rel(path: str, pkg: str, what: str) -> str:
    if not isinstance(path, str) or not path or path.startswith("/") or "\0" in path:
        raise PackageError(f"{pkg}: {what} lists invalid path {path!r}")
    parts = [p for p in path.split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise PackageError(f"{pkg}: {what} lists path {path!r} outside the prefix")
    rel = "/".join(parts)
    why = refused_payload_path(rel)
    if why is not None:
        raise PackageError(f"{pkg}: {what} lists path {rel!r}, which {why}")
    return rel


def read_paths(pkg_dir: Path) -> list[PathEntry]:
    """The package's file manifest: ``info/paths.json``, or the legacy ``info/files`` + ``has_prefix`` + ``no_link``."""
    pkg_dir = Path(pkg_dir)
    pkg = package_label(pkg_dir)
    pj = _load_json(pkg_dir, "info/paths.json")
    if pj is not None:
        return parse_paths(pj, pkg)

    files_txt = pkg_dir / "info" / "files"
    if not files_txt.is_file():
        raise PackageError(f"{pkg}: neither info/paths.json nor info/files exists")
    files = [_check_rel(line.strip(), pkg, "info/files") for line in _read_lines(files_txt) if line.strip()]
    prefixes = read_has_prefix(pkg_dir)
    no_link_file = pkg_dir / "info" / "no_link"
    no_link = set()
    if no_link_file.is_file():
        no_link = {_check_rel(line.strip(), pkg, "info/no_link") for line in _read_lines(no_link_file) if line.strip()}
    out = []
    for f in files:
        p = pkg_dir / f
        path_type = "softlink" if p.is_symlink() else ("directory" if p.is_dir() else "hardlink")
        placeholder, mode = prefixes.get(f, (None, None))
        out.append(PathEntry(path=f, path_type=path_type, file_mode=mode, prefix_placeholder=placeholder, no_link=f in no_link))
    return out


def parse_paths(pj: object, pkg: str) -> list[PathEntry]:
    """``info/paths.json`` (already decoded) as checked entries; ``pkg`` names the package in errors."""
    if not isinstance(pj, dict) or not isinstance(pj.get("paths"), list):
        raise PackageError(f"{pkg}: info/paths.json has no 'paths' list")
    out = []
    for raw in pj["paths"]:
        if not isinstance(raw, dict):
            raise PackageError(f"{pkg}: info/paths.json has a non-object entry")
        path = _check_rel(raw.get("_path"), pkg, "info/paths.json")
        path_type = raw.get("path_type") or "hardlink"
        if path_type not in ("hardlink", "softlink", "directory"):
            raise PackageError(f"{pkg}: info/paths.json: {path} has unsupported path_type {path_type!r}")
        placeholder, mode = raw.get("prefix_placeholder"), raw.get("file_mode")
        if mode is not None and mode not in ("text", "binary"):
            raise PackageError(f"{pkg}: info/paths.json: {path} has unknown file_mode {mode!r}")
        if (placeholder is None) != (mode is None):
            raise PackageError(f"{pkg}: info/paths.json: {path} has "
                               + ("a file_mode but no prefix_placeholder" if placeholder is None
                                  else "a prefix_placeholder but no file_mode"))
        if placeholder is not None:
            if path_type != "hardlink":
                raise PackageError(f"{pkg}: info/paths.json: {path} is a {path_type} with a prefix placeholder")
            check_placeholder(placeholder, pkg, f"info/paths.json: {path}")
        out.append(
            PathEntry(
                path=path,
                path_type=path_type,
                file_mode=mode if placeholder else None,
                prefix_placeholder=placeholder,
                sha256=raw.get("sha256"),
                size=raw.get("size_in_bytes"),
                no_link=bool(raw.get("no_link")),
            )
        )
    return out


def _read_lines(p: Path) -> list[str]:
    return p.read_text(encoding="utf-8", errors="surrogateescape").splitlines()


def read_has_prefix(pkg_dir: Path) -> dict[str, tuple[str, str]]:
    """``info/has_prefix`` as ``{path: (placeholder, mode)}``; a bare path means the default placeholder, text mode."""
    p = Path(pkg_dir) / "info" / "has_prefix"
    if not p.is_file():
        return {}
    out: dict[str, tuple[str, str]] = {}
    for n, line in enumerate(_read_lines(p), 1):
        if not line.strip():
            # conda skips blank lines, but conda-pack (which re-reads this file) cannot: refuse rather than crash
            raise PackageError(f"{package_label(pkg_dir)}: info/has_prefix line {n} is empty")
        try:
            parts = [x.strip("\"'") for x in shlex.split(line, posix=False)]
        except ValueError:
            parts = []
        if len(parts) == 1:
            placeholder, mode, path = DEFAULT_PLACEHOLDER, "text", parts[0]
        elif len(parts) == 3:
            placeholder, mode, path = parts
        else:
            raise PackageError(f"{package_label(pkg_dir)}: info/has_prefix line {n} is not 'placeholder mode path': {line!r}")
        if mode not in ("text", "binary"):
            raise PackageError(f"{package_label(pkg_dir)}: info/has_prefix line {n} has unknown mode {mode!r}")
        check_placeholder(placeholder, package_label(pkg_dir), f"info/has_prefix line {n}")
        out[_check_rel(path, package_label(pkg_dir), "info/has_prefix")] = (placeholder, mode)
    return out
