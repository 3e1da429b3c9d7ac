"""install(): the staged prefix must be what a real installer makes of the same packages.

The oracle is rattler (py-rattler, an independent installer used by pixi): the same records are installed by it and
by us into two prefixes, with our target prefix equal to rattler's prefix path so file contents are comparable.
Documented differences, and only these, are ignored:

* ``conda-meta/`` contents (both write one ``<dist>.json`` per package and a ``history``; fields differ),
* ``CACHEDIR.TAG``, which rattler drops into the prefix root,
* entry-point scripts of noarch: python packages: rattler indents the body with a tab, conda (and we) with four
  spaces; they are compared with tabs expanded,
* shebangs longer than 127 characters after prefix replacement in package text files: conda (and we) rewrite
  them to ``#!/usr/bin/env <exe> <options>``; rattler writes a two-line ``#!/bin/sh`` + ``'''exec' "<exe>" ...``
  header instead. Compared by mapping rattler's header to conda's form (same executable name and options).
  (For the entry points we generate, conda itself uses the ``'''exec'`` header, and so do we: no difference.)
* ``.pyc`` files / ``__pycache__`` (neither side compiles here; ignored to be safe).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import shutil
import stat
import sys
import tarfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pkgbuilder import (  # noqa: E402
    LONG_PLACEHOLDER,
    SHORT_PLACEHOLDER,
    Executable,
    Hardlink,
    Symlink,
    build_package,
    index_channel,
    read_index_json,
)

from oci_conda.conda.install import install, replace_binary_prefix, replace_text_prefix  # noqa: E402
from oci_conda.conda.package import extract_package, read_paths  # noqa: E402
from oci_conda.conda.records import PackageRecord  # noqa: E402
from oci_conda.errors import InstallError, PackageError  # noqa: E402


def _rattler():
    """py-rattler, the test-only oracle (tests that need it skip without it)."""
    return pytest.importorskip("rattler")

P = LONG_PLACEHOLDER


# ---------------------------------------------------------------------------------------------------------------
# helpers


def tree(prefix: Path) -> dict[str, tuple]:
    """Every path under ``prefix`` (minus the documented differences) -> what it is."""
    out: dict[str, tuple] = {}
    for root, dirs, files in os.walk(prefix):
        rel_root = os.path.relpath(root, prefix)
        for name in dirs + files:
            rel = os.path.normpath(os.path.join(rel_root, name))
            if rel.split("/")[0] == "conda-meta" or rel == "CACHEDIR.TAG" or "__pycache__" in rel or rel.endswith(".pyc"):
                continue
            p = Path(root) / name
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("link", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                out[rel] = ("dir",)
            elif stat.S_ISREG(st.st_mode):
                out[rel] = ("file", bool(st.st_mode & 0o100), p.read_bytes())
            else:
                out[rel] = ("other", st.st_mode)
    return out


def records_from_channel(chan: Path) -> dict[str, tuple[PackageRecord, Path]]:
    """Our records (and package files) for every package of a local channel, read from its repodata."""
    out = {}
    for rd in sorted(chan.glob("*/repodata.json")):
        data = json.loads(rd.read_text())
        subdir = rd.parent.name
        for key in ("packages", "packages.conda"):
            for fn, raw in data.get(key, {}).items():
                rec = PackageRecord.from_repodata(fn, raw, f"file://{chan}", subdir, f"file://{chan}/{subdir}")
                out[fn] = (rec, rd.parent / fn)
    return out


def rattler_records(chan: Path, fns: list[str]) -> list:
    rattler = _rattler()
    recs = []
    for rd in sorted(chan.glob("*/repodata.json")):
        recs += rattler.RepoData.from_path(rd).into_repo_data(rattler.Channel(f"file://{chan}"))
    by_fn = {r.file_name: r for r in recs}
    return [by_fn[fn] for fn in fns]


def rattler_install(chan: Path, fns: list[str], prefix: Path, cache: Path) -> None:
    recs = rattler_records(chan, fns)
    rattler = _rattler()
    asyncio.run(rattler.install(recs, target_prefix=prefix, cache_dir=cache, show_progress=False, execute_link_scripts=False))


def our_install(chan: Path, fns: list[str], staging: Path, target: str, cache: Path, **kw):
    recs = records_from_channel(chan)
    items = []
    for fn in fns:
        rec, f = recs[fn]
        items.append((rec, extract_package(f, cache, (rec.sha256 or fn))))
    return install(items, staging, target, **kw), items


_RATTLER_LONG_SHEBANG = re.compile(rb"""^#!/bin/sh\n'''exec' "[^"]*/([^/"]+)"(.*?) "\$0" "\$@" #'''\n""")


