"""Property tests (hypothesis, fixed seed): the parsers return a value or their own error, never anything else and never
slowly; the tar writer's output reads back identically with Python's tarfile and unpacks with umoci.

Examples per property: 1,000 (``pytest --slow``: 10,000); umoci sees 6 (30).
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import tarfile
import tempfile
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).parent))

from conftest import long_variant, need_tool

from oci_conda.conda.channel import resolve_channels
from oci_conda.conda.matchspec import InvalidMatchSpec, MatchSpec
from oci_conda.conda.repodata import records_from_repodata
from oci_conda.conda.version import InvalidVersion, VersionOrder, VersionSpec
from oci_conda.errors import ChannelError, ImageError, SpecError
from oci_conda.oci.tar import TarEntry, write_layer
from oci_conda.spec import load_spec

N = long_variant(1_000, 10_000)
FUZZ = settings(derandomize=True, max_examples=N, deadline=timedelta(seconds=5), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])

# ---------------------------------------------------------------------------------------------------------------
# versions and match specs

VERSION_CHARS = "0123456789.abcrdevpostlhz_-+!*"
SPEC_CHARS = VERSION_CHARS + "=<>~|,^$ []()'\":/@#"

atoms = st.one_of(st.integers(0, 10**20).map(str), st.sampled_from(["a", "b", "rc", "dev", "post", "_", "alpha"]))
plausible_versions = st.builds(
    lambda epoch, parts, local: (f"{epoch}!" if epoch is not None else "") + ".".join(parts)
    + (f"+{local}" if local else ""),
    st.none() | st.integers(0, 99),
    st.lists(st.lists(atoms, min_size=1, max_size=3).map("".join), min_size=1, max_size=6),
    st.none() | st.sampled_from(["1", "local.2", "x"]),
)
versions = st.one_of(plausible_versions, st.text(VERSION_CHARS, max_size=40), st.text(max_size=20))


@FUZZ
@given(versions, versions)
def test_version_order_is_a_value_or_invalid_version(a: str, b: str) -> None:
    try:
        va = VersionOrder(a)
    except InvalidVersion:
        return
    assert VersionOrder(str(va)) == va
    try:
        vb = VersionOrder(b)
    except InvalidVersion:
        return
    # a total order, consistent with equality
    assert (va < vb) + (va == vb) + (va > vb) == 1


version_specs = st.one_of(
    st.builds(lambda op, v: op + v, st.sampled_from(["", "==", ">=", "<=", ">", "<", "!=", "~=", "="]), plausible_versions),
    st.builds(lambda a, sep, b: f"{a}{sep}{b}", plausible_versions, st.sampled_from([",", "|", ",<", "|>="]),
              plausible_versions),
    st.text(SPEC_CHARS, max_size=30),
)


@FUZZ
@given(version_specs, versions)
def test_version_spec_is_a_value_or_invalid_version(spec: str, v: str) -> None:
    try:
        vs = VersionSpec(spec)
    except InvalidVersion:
        return
    again = VersionSpec(str(vs))
    try:
        VersionOrder(v)
    except InvalidVersion:
        return
    assert vs.match(v) == again.match(v)


names = st.one_of(st.sampled_from(["numpy", "python", "libgcc-ng", "_openmp_mutex", "*", "py*", "r-base"]),
                  st.text("abcxyz019_-.*", min_size=1, max_size=12))
brackets = st.dictionaries(
    st.sampled_from(["version", "build", "build_number", "channel", "subdir", "md5", "sha256", "license", "fn",
                     "track_features", "features", "url", "when", "bogus"]),
    st.text("abc019.*=<>,_- |", max_size=10), max_size=3,
).map(lambda d: "[" + ",".join(f"{k}='{v}'" for k, v in d.items()) + "]" if d else "")
plausible_specs = st.builds(
    lambda ch, name, ver, build, br: f"{ch}{name}{ver}{build}{br}",
    st.sampled_from(["", "conda-forge::", "conda-forge/linux-64::", "https://x.invalid/ch::"]),
    names,
    st.one_of(st.just(""), version_specs.map(lambda v: " " + v), version_specs),
    st.sampled_from(["", " *_0", " py3*", " h123_1"]),
    brackets,
)
spec_strings = st.one_of(plausible_specs, st.text(SPEC_CHARS + "abcnmpy", max_size=50), st.text(max_size=30))


@FUZZ
@given(spec_strings)
def test_matchspec_is_a_value_or_invalid_matchspec_and_round_trips(s: str) -> None:
    try:
        ms = MatchSpec(s)
    except InvalidMatchSpec:
        return
    again = MatchSpec(str(ms))
    assert again == ms, (s, str(ms), str(again))
    assert str(again) == str(ms)
    rec = {"name": "numpy", "version": "1.26.4", "build": "py311h_0", "build_number": 0, "subdir": "linux-64",
           "channel": "conda-forge", "depends": [], "fn": "numpy-1.26.4-py311h_0.conda"}
    assert ms.match(rec) == again.match(rec)


def test_huge_specs_are_quick() -> None:
    """Long inputs (10^5 characters) are parsed or refused without pathological slowness."""
    import time

    for s in ["a" * 100_000, "numpy " + ">=1," * 25_000 + "<2", "x " + "1" * 100_000, "(" * 50_000 + "1" + ")" * 50_000,
              "numpy[" + "version='1'," * 10_000 + "]", "numpy " + "|".join(["1.*"] * 20_000), "n 1!" * 20_000]:
        t = time.monotonic()
        try:
            MatchSpec(s)
        except InvalidMatchSpec:
            pass
        except RecursionError:
            pytest.fail(f"RecursionError on a spec of {len(s)} characters starting {s[:20]!r}")
        assert time.monotonic() - t < 5, s[:40]


# ---------------------------------------------------------------------------------------------------------------
# the environment file reader

scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20),
                    st.sampled_from(["python=3.11", "numpy >=1.20", "conda-forge", "/opt/conda", "scratch",
                                     "oci-archive:x.tar", "sel(linux): tk", "${HOME}/ch", "$NOPE_UNSET_VAR"]))
yaml_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)), max_leaves=20)
env_docs = st.fixed_dictionaries({}, optional={
    "name": yaml_values, "channels": yaml_values | st.lists(st.sampled_from(["conda-forge", "./c", "https://h/c"])),
    "dependencies": yaml_values | st.lists(st.one_of(spec_strings, st.dictionaries(
        st.sampled_from(["pip", "sel(linux)", "sel(win)"]), yaml_values, max_size=1))),
    "variables": yaml_values,
    "image": yaml_values | st.fixed_dictionaries({}, optional={
        k: yaml_values for k in ("base", "prefix", "entrypoint", "cmd", "env", "workdir", "user", "labels",
                                 "annotations", "tag", "virtual_packages")}),
    "prefix": yaml_values,
})
yaml_texts = st.one_of(
    env_docs.map(lambda d: yaml.safe_dump(d, allow_unicode=True)),
    st.text(max_size=200),
    st.text("dependencies:-[]{}&*!|>'\"#: \n\tnumpy=1", max_size=200),
)


@pytest.fixture(scope="module")
def scratch_dir() -> Path:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


@FUZZ
@given(text=yaml_texts)
def test_load_spec_is_a_value_or_spec_error(scratch_dir: Path, text: str) -> None:
    p = scratch_dir / "environment.yml"
    p.write_text(text, encoding="utf-8", errors="surrogatepass")
    try:
        spec = load_spec(p, env={"HOME": "/root"})
    except SpecError:
        return
    assert spec.specs  # a spec that loads has something to install
    for s in spec.specs:
        assert isinstance(s, str) and s


# ---------------------------------------------------------------------------------------------------------------
# the repodata reader

json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(allow_nan=False),
                         st.text(max_size=12))
json_values = st.recursive(json_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)), max_leaves=12)
field_values = {
    "name": st.sampled_from(["numpy", "", "a/b"]) | json_values,
    "version": plausible_versions | json_values,
    "build": st.sampled_from(["py_0", "0", ""]) | json_values,
    "build_number": st.integers(-5, 10**12) | json_values,
    "depends": st.lists(spec_strings, max_size=4) | json_values,
    "constrains": st.lists(spec_strings, max_size=2) | json_values,
    "sha256": st.sampled_from(["0" * 64, "zz", ""]) | json_values,
    "md5": st.sampled_from(["0" * 32]) | json_values,
    "size": st.integers(-1, 10**12) | json_values,
    "timestamp": st.integers(-1, 10**15) | st.floats(allow_nan=False, allow_infinity=True) | json_values,
    "subdir": st.sampled_from(["linux-64", "noarch"]) | json_values,
    "noarch": st.sampled_from(["python", "generic", True, False]) | json_values,
    "track_features": st.sampled_from(["", "mkl", "a b"]) | json_values,
    "features": json_values, "license": json_values,
}
raw_records = st.fixed_dictionaries({k: v for k, v in field_values.items() if k in ("name", "version", "build")},
                                    optional={k: v for k, v in field_values.items()
                                              if k not in ("name", "version", "build")})
file_names = st.one_of(st.sampled_from(["numpy-1-0.conda", "x-1-0.tar.bz2", "a/b.conda", "noext", ""]),
                       st.text(max_size=12).map(lambda s: s + ".conda"))
repodatas = st.fixed_dictionaries({}, optional={
    "info": st.fixed_dictionaries({}, optional={"subdir": json_values, "base_url": st.sampled_from(
        ["https://x.invalid/pkgs/", "../other/", ""]) | json_values}) | json_values,
    "packages": st.dictionaries(file_names, raw_records | json_values, max_size=4) | json_values,
    "packages.conda": st.dictionaries(file_names, raw_records, max_size=4) | json_values,
    "repodata_version": json_values,
})


@FUZZ
@given(repodatas)
def test_records_from_repodata_are_records_or_channel_error(doc: dict) -> None:
    channel = resolve_channels(["https://x.invalid/chan"], Path("/"))[0]
    try:
        recs = records_from_repodata(doc, channel, "linux-64", "https://x.invalid/chan/linux-64/repodata.json")
    except ChannelError:
        return
    for r in recs:
        assert isinstance(r.name, str) and isinstance(r.version, str) and r.fn.endswith((".conda", ".tar.bz2"))
        assert all(isinstance(d, str) for d in r.depends)


# ---------------------------------------------------------------------------------------------------------------
# the tar writer

path_parts = st.one_of(st.sampled_from(["bin", "lib", "a", "b", "x" * 101, "é", "日本", "sp ace", "-", "_x_"]),
                       st.text(st.characters(min_codepoint=33, max_codepoint=0x2FFF, exclude_characters="/"),
                               min_size=1, max_size=12).filter(lambda s: s not in (".", "..")))
paths = st.lists(path_parts, min_size=1, max_size=4).map("/".join)


@st.composite
def layers(draw) -> list[TarEntry]:
    files = draw(st.dictionaries(paths, st.tuples(st.binary(max_size=2000), st.booleans()), min_size=1, max_size=8))
    entries: dict[str, TarEntry] = {}
    for p, (data, exe) in files.items():
        entries[p] = TarEntry(p, "file", 0o755 if exe else 0o644, len(data), data=data)
    for p in draw(st.lists(paths, max_size=3)):
        entries.setdefault(p, TarEntry(p, "dir", 0o755))
    for p, target in draw(st.lists(st.tuples(paths, paths | st.just("../x") | st.just("/abs/t")), max_size=3)):
        entries.setdefault(p, TarEntry(p, "symlink", 0o777, linkname=target))
    file_paths = sorted(files)
    for p in draw(st.lists(paths, max_size=2)):
        entries.setdefault(p, TarEntry(p, "hardlink", linkname=draw(st.sampled_from(file_paths))))
    return list(entries.values())


def _expected(entries: list[TarEntry]) -> dict[str, tuple]:
    by = {e.path: e for e in entries}
    out = {}
    for e in entries:
        if e.kind == "file":
            out[e.path] = ("file", e.data, bool(e.mode & 0o111))
        elif e.kind == "hardlink":
            t = by[e.linkname]
            out[e.path] = ("file", t.data, bool(t.mode & 0o111))
        elif e.kind == "symlink":
            out[e.path] = ("symlink", e.linkname)
        else:
            out[e.path] = ("dir",)
    return out


def _read_back(blob: bytes) -> dict[str, tuple]:
    out: dict[str, tuple] = {}
    contents: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        for m in tar:
            assert m.uid == m.gid == 0 and m.uname == m.gname == ""
            name = m.name.rstrip("/")
            if m.isfile():
                contents[name] = tar.extractfile(m).read()  # type: ignore[union-attr]
                out[name] = ("file", contents[name], bool(m.mode & 0o111))
            elif m.islnk():
                out[name] = ("file", contents[m.linkname], bool(m.mode & 0o111))
            elif m.issym():
                out[name] = ("symlink", m.linkname)
            elif m.isdir():
                out[name] = ("dir",)
            else:
                raise AssertionError(f"unexpected member type {m.type!r}")
    return out


@FUZZ
@given(layers(), st.sampled_from(["none", "gzip", "zstd"]), st.integers(0, 2**33 - 1))
def test_tar_writer_round_trips_through_tarfile(entries: list[TarEntry], compression: str, mtime: int) -> None:
    buf = io.BytesIO()
    try:
        info = write_layer(entries, buf, compression, mtime)
    except ImageError:
        # only for entries that really are inconsistent: a path below a file/symlink
        paths_ = {e.path: e.kind for e in entries}
        assert any(p.rpartition("/")[0] and any(p.startswith(q + "/") and k != "dir" for q, k in paths_.items())
                   for p in paths_), [(e.path, e.kind) for e in entries]
        return
    got = _read_back(_decompress(buf.getvalue(), compression))
    want = _expected(entries)
    for p, v in want.items():
        assert got[p] == v, p
    # parents the writer added are directories; nothing else appeared
    assert all(v == ("dir",) for p, v in got.items() if p not in want)
    assert info.size == len(buf.getvalue())


def _decompress(blob: bytes, compression: str) -> bytes:
    if compression == "gzip":
        import gzip

        return gzip.decompress(blob)
    if compression == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return blob


@settings(derandomize=True, max_examples=long_variant(6, 30), deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(layers())
def test_umoci_unpacks_what_the_tar_writer_writes(tmp_path: Path, entries: list[TarEntry]) -> None:
    umoci = need_tool("umoci")
    buf = io.BytesIO()
    try:
        write_layer(entries, buf, "none", 0)
    except ImageError:
        return
    with tempfile.TemporaryDirectory(dir=tmp_path) as d:
        work = Path(d)
        (work / "layer.tar").write_bytes(buf.getvalue())
        lay = work / "layout"

        def run(*args: str) -> None:
            p = subprocess.run([umoci, *args], capture_output=True, text=True, timeout=60, check=False)
            assert p.returncode == 0, f"umoci {' '.join(args)}: {p.stderr}"

        run("init", "--layout", str(lay))
        run("new", "--image", f"{lay}:t")
        run("raw", "add-layer", "--image", f"{lay}:t", str(work / "layer.tar"))
        run("unpack", "--image", f"{lay}:t", str(work / "bundle"))
        rootfs = work / "bundle" / "rootfs"
        for p, v in _expected(entries).items():
            f = rootfs / p
            if v[0] == "file":
                assert f.read_bytes() == v[1] and bool(os.stat(f).st_mode & 0o111) == v[2], p
            elif v[0] == "symlink":
                assert os.readlink(f) == v[1], p
            else:
                assert f.is_dir() and not f.is_symlink(), p
