"""MatchSpec against conda's own test vectors, real repodata depends (with py-rattler as a matching oracle),
and the parsing/matching rules conda documents."""

from __future__ import annotations

import collections
import json
import os
import pickle
from pathlib import Path

import pytest

from oci_conda.conda.matchspec import InvalidMatchSpec, MatchSpec
from oci_conda.conda.records import PackageRecord
from oci_conda.conda.version import VersionSpec
from oci_conda.errors import SpecError

REALDATA = Path(os.environ.get("OCI_CONDA_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "realdata"
VECTORS = REALDATA / "vectors"

_V3 = "repodata v3 syntax (when/extras/flags) is out of scope; such specs raise InvalidMatchSpec"
_CTX = "depends on conda's configuration (channel_alias / default_channels: 'pkgs/main' is 'defaults')"

# case id -> why we knowingly do not follow the vector
SKIP = {
    "canonical-https://conda.anaconda.org/conda-canary/linux-64/conda-4.3.21.post699+1dab973-py36h4a561cd_0.tar.bz2": _CTX,
    "canonical-pkgs/main::*": _CTX,
    "canonical-pkgs/main::numpy": _CTX,
    "parse-https://repo.anaconda.com/pkgs/main/linux-64/_license-1.1-py27_1.tar.bz2": _CTX,
    "parse-https://conda.anaconda.org/conda-canary/linux-64/conda-4.3.21.post699+1dab973-py36h4a561cd_0.tar.bz2": _CTX,
    "parse-https://conda.anaconda.org/conda-canary/linux-64/conda-4.3.21.post699+1dab973-py36h4a561cd_0.conda": _CTX,
    "parse-numpy=": "conflicts with conda's newer test_bare_equals_operator_raises ('foo=' raises), which we follow",
}


def _skip_reason(cid: str, spec: str) -> str | None:
    if cid in SKIP:
        return SKIP[cid]
    if any(k in spec for k in ("when=", "extras=", "flags=")):
        return _V3
    return None


def _param(values: tuple, cid: str, spec: str):
    reason = _skip_reason(cid, spec)
    return pytest.param(*values, id=cid, marks=[pytest.mark.skip(reason=reason)] if reason else [])


def _load():
    p = VECTORS / "matchspec_conda.json"
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


_DATA = _load()


def _cases(key: str, make) -> list:
    if _DATA is None:
        return [pytest.param(*([None] * make.arity), id="no-realdata", marks=pytest.mark.skip(reason="vectors not found"))]
    return make(_DATA[key])


def _maker(arity: int):
    def deco(fn):
        fn.arity = arity
        return fn

    return deco


# ---------------------------------------------------------------------------------------------------------------
# match
# ---------------------------------------------------------------------------------------------------------------


@_maker(3)
def _match_cases(rows: list) -> list:
    return [_param((e["spec"], e["record"], e["expected"]), f"{i}-{e['spec']}", e["spec"]) for i, e in enumerate(rows)]


def _record(d: dict) -> PackageRecord:
    return PackageRecord(
        name=d["name"],
        version=d.get("version", "0"),
        build=d.get("build", "0"),
        build_number=d.get("build_number", 0),
        subdir="linux-64",
        channel=d.get("channel", "https://example.invalid/chan"),
        url="",
        fn="",
        license=d.get("license"),
    )


@pytest.mark.parametrize(("spec", "record", "expected"), _cases("match", _match_cases))
def test_match(spec: str, record: dict, expected: bool) -> None:
    ms = MatchSpec(spec)
    assert ms.match(record) is expected  # repodata-style dict
    if "license_family" not in record:
        rec = _record(record)
        assert ms.match(rec) is expected  # PackageRecord
        if not any(k in spec for k in ("license", "channel")):
            assert ms.match_version_build(rec.version, rec.build, rec.build_number) is (expected or rec.name != ms.name)
    # the canonical string selects the same
    assert MatchSpec(str(ms)).match(record) is expected


# ---------------------------------------------------------------------------------------------------------------
# canonical string
# ---------------------------------------------------------------------------------------------------------------


@_maker(3)
def _canonical_cases(rows: list) -> list:
    out = []
    for i, e in enumerate(rows):
        src = e.get("spec")
        if src is None:
            cid = "canonical-kwargs-" + ",".join(f"{k}={v}" for k, v in e["kwargs"].items())
            out.append(_param((None, e["kwargs"], e["canonical"]), cid, json.dumps(e["kwargs"])))
        else:
            out.append(_param((src, None, e["canonical"]), f"canonical-{src}", src))
    return out


@pytest.mark.parametrize(("spec", "kwargs", "canonical"), _cases("canonical", _canonical_cases))
def test_canonical_string(spec: str | None, kwargs: dict | None, canonical: str) -> None:
    ms = MatchSpec(spec) if spec is not None else MatchSpec(**kwargs)  # type: ignore[arg-type]
    assert str(ms) == canonical
    assert str(MatchSpec(str(ms))) == canonical  # stable


# ---------------------------------------------------------------------------------------------------------------
# parse (conda's internal field dict)
# ---------------------------------------------------------------------------------------------------------------


@_maker(2)
def _parse_cases(rows: list) -> list:
    return [_param((e["spec"], e["parsed"]), f"parse-{e['spec']}", e["spec"]) for e in rows]


@pytest.mark.parametrize(("spec", "parsed"), _cases("parse", _parse_cases))
def test_parse_fields(spec: str, parsed: dict) -> None:
    ms = MatchSpec(spec)
    want = {k: v for k, v in parsed.items() if not k.startswith("_")}
    for key, value in want.items():
        got = getattr(ms, key)
        if key == "version":
            assert str(got) == str(VersionSpec(value)), key  # same spec, canonical spelling
        elif key == "build_number":
            assert str(got) == str(value)
        else:
            assert got == value, key
    for key in ("channel", "subdir", "version", "build", "build_number", "md5", "fn", "url"):
        if key not in want:
            assert getattr(ms, key) is None, key
    assert ms == MatchSpec(**want)


@_maker(3)
def _exact_cases(rows: list) -> list:
    return [_param((e["spec"], e["field"], e["value"]), f"{i}-{e['spec']}-{e['field']}", e["spec"]) for i, e in enumerate(rows)]


@pytest.mark.parametrize(("spec", "field", "value"), _cases("exact_value", _exact_cases))
def test_exact_value(spec: str, field: str, value) -> None:
    assert MatchSpec(spec).get_exact_value(field) == value


@_maker(1)
def _invalid_cases(rows: list) -> list:
    # every listed input must be rejected, repodata-v3 ones included (we reject the keys themselves)
    return [pytest.param(e["input"], id=f"{i}-{e['input']}") for i, e in enumerate(rows)]


@pytest.mark.parametrize("spec", _cases("invalid", _invalid_cases))
def test_invalid(spec: str) -> None:
    with pytest.raises(InvalidMatchSpec) as exc:
        MatchSpec(spec)
    assert isinstance(exc.value, SpecError)
    assert "\n" not in str(exc.value) and repr(spec) in str(exc.value)


@_maker(1)
def _valid_cases(rows: list) -> list:
    return [pytest.param(e["spec"], id=f"{i}-{e['spec']}") for i, e in enumerate(rows)]


@pytest.mark.parametrize("spec", _cases("valid_corpus", _valid_cases))
def test_valid_corpus(spec: str) -> None:
    ms = MatchSpec(spec)
    assert MatchSpec(str(ms)) == ms


def _table(name: str) -> list:
    if _DATA is None:
        return [pytest.param(None, None, id="no-realdata", marks=pytest.mark.skip(reason="vectors not found"))]
    rows = next(t for t in _DATA["parametrize_tables"] if t["test"] == name)["values"]
    return [pytest.param(*r, id=f"{i}-{r[0]}") for i, r in enumerate(rows)]


@pytest.mark.parametrize(("spec", "build"), _table("test_boolean_operator_in_space_separated_build"))
def test_build_with_operators(spec: str, build: str) -> None:
    assert MatchSpec(spec).build == build


@pytest.mark.parametrize(("spec", "version"), _table("test_version_with_parentheses"))
def test_version_with_parentheses(spec: str, version: str) -> None:
    assert str(MatchSpec(spec).version) == version


def _regex_table() -> list:
    if _DATA is None:
        return [pytest.param(None, None, None, id="no-realdata", marks=pytest.mark.skip(reason="vectors not found"))]
    rows = next(t for t in _DATA["parametrize_tables"] if t["test"] == "test_parse_spec_str_with_precompiled_regex")
    return [pytest.param(*r, id=f"{i}-{r[0]}") for i, r in enumerate(rows["values"])]


@pytest.mark.parametrize(("spec", "name", "version"), _regex_table())
def test_name_and_version(spec: str, name: str, version: str | None) -> None:
    ms = MatchSpec(spec)
    assert ms.name == name
    assert (None if ms.version is None else str(ms.version)) == (None if version is None else str(VersionSpec(version)))


# ---------------------------------------------------------------------------------------------------------------
# real repodata: every depends string parses, and matching agrees with py-rattler
# ---------------------------------------------------------------------------------------------------------------

_REPODATA = [
    "defaults-r-linux-64-2019-04-12.json",
    "conda-tests/index4.json",
    "rattler-tests/pytorch-linux-64-repodata.json",
    "derived-from-pixi-lock/conda-forge-linux-64.json",
]


def _records(path: Path) -> list[PackageRecord]:
    raw = json.loads(path.read_text(encoding="utf-8"))
    entries = {**raw.get("packages", {}), **raw.get("packages.conda", {})} if "packages" in raw else raw
    for fn, r in entries.items():
        if "build" not in r:  # the DERIVED pixi-lock files keep the build only in the file name
            r["build"] = fn.rsplit("-", 2)[-1].split(".")[0]
    return [
        PackageRecord.from_repodata(fn, r, "https://example.invalid/chan", "linux-64", "https://example.invalid/chan")
        for fn, r in entries.items()
    ]


@pytest.mark.parametrize("name", _REPODATA)
def test_real_depends_agree_with_rattler(name: str) -> None:
    path = REALDATA / "repodata" / name
    if not path.is_file():
        pytest.skip(f"{path} not found")
    rattler = pytest.importorskip("rattler")
    recs = _records(path)
    by_name = collections.defaultdict(list)
    for r in recs:
        by_name[r.name].append(r)
    specs = sorted({d for r in recs for d in (*r.depends, *r.constrains)})
    assert specs
    theirs_rec: dict[int, object] = {}
    disagreements = []
    pairs = 0
    for s in specs:
        ms = MatchSpec(s)  # every real depends string parses
        rs = rattler.MatchSpec(s)
        for r in by_name.get(ms.name, ())[:200]:
            rr = theirs_rec.get(id(r))
            if rr is None:
                rr = theirs_rec[id(r)] = rattler.PackageRecord(
                    r.name, r.version, rattler.BuildString(r.build), r.build_number, "linux-64"
                )
            pairs += 1
            if ms.match(r) != rs.matches(rr):
                disagreements.append((s, r.dist_name))
    assert pairs > 100
    assert disagreements == []


# ---------------------------------------------------------------------------------------------------------------
# documented rules
# ---------------------------------------------------------------------------------------------------------------


def _rec(name="numpy", version="1.7.1", build="py27_0", build_number=0, channel="https://example.invalid/conda-forge",
         subdir="linux-64", **kw) -> PackageRecord:
    return PackageRecord(name=name, version=version, build=build, build_number=build_number, subdir=subdir,
                         channel=channel, url=f"{channel}/{subdir}/{name}-{version}-{build}.conda",
                         fn=f"{name}-{version}-{build}.conda", **kw)


def test_fields_and_forms() -> None:
    ms = MatchSpec("conda-forge/linux-64::numpy >=1.7,<2 py27*[build_number='>=0', md5=abc, license='BSD*']")
    assert (ms.name, ms.channel, ms.subdir, ms.build, ms.build_number, ms.md5, ms.license) == (
        "numpy", "conda-forge", "linux-64", "py27*", ">=0", "abc", "BSD*")
    assert str(ms.version) == ">=1.7,<2"
    assert MatchSpec("numpy=1.7").version.match("1.7.5") and not MatchSpec("numpy 1.7").version.match("1.7.5")
    assert MatchSpec("numpy==1.7").version.match("1.7.0") and not MatchSpec("numpy==1.7").version.match("1.7.1")
    assert MatchSpec("python >=3.8 *_cpython").match(_rec("python", "3.11.4", "h955ad1f_0_cpython"))
    assert MatchSpec('numpy[version=">=1.7", build="py*"]').match(_rec())
    assert MatchSpec("numpy[build=^py2[0-9]_0$]").match(_rec())
    assert not MatchSpec("numpy[build=^py3.*$]").match(_rec())
    assert MatchSpec("NumPy").name == "numpy" and MatchSpec("NumPy").match(_rec())
    assert MatchSpec("num*").match(_rec()) and not MatchSpec("sci*").match(_rec())
    assert MatchSpec("*").match(_rec()) and MatchSpec("*").name == "*"
    assert MatchSpec("numpy[track_features=mkl]").match(_rec(track_features=("mkl",)))
    assert not MatchSpec("numpy[track_features=mkl]").match(_rec())
    assert MatchSpec("mkl@").track_features == ("mkl",)
    assert MatchSpec("numpy # comment").name == "numpy"
    assert MatchSpec("numpy") is MatchSpec("numpy")  # cached
    assert MatchSpec(name="numpy", version=">=1.7") == MatchSpec("numpy>=1.7")
    assert str(MatchSpec(name="numpy", channel="conda-forge/linux-64")) == "conda-forge/linux-64::numpy"
    assert str(MatchSpec("numpy", version="1.2")) == "numpy==1.2"
    assert pickle.loads(pickle.dumps(MatchSpec("numpy >=1.7 py*"))) == MatchSpec("numpy >=1.7 py*")
    assert MatchSpec("numpy").is_name_only and not MatchSpec("numpy 1.7").is_name_only


def test_build_number() -> None:
    r = _rec(build_number=7)
    assert MatchSpec("numpy[build_number=7]").match(r) and not MatchSpec("numpy[build_number=8]").match(r)
    assert MatchSpec("numpy[build_number='>=7']").match(r) and not MatchSpec("numpy[build_number='<7']").match(r)
    assert MatchSpec("numpy[build_number='!=6']").match(r)
    assert MatchSpec("numpy[build_number=7]").build_number == 7
    with pytest.raises(InvalidMatchSpec):
        MatchSpec("numpy[build_number=seven]")


def test_channel_matching() -> None:
    rec = _rec(channel="https://mirror.example.invalid/conda-forge")
    assert MatchSpec("conda-forge::numpy").match(rec)
    assert MatchSpec("numpy[channel=conda-forge]").match(rec)
    assert not MatchSpec("bioconda::numpy").match(rec)
    assert MatchSpec("https://mirror.example.invalid/conda-forge::numpy").match(rec)
    assert not MatchSpec("https://other.example.invalid/conda-forge::numpy").match(rec)
    assert MatchSpec("conda-*::numpy").match(rec) and MatchSpec("*::numpy").match(rec)
    assert MatchSpec("conda-forge/linux-64::numpy").match(rec)
    assert not MatchSpec("conda-forge/osx-64::numpy").match(rec)
    assert MatchSpec("numpy[subdir=linux-64]").match(rec)
    local = _rec(channel="file:///srv/chan")
    assert MatchSpec("file:///srv/chan::numpy").match(local) and MatchSpec("chan::numpy").match(local)
    assert MatchSpec("defaults::numpy").match(_rec(channel="https://repo.example.invalid/pkgs/main"))


def test_package_file_specs() -> None:
    ms = MatchSpec("https://example.invalid/chan/linux-64/foo-1.0-py27_0.tar.bz2")
    assert (ms.name, str(ms.version), ms.build, ms.subdir, ms.channel, ms.fn) == (
        "foo", "1.0", "py27_0", "linux-64", "https://example.invalid/chan", "foo-1.0-py27_0.tar.bz2")
    rec = _rec("foo", "1.0", "py27_0", channel="https://example.invalid/chan")
    assert not ms.match(rec)  # url and fn are part of the spec
    rec = PackageRecord(**{**rec.to_json(), "fn": ms.fn, "url": ms.url, "depends": (), "constrains": (),
                           "track_features": ()})
    assert ms.match(rec)
    local = MatchSpec("/tmp/pkgs/foo-1.0-0.conda")
    assert local.name == "*" and local.url == "file:///tmp/pkgs/foo-1.0-0.conda" and local.fn == "foo-1.0-0.conda"


def test_unparseable_record_version_never_matches() -> None:
    assert not MatchSpec("numpy >=1").match(_rec(version="1.0-1_2"))
    assert MatchSpec("numpy").match(_rec(version="1.0-1_2"))


# ---------------------------------------------------------------------------------------------------------------
# rattler's MatchSpec parse snapshots (lenient mode, named specs); versions compared by meaning on probe versions
# ---------------------------------------------------------------------------------------------------------------

_RATTLER_SKIP = {
    "blas *.* mkl": "conda: '*.*' is a glob that needs a '.', rattler simplifies it to '*'",
    "python ==2.7.*.*|>=3.6": "conda: '==2.7.*.*' is '==' against VersionOrder('2.7.*'); rattler reads '2.7.*'",
    "numpy>=2.*.*": "conda drops one '.*': '>=' VersionOrder('2.*'), which '2.0.dev1' passes ('*' < 'dev'); rattler: '>=2'",
}


def _rattler_cases() -> list:
    p = VECTORS / "rattler_snapshots.json"
    if not p.is_file():
        return [pytest.param(None, None, id="no-realdata", marks=pytest.mark.skip(reason="vectors not found"))]
    snaps = json.loads(p.read_text(encoding="utf-8"))["snapshots"]
    out = []
    for spec, want in snaps["rattler_conda_types__match_spec__parse__tests__test_from_string_Lenient"].items():
        if "error" in want or "\\" in spec:  # rattler-only errors; Windows paths
            continue
        reason = _RATTLER_SKIP.get(spec)
        out.append(pytest.param(spec, want, id=spec, marks=[pytest.mark.skip(reason=reason)] if reason else []))
    return out


_PROBES = ["0.1", "1.0", "1.0.0", "1.0.5", "1.0a1", "1.1", "2", "2.0.dev1", "2.7", "2.7.18", "3.6", "3.8.10", "3.9",
           "3.9.1", "3.9.0a1", "3.10", "1!164.3095", "1!164.4000", "1!165", "164.3095", "0.6.1", "1.2.3", "1.2.4"]


@pytest.mark.parametrize(("spec", "want"), _rattler_cases())
def test_rattler_parse_snapshots(spec: str, want: dict) -> None:
    rattler = pytest.importorskip("rattler")
    ms = MatchSpec(spec)
    assert ms.name == want["name"]
    if "build" in want:
        assert ms.build == want["build"]
    if "subdir" in want:
        assert ms.subdir == want["subdir"]
    if "url" in want:
        assert ms.url == want["url"]
    if "build_number" in want:
        assert str(ms.build_number).lstrip("=") == str(want["build_number"]).lstrip("=")
    if "channel" in want:
        assert ms.channel in (want["channel"]["name"], want["channel"]["base_url"])
    if "version" in want:
        theirs = rattler.VersionSpec(want["version"])
        for probe in _PROBES:
            assert ms.version.match(probe) == theirs.matches(rattler.Version(probe)), probe
    elif "url" not in want:
        assert ms.version is None


# --- edges found against conda's own test suite ---------------------------------------------------------------


@pytest.mark.parametrize("url", [
    "https://conda.anaconda.org/conda-forge/linux-64/x264-1%21164.3095-h166bdaf_2.tar.bz2",
    "https://conda.anaconda.org/conda-forge/linux-64/x264-1!164.3095-h166bdaf_2.tar.bz2",
    "file:///srv/chan/linux-64/x264-1%21164.3095-h166bdaf_2.conda",
])
def test_package_url_with_percent_encoded_epoch(url: str) -> None:
    """conda reads the epoch's '!' written as %21 in a package URL; the version keeps its epoch."""
    ms = MatchSpec(url)
    assert ms.name == "x264" and ms.subdir == "linux-64"
    assert ms.fn == "x264-1!164.3095-h166bdaf_2" + (".conda" if url.endswith(".conda") else ".tar.bz2")
    assert ms.url == url
    rec = PackageRecord(name="x264", version="1!164.3095", build="h166bdaf_2", build_number=2, subdir="linux-64",
                        channel=url.rsplit("/", 2)[0], url=url, fn=ms.fn)
    assert ms.version.match("1!164.3095") and not ms.version.match("164.3095")
    assert ms.match(rec)


def test_percent_encoded_epoch_matches_the_corpus_range() -> None:
    """The ecosystem corpus spec for x264 selects the version the URL names."""
    url = MatchSpec("https://conda.anaconda.org/conda-forge/linux-64/x264-1%21164.3095-h166bdaf_2.tar.bz2")
    assert MatchSpec("x264 >=1!164.3095,<1!165").version.match(str(url.version).lstrip("="))


@pytest.mark.parametrize("spec", ["foo if python>=3.6", "foo >=1 if __linux", "foo\tif\tbar"])
def test_conditional_dependency_is_refused_not_dropped(spec: str) -> None:
    """Dropping the condition would install what was not asked for; conda raises, so do we, in one line."""
    with pytest.raises(InvalidMatchSpec, match=r"conditional dependencies .* are not supported") as e:
        MatchSpec(spec)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("spec", ["gift", "iffy >=1", "foo[build=*if*]", "spiffy 1.0 py_if_0"])
def test_if_inside_names_and_builds_is_not_a_condition(spec: str) -> None:
    assert MatchSpec(spec).name in ("gift", "iffy", "foo", "spiffy")