def _conda_long_shebang(data: bytes) -> bytes:
    """rattler's header for an over-long shebang, written the way conda writes it."""
    return _RATTLER_LONG_SHEBANG.sub(lambda m: b"#!/usr/bin/env " + m.group(1) + m.group(2) + b"\n", data, count=1)


def assert_same_tree(ours: Path, theirs: Path) -> None:
    a, b = tree(ours), tree(theirs)
    assert sorted(a) == sorted(b), f"only ours: {sorted(set(a) - set(b))}; only rattler: {sorted(set(b) - set(a))}"
    for rel in sorted(a):
        if a[rel] != b[rel]:
            # the one allowed content difference: tab vs four-space indented entry points
            if a[rel][0] == b[rel][0] == "file" and a[rel][1] == b[rel][1]:
                if a[rel][2] == b[rel][2].replace(b"\t", b"    "):
                    continue
                if a[rel][2].startswith(b"#!/usr/bin/env ") and a[rel][2] == _conda_long_shebang(b[rel][2]):
                    continue
            assert a[rel] == b[rel], rel


def meta_files(prefix: Path) -> list[str]:
    return sorted(p.name for p in (prefix / "conda-meta").glob("*.json"))


def assert_same_meta(ours: Path, theirs: Path) -> None:
    """Same conda-meta/*.json names; per package the same ``files`` and the same (path, type) in ``paths_data``."""
    assert meta_files(ours) == meta_files(theirs)
    for name in meta_files(ours):
        a = json.loads((ours / "conda-meta" / name).read_text())
        b = json.loads((theirs / "conda-meta" / name).read_text())
        assert sorted(a["files"]) == sorted(b["files"]), name
        pa = sorted((p["_path"], p["path_type"]) for p in a["paths_data"]["paths"])
        pb = sorted((p["_path"], p["path_type"]) for p in b["paths_data"]["paths"])
        assert pa == pb, name
        for key in ("name", "version", "build", "build_number", "sha256", "md5", "size", "depends", "subdir", "fn"):
            assert a.get(key) == b.get(key), (name, key)


# ---------------------------------------------------------------------------------------------------------------
# the fixture channel


FIXTURE_FNS = [
    "python-3.11.7-h0_cpython.conda",
    "textbin-1.0-0.conda",
    "gen-2.0-0.tar.bz2",
    "pyfoo-0.1-pyh0.conda",
    "legacy-0.5-0.tar.bz2",
]


def make_fixture_channel(chan: Path) -> Path:
    build_package(
        chan / "linux-64",
        "python",
        "3.11.7",
        build="h0_cpython",
        files={"bin/python3.11": Executable("#!/bin/sh\necho 'not really python'\n"), "bin/python": Symlink("python3.11")},
    )
    binary = (
        b"\x7fELF\x02\x01\x01\0"
        + P.encode() + b"/lib\0"  # one C string
        + b"RPATH=" + P.encode() + b"/lib:" + P.encode() + b"/lib64\0"  # the placeholder twice in one C string
        + b"\x00\x01\x02 unrelated bytes\n\0"
        + P.encode() + b"/share/x\nwith newline\0tail"
    )
    build_package(
        chan / "linux-64",
        "textbin",
        "1.0",
        depends=["python"],
        files={
            "bin/tool": Executable(f"#!{P}/bin/python3.11 -u\nimport sys\nPREFIX = '{P}'\n"),
            "bin/plain": Executable("#!/bin/sh\necho plain\n"),
            "etc/textbin.conf": f"prefix = {P}\nlib = {P}/lib\n# and again {P}\n",
            "lib/libtextbin.so.1.0": binary,
            "lib/libtextbin.so.1": Symlink("libtextbin.so.1.0"),
            "lib/libtextbin.so": Symlink("libtextbin.so.1"),
            "lib/dangling.so": Symlink("does-not-exist.so.9"),
            "lib/textbin": Symlink("../share/textbin"),  # relative link to a directory
            "share/textbin/data.txt": "data\n",
            "share/textbin/empty": b"",
            "share/textbin/copy.txt": Hardlink("share/textbin/data.txt"),
            "share/textbin/deep/a/b/c.txt": "deep\n",
        },
        text_prefix_files=["bin/tool", "etc/textbin.conf"],
        binary_prefix_files=["lib/libtextbin.so.1.0"],
    )
    build_package(
        chan / "noarch",
        "gen",
        "2.0",
        noarch="generic",
        subdir="noarch",
        fmt="tar.bz2",
        files={
            "share/gen/readme.txt": f"installed in {P}\n",
            "share/gen/run.sh": Executable(f"#!/bin/sh\nexec {P}/bin/tool \"$@\"\n"),
            "share/gen/latest": Symlink("readme.txt"),
        },
        text_prefix_files=["share/gen/readme.txt", "share/gen/run.sh"],
    )
    build_package(
        chan / "noarch",
        "pyfoo",
        "0.1",
        build="pyh0",
        noarch="python",
        depends=["python >=3.8"],
        files={
            "site-packages/pyfoo/__init__.py": "def run():\n    return 0\n",
            "site-packages/pyfoo/cli.py": f"PREFIX = '{P}'\ndef main():\n    return 0\n",
            "site-packages/pyfoo-0.1.dist-info/METADATA": "Name: pyfoo\nVersion: 0.1\n",
            "python-scripts/pyfoo-legacy": Executable("#!/usr/bin/env python\nprint('legacy script')\n"),
        },
        text_prefix_files=["site-packages/pyfoo/cli.py"],
        entry_points=["pyfoo = pyfoo.cli:main", "pyfoo-run=pyfoo:run"],
    )
    build_package(
        chan / "linux-64",
        "legacy",
        "0.5",
        fmt="tar.bz2",
        legacy=True,
        placeholder=SHORT_PLACEHOLDER,
        files={
            "bin/legacy-tool": Executable(f"#!{SHORT_PLACEHOLDER}/bin/python3.11\nprint(1)\n"),
            "etc/legacy.conf": f"home={SHORT_PLACEHOLDER}\n",
            "lib/liblegacy.so": Symlink("liblegacy.so.0"),
            "lib/liblegacy.so.0": b"\0\1binary without placeholder",
        },
        text_prefix_files=["bin/legacy-tool", "etc/legacy.conf"],
        # the oldest has_prefix form: a bare path means the default placeholder in text mode
        extra_info={"info/has_prefix": f"{SHORT_PLACEHOLDER} text bin/legacy-tool\netc/legacy.conf\n"},
    )
    index_channel(chan)
    return chan


@pytest.fixture(scope="session")
def fixture_channel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_fixture_channel(tmp_path_factory.mktemp("chan"))


# ---------------------------------------------------------------------------------------------------------------
# the oracle


@pytest.mark.parametrize("long_prefix", [False, True], ids=["short-prefix", "long-prefix"])
def test_oracle_fixture_packages(fixture_channel: Path, tmp_path: Path, long_prefix: bool) -> None:
    """Same records, rattler vs us: every path, type, exec bit, link target and content agrees."""
    base = tmp_path
    if long_prefix:  # > 127 chars: the shebang rewrite rule kicks in, still shorter than the binary placeholder
        base = tmp_path / ("p" * max(1, 140 - len(str(tmp_path))))
    theirs = base / "rattler"
    ours = base / "ours"
    rattler_install(fixture_channel, FIXTURE_FNS, theirs, tmp_path / "rcache")
    report, _ = our_install(fixture_channel, FIXTURE_FNS, ours, str(theirs), tmp_path / "ocache")
    assert_same_tree(ours, theirs)
    assert_same_meta(ours, theirs)
    assert (ours / "conda-meta" / "history").is_file()
    if long_prefix:
        first = (ours / "bin/tool").read_bytes().split(b"\n")[0]
        assert first == b"#!/usr/bin/env python3.11 -u"  # the rewrite happened (and rattler agreed above)
    assert report.warnings == []


def test_fixture_install_details(fixture_channel: Path, tmp_path: Path) -> None:
    """What the oracle cannot see: conda-meta contents and the report."""
    target = "/opt/conda"
    seen: list[str] = []
    report, items = our_install(fixture_channel, FIXTURE_FNS, tmp_path / "s", target, tmp_path / "cache",
                                requested_specs={"pyfoo": "pyfoo", "textbin": "textbin >=1"},
                                progress=lambda r: seen.append(r.fn))
    assert seen == FIXTURE_FNS
    s = tmp_path / "s"
    # binary placeholder: same length, NUL padded, prefix in place
    so = (s / "lib/libtextbin.so.1.0").read_bytes()
    orig = (items[1][1] / "lib/libtextbin.so.1.0").read_bytes()
    assert len(so) == len(orig) and P.encode() not in so
    assert b"RPATH=/opt/conda/lib:/opt/conda/lib64\0" in so
    # noarch python layout + entry point form
    ep = (s / "bin/pyfoo").read_text()
    assert ep.startswith("#!/opt/conda/bin/python3.11\n") and "from pyfoo.cli import main" in ep
    assert os.stat(s / "bin/pyfoo").st_mode & 0o777 == 0o755
    assert (s / "lib/python3.11/site-packages/pyfoo/cli.py").read_text().startswith("PREFIX = '/opt/conda'")
    assert (s / "bin/pyfoo-legacy").is_file()
    # conda-meta
    meta = json.loads((s / "conda-meta/pyfoo-0.1-pyh0.json").read_text())
    files = sorted(
        ["bin/pyfoo", "bin/pyfoo-run", "bin/pyfoo-legacy"]
        + [f"lib/python3.11/site-packages/{p}" for p in ("pyfoo/__init__.py", "pyfoo/cli.py", "pyfoo-0.1.dist-info/METADATA")]
    )
    assert meta["files"] == files == report.files_by_package["pyfoo-0.1-pyh0"]
    assert [p["_path"] for p in meta["paths_data"]["paths"]] == files
    assert meta["link"] == {"source": str(items[3][1]), "type": 1}
    assert meta["noarch"] == "python" and meta["requested_spec"] == "pyfoo"
    assert meta["sha256"] == items[3][0].sha256 and meta["fn"] == "pyfoo-0.1-pyh0.conda"
    for name in ("depends", "constrains", "md5", "size", "timestamp", "channel", "url", "subdir", "license", "build_number"):
        assert name in meta
    tb = json.loads((s / "conda-meta/textbin-1.0-0.json").read_text())
    by_path = {p["_path"]: p for p in tb["paths_data"]["paths"]}
    assert by_path["lib/libtextbin.so.1.0"]["file_mode"] == "binary"
    assert by_path["lib/libtextbin.so.1.0"]["prefix_placeholder"] == P
    assert by_path["lib/libtextbin.so"]["path_type"] == "softlink"
    # every file conda-meta claims exists (conda-pack's check), and every staged path is claimed by someone
    claimed = {f for fs in report.files_by_package.values() for f in fs}
    for f in claimed:
        assert os.path.lexists(s / f), f
    staged = {rel for rel, what in tree(s).items() if what[0] != "dir"}
    assert staged == claimed
    hist = (s / "conda-meta/history").read_text().splitlines()
    assert hist[0].startswith("==> ") and f"+file://{fixture_channel}/noarch::pyfoo-0.1-pyh0" in hist
    assert report.post_link_scripts == []


def test_deterministic_regardless_of_umask(fixture_channel: Path, tmp_path: Path) -> None:
    snapshots = []
    for i, umask in enumerate((0o022, 0o077)):
        old = os.umask(umask)
        try:
            our_install(fixture_channel, FIXTURE_FNS, tmp_path / f"s{i}", "/opt/conda", tmp_path / f"cache{i}")
        finally:
            os.umask(old)
        snap = {}
        for root, dirs, files in os.walk(tmp_path / f"s{i}"):
            for n in dirs + files:
                p = Path(root) / n
                rel = str(p.relative_to(tmp_path / f"s{i}"))
                st = os.lstat(p)
                data = p.read_bytes() if stat.S_ISREG(st.st_mode) else os.readlink(p) if stat.S_ISLNK(st.st_mode) else None
                if rel.startswith("conda-meta/") and data is not None:  # only the link source differs (cache dir)
                    data = data.replace(str(tmp_path / f"cache{i}").encode(), b"CACHE")
                snap[rel] = (stat.S_IMODE(st.st_mode) if not stat.S_ISLNK(st.st_mode) else None, data)
        snapshots.append(snap)
    assert snapshots[0] == snapshots[1]
    modes = {m for m, _ in snapshots[0].values() if m is not None}
    assert modes <= {0o755, 0o644}


def test_conda_pack_accepts_the_prefix(fixture_channel: Path, tmp_path: Path) -> None:
    """conda-pack reads our conda-meta and the extracted packages; what it packs equals what we staged."""
    conda_pack = pytest.importorskip("conda_pack")
    target = "/opt/conda"
    staging = tmp_path / "staging"
    our_install(fixture_channel, FIXTURE_FNS, staging, target, tmp_path / "cache")
    out = tmp_path / "env.tar"
    env = conda_pack.CondaEnv.from_prefix(str(staging))
    env.pack(output=str(out), dest_prefix=target, format="tar", verbose=False)
    staged = tree(staging)
    packed: dict[str, tuple] = {}
    with tarfile.open(out) as tf:
        for m in tf.getmembers():
            name = os.path.normpath(m.name)
            if m.issym():
                packed[name] = ("link", m.linkname)
            elif m.isdir():
                packed[name] = ("dir",)
            elif m.isfile():
                packed[name] = ("file", bool(m.mode & 0o100), tf.extractfile(m).read())  # type: ignore[union-attr]
    # conda-pack adds its activation scripts; it lists directories only when they are empty
    extra = {k for k in packed if k not in staged}
    assert extra <= {"bin/activate", "bin/deactivate", "bin/activate.fish"} | {k for k in packed if k.startswith("conda-meta")}
    for rel, what in staged.items():
        if what[0] == "dir":
            continue
        assert packed.get(rel) == what, rel
    assert any(k.startswith("conda-meta/") and k.endswith(".json") for k in packed)


# ---------------------------------------------------------------------------------------------------------------
# real packages


def _channel_of(tmp: Path, files: list[Path]) -> Path:
    """A local channel holding (symlinks to) real package files, indexed by our indexer."""
    chan = tmp / "realchan"
    for f in files:
        sub = chan / (read_index_json(f).get("subdir") or "linux-64")
        sub.mkdir(parents=True, exist_ok=True)
        os.symlink(f, sub / f.name)
    return chan


def test_oracle_real_conda_forge(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "packages" / "conda-forge-linux-64"
    names = [
        "tk-8.6.13-noxft_h4845f30_101.conda",
        "openssl-3.3.1-h4ab18f5_1.conda",
        "xz-5.2.6-h166bdaf_0.tar.bz2",
        "ncurses-6.5-h59595ed_0.conda",
        "pip-25.3-pyh8b19718_0.conda",
        "wheel-0.45.1-pyhd8ed1ab_1.conda",
    ]
    chan = _channel_of(tmp_path, [src / n for n in names])
    # no real CPython could be collected; a stand-in decides lib/python3.12 for the noarch: python packages
    build_package(chan / "linux-64", "python", "3.12.4", build="h0_cpython", files={"bin/python3.12": Executable("#!/bin/sh\n")})
    index_channel(chan)
    fns = ["python-3.12.4-h0_cpython.conda"] + names
    theirs = tmp_path / "rattler"
    rattler_install(chan, fns, theirs, tmp_path / "rcache")
    report, items = our_install(chan, fns, tmp_path / "ours", str(theirs), tmp_path / "ocache")
    assert_same_tree(tmp_path / "ours", theirs)
    assert_same_meta(tmp_path / "ours", theirs)
    # the packages really had both kinds of placeholders, and all of them were rewritten
    kinds = {e.file_mode for _, d in items for e in read_paths(d) if e.prefix_placeholder}
    assert kinds == {"text", "binary"}
    for _, d in items:
        for e in read_paths(d):
            if e.prefix_placeholder and e.path_type == "hardlink":
                tgt = e.path if not e.path.startswith("site-packages/") else "lib/python3.12/" + e.path
                assert e.prefix_placeholder.encode() not in (tmp_path / "ours" / tgt).read_bytes()
    assert (tmp_path / "ours/bin/pip").read_text().startswith(f"#!{theirs}/bin/python3.12\n")


def test_oracle_real_defaults_2019_tar_bz2(realdata: Path, tmp_path: Path) -> None:
    src = realdata / "packages" / "defaults-linux-64-2019"
    names = [
        "xz-5.2.4-h14c3975_4.tar.bz2",
        "sqlite-3.27.2-h7b6447c_0.tar.bz2",
        "zlib-1.2.11-h7b6447c_3.tar.bz2",
        "readline-7.0-h7b6447c_5.tar.bz2",
        "libedit-3.1.20181209-hc058e9b_0.tar.bz2",
        "yaml-0.1.7-had09818_2.tar.bz2",
    ]
    chan = _channel_of(tmp_path, [src / n for n in names])
    index_channel(chan)
    theirs = tmp_path / "rattler"
    rattler_install(chan, names, theirs, tmp_path / "rcache")
    _, items = our_install(chan, names, tmp_path / "ours", str(theirs), tmp_path / "ocache")
    assert_same_tree(tmp_path / "ours", theirs)
    assert_same_meta(tmp_path / "ours", theirs)


def test_has_prefix_reader_agrees_with_paths_json(realdata: Path, tmp_path: Path) -> None:
    """The legacy reader (files + has_prefix) gives what conda-build recorded in paths.json of the same package."""
    src = realdata / "packages" / "defaults-linux-64-2019"
    checked = 0
    for name in ("xz-5.2.4-h14c3975_4.tar.bz2", "tk-8.6.8-hbc83047_0.tar.bz2", "libedit-3.1.20181209-hc058e9b_0.tar.bz2",
                 "yaml-0.1.7-had09818_2.tar.bz2", "sqlite-3.27.2-h7b6447c_0.tar.bz2"):
        d = extract_package(src / name, tmp_path / "x", name.replace(".tar.bz2", ""))
        modern = read_paths(d)
        legacy_dir = tmp_path / "legacy" / d.name
        shutil.copytree(d, legacy_dir, symlinks=True)
        (legacy_dir / "info/paths.json").unlink()
        old = read_paths(legacy_dir)
        assert [(e.path, e.path_type, e.file_mode, e.prefix_placeholder) for e in old] == [
            (e.path, e.path_type, e.file_mode, e.prefix_placeholder) for e in modern
        ]
        checked += sum(1 for e in modern if e.prefix_placeholder)
    assert checked > 5


def test_synthetic_edge_cases(realdata: Path, tmp_path: Path) -> None:
    """cph_test_data: links to dirs, dangling and ``../`` links that stay inside the prefix are kept as they are."""
    src = realdata / "packages" / "synthetic-edge-cases"
    names = ["cph_test_data-0.0.1-0.tar.bz2"]
    chan = _channel_of(tmp_path, [src / n for n in names])
    index_channel(chan)
    theirs = tmp_path / "rattler"
    rattler_install(chan, names, theirs, tmp_path / "rcache")
    our_install(chan, names, tmp_path / "ours", str(theirs), tmp_path / "ocache")
    assert_same_tree(tmp_path / "ours", theirs)
    ours = tmp_path / "ours"
    assert os.readlink(ours / "lib/terminfo") == "../share/terminfo"
    assert os.readlink(ours / "libexec/greetings") == "../bin/hello"
    assert os.path.islink(ours / "lib/libdangle.lib") and not os.path.exists(ours / "lib/libdangle.lib")


def test_rezipped_conda_is_read(realdata: Path, tmp_path: Path) -> None:
    """A real .conda whose zip holds the inner tarballs under a directory (rattler refuses it; we read it).

    Checked against the package's own manifest: every file of info/paths.json, with its sha256.
    """
    f = realdata / "packages" / "synthetic-edge-cases" / "ca-certificates-2024.7.4-hbcca054_0.conda"
    d = extract_package(f, tmp_path / "x", "cacert")
    rec = PackageRecord(name="ca-certificates", version="2024.7.4", build="hbcca054_0", build_number=0,
                        subdir="linux-64", channel="file:///c", url="file:///c/linux-64/" + f.name, fn=f.name)
    install([(rec, d)], tmp_path / "s", "/opt/conda")
    manifest = json.loads((d / "info/paths.json").read_text())["paths"]
    assert manifest
    for p in manifest:
        data = (tmp_path / "s" / p["_path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == p["sha256"] and len(data) == p["size_in_bytes"]


def test_real_broken_packages_are_refused(realdata: Path, tmp_path: Path) -> None:
    pk = realdata / "packages"
    # repacked by conda's test suite: symlinks with empty targets
    with pytest.raises(PackageError, match=r"zlib-1\.2\.11.*lib/libz\.so"):
        extract_package(pk / "conda-tests-repacked/zlib-1.2.11-h7b6447c_3.conda", tmp_path / "x", "zlib-c")
    # a stub whose info/files lists payload that is not in the archive
    d = extract_package(pk / "synthetic-edge-cases/nano-2.4.1-0.tar.bz2", tmp_path / "x", "nano")
    rec = PackageRecord(name="nano", version="2.4.1", build="0", build_number=0, subdir="linux-64",
                        channel="file:///x", url="file:///x/linux-64/nano-2.4.1-0.tar.bz2", fn="nano-2.4.1-0.tar.bz2")
    with pytest.raises(PackageError, match=r"nano-2\.4\.1-0: bin/nano"):
        install([(rec, d)], tmp_path / "s", "/opt/conda")


# ---------------------------------------------------------------------------------------------------------------
# behaviour a conda user relies on


def _rec(name: str, version: str = "1.0", build: str = "0", **kw) -> PackageRecord:
    kw.setdefault("subdir", "linux-64")
    return PackageRecord(name=name, version=version, build=build, build_number=0, channel="file:///c",
                         url=f"file:///c/{kw['subdir']}/{name}-{version}-{build}.conda", fn=f"{name}-{version}-{build}.conda", **kw)


def _extracted(tmp: Path, name: str, **kw) -> tuple[PackageRecord, Path]:
    version = kw.pop("version", "1.0")
    f = build_package(tmp / "pkgs", name, version, **kw)
    subdir = "noarch" if kw.get("noarch") else kw.get("subdir", "linux-64")
    rec = _rec(name, version, kw.get("build", "0"), subdir=subdir, noarch=kw.get("noarch"))
    return rec, extract_package(f, tmp / "x", f.name)


def test_clobber_later_package_wins(tmp_path: Path) -> None:
    a = _extracted(tmp_path, "aa", files={"share/same.txt": "from a\n", "share/a.txt": "a"})
    b = _extracted(tmp_path, "bb", files={"share/same.txt": "from b\n", "bin/.bb-post-link.sh": "echo hi\n"})
    report = install([a, b], tmp_path / "s", "/opt/conda")
    assert (tmp_path / "s/share/same.txt").read_text() == "from b\n"
    assert len(report.warnings) == 1 and "share/same.txt" in report.warnings[0] and "bb-1.0-0" in report.warnings[0]
    assert report.files_by_package["aa-1.0-0"] == ["share/a.txt"]
    assert "share/same.txt" in report.files_by_package["bb-1.0-0"]
    assert report.clobbered == {"share/same.txt": "bb-1.0-0"}
    assert report.post_link_scripts == ["bin/.bb-post-link.sh"]
    meta_a = json.loads((tmp_path / "s/conda-meta/aa-1.0-0.json").read_text())
    assert meta_a["files"] == ["share/a.txt"]


def test_clobbered_file_and_conda_pack(tmp_path: Path) -> None:
    """conda-pack reads each package's own copy of a clobbered path (both end up in its file list); dropping the
    losers by ``report.clobbered`` leaves exactly the staged (winning) copy. This is the recipe for pack.py."""
    conda_pack = pytest.importorskip("conda_pack")
    a = _extracted(tmp_path, "aa", files={"share/same.txt": "from a\n"})
    b = _extracted(tmp_path, "bb", files={"share/same.txt": "from b\n"})
    staging = tmp_path / "s"
    report = install([a, b], staging, "/opt/conda")
    env = conda_pack.CondaEnv.from_prefix(str(staging))
    dirs = {rec.dist_name: str(d) for rec, d in (a, b)}
    same = [f for f in env.files if f.target == "share/same.txt"]
    assert len(same) == 2  # why the filter below is needed
    kept = [
        f for f in env.files
        if f.target not in report.clobbered or f.source.startswith(dirs[report.clobbered[f.target]] + os.sep)
    ]  # fmt: skip
    out = tmp_path / "o.tar"
    conda_pack.CondaEnv(env.prefix, kept).pack(output=str(out), dest_prefix="/opt/conda", format="tar")
    with tarfile.open(out) as tf:
        got = [tf.extractfile(m).read() for m in tf.getmembers() if m.name == "share/same.txt"]  # type: ignore[union-attr]
    assert got == [(staging / "share/same.txt").read_bytes()] == [b"from b\n"]


def test_binary_prefix_too_long(tmp_path: Path) -> None:
    item = _extracted(tmp_path, "short", placeholder=SHORT_PLACEHOLDER,
                      files={"lib/libs.so": b"\0" + SHORT_PLACEHOLDER.encode() + b"/lib\0"},
                      binary_prefix_files=["lib/libs.so"])
    target = "/opt/" + "x" * 40
    with pytest.raises(InstallError, match=rf"short-1\.0-0: lib/libs\.so: .*\({len(target)} chars\).*\({len(SHORT_PLACEHOLDER)} chars\)"):
        install([item], tmp_path / "s", target)
    # a text file with the same short placeholder is fine with a longer prefix
    item = _extracted(tmp_path, "shorttext", placeholder=SHORT_PLACEHOLDER,
                      files={"etc/t": SHORT_PLACEHOLDER + "/etc\n"}, text_prefix_files=["etc/t"])
    install([item], tmp_path / "s2", target)
    assert (tmp_path / "s2/etc/t").read_text() == target + "/etc\n"


def test_noarch_python_needs_python(tmp_path: Path) -> None:
    item = _extracted(tmp_path, "purepy", noarch="python", build="pyh0", files={"site-packages/purepy.py": "x = 1\n"})
    with pytest.raises(InstallError, match="purepy-1.0-pyh0.*python"):
        install([item], tmp_path / "s", "/opt/conda")


def test_link_outside_prefix_refused_and_nothing_escapes(tmp_path: Path) -> None:
    """An extracted dir that (somehow) holds a link leaving the prefix is refused; nothing lands outside staging."""
    canary_dir = tmp_path / "outside"
    canary_dir.mkdir()
    canary = canary_dir / "canary"
    canary.write_text("untouched")
    rec, d = _extracted(tmp_path, "evil", files={"lib/ok.txt": "ok", "lib/esc": Symlink("../lib/ok.txt")})
    # tamper with the (trusted) extracted dir as a hostile cache writer could: the link now leaves the prefix
    evil = tmp_path / "x-evil"
    shutil.copytree(d, evil, symlinks=True)
    os.unlink(evil / "lib/esc")
    os.symlink("../../outside", evil / "lib/esc")
    staging = tmp_path / "s"
    with pytest.raises(PackageError, match="evil-1.0-0: lib/esc"):
        install([(rec, evil)], staging, "/opt/conda")
    assert canary.read_text() == "untouched" and sorted(os.listdir(canary_dir)) == ["canary"]


def test_prefix_replacement_rules() -> None:
    """conda's rules, spelled out on small inputs."""
    ph = "/ph" + "_" * 20
    # text: every occurrence
    assert replace_text_prefix(f"a {ph} b {ph}/x\n".encode(), ph, "/opt/c") == b"a /opt/c b /opt/c/x\n"
    # shebang with a space in the prefix: escaped, which makes conda fall back to /usr/bin/env
    assert replace_text_prefix(f"#!{ph}/bin/python3 -E\nx\n".encode(), ph, "/opt/my env") == b"#!/usr/bin/env python3 -E\nx\n"
    # shebang longer than 127 characters after replacement
    long = "/" + "l" * 130
    assert replace_text_prefix(f"#!{ph}/bin/perl -w\n{ph}\n".encode(), ph, long) == f"#!/usr/bin/env perl -w\n{long}\n".encode()
    # a short one stays
    assert replace_text_prefix(f"#!{ph}/bin/perl\n".encode(), ph, "/o") == b"#!/o/bin/perl\n"
    # binary: each NUL-terminated string, padded so the length never changes
    data = b"X" + ph.encode() + b"/lib:" + ph.encode() + b"\0Y"
    out = replace_binary_prefix(data, ph, "/o")
    assert out == b"X/o/lib:/o" + b"\0" * (2 * (len(ph) - 2)) + b"\0Y" and len(out) == len(data)
    with pytest.raises(ValueError):
        replace_binary_prefix(data, ph, "/" + "x" * len(ph))


# ---------------------------------------------------------------------------------------------------------------
# the bundled example channel


EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "hello"


def test_example_channel_installs_and_runs(tmp_path: Path) -> None:
    """examples/hello: both placeholders are rewritten; the static binary finds its data at the new prefix."""
    import platform
    import subprocess

    chan = EXAMPLE / "channel"
    fns = ["hello-data-1.0-0.conda", "hello-1.0-0.conda"]
    staging = tmp_path / "env"
    report, items = our_install(chan, fns, staging, str(staging), tmp_path / "cache")
    assert report.warnings == []
    # the channel is what build_channel.py says: a binary placeholder in hello, a text one in the greeting
    modes = {e.path: e.file_mode for _, d in items for e in read_paths(d)}
    assert modes == {"bin/hello": "binary", "share/hello/greeting.txt": "text"}
    greeting = (staging / "share/hello/greeting.txt").read_text()
    assert f"installed at {staging}/share/hello/greeting.txt" in greeting
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("the example binary is linux-64")
    out = subprocess.run([str(staging / "bin/hello")], capture_output=True, check=True, timeout=30)
    assert out.stdout.decode() == greeting


def test_example_channel_is_indexed(tmp_path: Path) -> None:
    """The committed repodata matches the committed package files (sizes and hashes)."""
    chan = EXAMPLE / "channel"
    for sub in ("linux-64", "noarch"):
        rd = json.loads((chan / sub / "repodata.json").read_text())
        listed = {**rd["packages"], **rd["packages.conda"]}
        files = sorted(p.name for p in (chan / sub).iterdir() if p.name.endswith((".conda", ".tar.bz2")))
        assert sorted(listed) == files and files
        for fn, rec in listed.items():
            data = (chan / sub / fn).read_bytes()
            assert rec["sha256"] == hashlib.sha256(data).hexdigest() and rec["size"] == len(data)
    total = sum(p.stat().st_size for p in chan.rglob("*") if p.is_file())
    assert total < 1_000_000


def test_write_through_dangling_link_is_an_install_error(tmp_path: Path) -> None:
    a = _extracted(tmp_path, "la", files={"lib/plugins": Symlink("missing-dir")})
    b = _extracted(tmp_path, "lb", files={"lib/plugins/p.so": b"\0"})
    with pytest.raises(InstallError, match=r"lb-1\.0-0: lib/plugins/p\.so"):
        install([a, b], tmp_path / "s", "/opt/conda")
