"""The solver against real repodata, hand-built conflicts and py-rattler as an oracle on generated channels."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import orjson
import pytest

from oci_conda.conda.matchspec import MatchSpec
from oci_conda.conda.records import PackageRecord
from oci_conda.conda.order import dependency_order
from oci_conda.conda.solve import solve
from oci_conda.conda.version import VersionOrder
from oci_conda.conda.virtual import virtual_packages
from oci_conda.errors import SolveError, SpecError

REPO = Path(__file__).resolve().parents[1]
LINUX_VP = virtual_packages("linux-64", env={})


# ---------------------------------------------------------------------------------------------------------------
# helpers


def load_repodata(path: Path, channel: str, subdir: str | None = None) -> list[PackageRecord]:
    """Records from a repodata.json, a conda cache file or a flat ``{fn: record}`` index."""
    raw = orjson.loads(Path(path).read_bytes())
    if "packages" in raw or "packages.conda" in raw:
        groups = [raw.get("packages") or {}, raw.get("packages.conda") or {}]
    else:
        groups = [raw]
    sd0 = subdir or (raw.get("info") or {}).get("subdir") or "linux-64"
    out = []
    for g in groups:
        for fn, d in g.items():
            if not isinstance(d, dict) or "build" not in d or "name" not in d:
                continue
            sd = d.get("subdir") or sd0
            out.append(PackageRecord.from_repodata(fn, d, channel, sd, f"{channel}/{sd}"))
    return out


def rec(name: str, version: str, build: str = "0", bn: int = 0, depends: Sequence[str] = (),
        constrains: Sequence[str] = (), channel: str = "https://example.invalid/chan-a", ext: str = ".conda",
        track_features: Sequence[str] = (), timestamp: int = 0) -> PackageRecord:
    fn = f"{name}-{version}-{build}{ext}"
    return PackageRecord(name=name, version=version, build=build, build_number=bn, subdir="linux-64",
                         channel=channel, url=f"{channel}/linux-64/{fn}", fn=fn, depends=tuple(depends),
                         constrains=tuple(constrains), track_features=tuple(track_features), timestamp=timestamp)


def check_valid(sol: Sequence[PackageRecord], specs: Sequence[str], virtual: Sequence[PackageRecord]) -> None:
    """Every request, depends and constrains holds; one record per name; dependencies come first."""
    names = [r.name for r in sol]
    assert len(names) == len(set(names)), names
    assert not any(n.startswith("__") for n in names)
    have = {r.name: r for r in sol} | {v.name: v for v in virtual}
    for s in specs:
        ms = MatchSpec(s)
        assert ms.name in have, f"requested {s} missing"
        assert ms.match_version_build(have[ms.name].version, have[ms.name].build, have[ms.name].build_number), s
    for r in sol:
        for d in r.depends:
            ms = MatchSpec(d)
            assert ms.name in have, f"{r.dist_name} needs {d}: absent"
            t = have[ms.name]
            assert ms.match_version_build(t.version, t.build, t.build_number), f"{r.dist_name} needs {d}: {t.dist_name}"
        for c in r.constrains:
            ms = MatchSpec(c)
            if ms.name in have:
                t = have[ms.name]
                assert ms.match_version_build(t.version, t.build, t.build_number), f"{r.dist_name} constrains {c}"
    # dependency order: a dependency comes first unless the two are in a cycle
    pos = {r.name: i for i, r in enumerate(sol)}
    deps = {r.name: {MatchSpec(d).name for d in r.depends} & set(pos) for r in sol}

    def reaches(a: str, b: str) -> bool:
        seen, todo = set(), [a]
        while todo:
            x = todo.pop()
            if x == b:
                return True
            if x not in seen:
                seen.add(x)
                todo.extend(deps[x])
        return False

    for r in sol:
        for d in deps[r.name]:
            if pos[d] > pos[r.name]:
                assert reaches(d, r.name), f"{d} should come before {r.name}"


def pick(sol: Sequence[PackageRecord]) -> dict[str, str]:
    return {r.name: f"{r.version}-{r.build}" for r in sol}


# ---------------------------------------------------------------------------------------------------------------
# real repodata


@pytest.fixture(scope="module")
def cf_local(realdata: Path) -> list[PackageRecord]:
    d = realdata / "repodata" / "conda-pypi-local-channel"
    return load_repodata(d / "linux-64" / "repodata.json", "file:///srv/local") + load_repodata(
        d / "noarch" / "repodata.json", "file:///srv/local", "noarch")


@pytest.mark.parametrize("spec", ["tk", "openssl", "xz"])
def test_real_conda_forge_small(cf_local, realdata: Path, spec: str) -> None:
    sol = solve([cf_local], [spec], LINUX_VP)
    check_valid(sol, [spec], LINUX_VP)
    # depends are the channel's (patched) ones from repodata.json, not the package's own index.json
    raw = json.loads((realdata / "repodata/conda-pypi-local-channel/linux-64/repodata.json").read_text())
    entries = {**raw.get("packages", {}), **raw.get("packages.conda", {})}
    for r in sol:
        if r.fn in entries:
            assert list(r.depends) == entries[r.fn].get("depends", [])
    assert sol[-1].name == spec  # the request depends on everything else here, so it comes last


def test_real_tk_exact(cf_local) -> None:
    # by hand from the repodata: tk -> libgcc-ng >=12, libzlib; libgcc-ng -> libgcc 14.2.0 -> _libgcc_mutex,
    # _openmp_mutex -> libgomp -> _libgcc_mutex; libzlib -> libgcc-ng
    sol = solve([cf_local], ["tk"], LINUX_VP)
    assert pick(sol) == {
        "_libgcc_mutex": "0.1-conda_forge", "libgomp": "14.2.0-h77fa898_1", "_openmp_mutex": "4.5-2_gnu",
        "libgcc": "14.2.0-h77fa898_1", "libgcc-ng": "14.2.0-h69a702a_1", "libzlib": "1.3.1-h4ab18f5_1",
        "tk": "8.6.13-noxft_h4845f30_101",
    }
    assert [r.name for r in sol][:3] == ["_libgcc_mutex", "libgomp", "_openmp_mutex"]


def test_real_openssl_needs_unix(cf_local) -> None:
    # ca-certificates depends on __unix: without virtual packages (or on Windows) openssl cannot be installed
    with pytest.raises(SolveError, match="__unix"):
        solve([cf_local], ["openssl"], [])
    with pytest.raises(SolveError, match="__unix"):
        solve([cf_local], ["openssl"], virtual_packages("win-64", env={}))
    assert "ca-certificates" in pick(solve([cf_local], ["openssl"], LINUX_VP))


@pytest.fixture(scope="module")
def defaults_main(realdata: Path) -> list[PackageRecord]:
    return load_repodata(realdata / "repodata/conda-tests/index4.json", "https://repo.anaconda.com/pkgs/main")


@pytest.fixture(scope="module")
def defaults_r(realdata: Path) -> list[PackageRecord]:
    return load_repodata(realdata / "repodata/defaults-r-linux-64-2019-04-12.json", "https://repo.anaconda.com/pkgs/r")


@pytest.mark.parametrize("specs", [
    ["r-base"], ["r-essentials"], ["r-ggplot2", "r-base 3.4.*"], ["r-dplyr", "r-base >=3.5"],
])
def test_real_defaults_r(defaults_main, defaults_r, specs) -> None:
    sol = solve([defaults_main, defaults_r], specs, LINUX_VP)
    check_valid(sol, specs, LINUX_VP)


@pytest.mark.parametrize("specs", [
    ["numpy", "scipy", "pandas"], ["python 3.6.*", "numpy"], ["jupyter", "matplotlib"], ["python 2.7.*", "pandas"],
])
def test_real_defaults_main(defaults_main, specs) -> None:
    sol = solve([defaults_main], specs, LINUX_VP)
    check_valid(sol, specs, LINUX_VP)


def test_real_defaults_main_newest(defaults_main) -> None:
    # independently: the newest python / numpy the index holds (conda version order), which nothing here forbids
    sol = pick(solve([defaults_main], ["python", "numpy"], LINUX_VP))
    newest_py = max((r for r in defaults_main if r.name == "python"), key=lambda r: VersionOrder(r.version))
    assert sol["python"].split("-")[0] == newest_py.version
    newest_np = max((r for r in defaults_main if r.name == "numpy" and f"py{newest_py.version[0]}{newest_py.version[2]}"
                     in r.build), key=lambda r: VersionOrder(r.version))
    assert sol["numpy"].split("-")[0] == newest_np.version


def test_real_conda_forge_derived(realdata: Path, cf_local) -> None:
    local = [r for r in cf_local if r.name not in ("python", "pip")]  # keep the lock's python 3.10
    d = realdata / "repodata/derived-from-pixi-lock"
    cf = load_repodata(d / "conda-forge-linux-64.json", "https://conda.anaconda.org/conda-forge") + load_repodata(
        d / "conda-forge-noarch.json", "https://conda.anaconda.org/conda-forge", "noarch")
    # records of locked environments (a few large files are missing; the small local channel has them)
    for specs in (["python"], ["numpy"], ["python 3.10.*", "numpy"], ["setuptools", "numpy"]):
        sol = solve([cf, local], specs, LINUX_VP, channel_priority="flexible")
        check_valid(sol, specs, LINUX_VP)


def test_real_pytorch_channel_pin(realdata: Path, defaults_main) -> None:
    pt = load_repodata(realdata / "repodata/rattler-tests/pytorch-linux-64-repodata.json",
                       "https://conda.anaconda.org/pytorch")
    # the 2018 defaults index has no cudatoolkit new enough; the message must say which dependency is missing
    with pytest.raises(SolveError, match="cudatoolkit"):
        solve([defaults_main, pt], ["pytorch::pytorch"], LINUX_VP)
    with pytest.raises(SolveError, match="not found"):
        solve([defaults_main], ["pytorch::pytorch"], LINUX_VP)


# ---------------------------------------------------------------------------------------------------------------
# conda semantics on hand-built channels


def test_prefers_newest_then_build_number_then_timestamp() -> None:
    chan = [rec("a", "1.0"), rec("a", "1.10", "h1_0"), rec("a", "1.9", "h_9"),
            rec("b", "1.0", "x_1", 1, timestamp=5), rec("b", "1.0", "x_2", 2, timestamp=1), rec("b", "1.0", "x_0", 0),
            rec("c", "1.0", "old", 0, timestamp=100), rec("c", "1.0", "new", 0, timestamp=200)]
    assert pick(solve([chan], ["a", "b", "c"])) == {"a": "1.10-h1_0", "b": "1.0-x_2", "c": "1.0-new"}


def test_track_features_deprioritised() -> None:
    chan = [rec("blas", "2.0", "mkl", track_features=("blas_mkl",)), rec("blas", "1.0", "openblas")]
    assert pick(solve([chan], ["blas"]))["blas"] == "1.0-openblas"
    assert pick(solve([chan], ["blas * mkl"]))["blas"] == "2.0-mkl"


def test_conda_over_tar_bz2() -> None:
    chan = [rec("a", "1.0", ext=".tar.bz2"), rec("a", "1.0", ext=".conda")]
    assert solve([chan], ["a"])[0].fn.endswith(".conda")
    assert solve([chan[::-1]], ["a"])[0].fn.endswith(".conda")


def test_depends_and_constrains_respected() -> None:
    chan = [rec("app", "1.0", depends=["lib >=1.2,<2"], constrains=["opt <3"]),
            rec("lib", "1.1"), rec("lib", "1.5"), rec("lib", "2.0"),
            rec("opt", "2.0"), rec("opt", "3.0")]
    sol = solve([chan], ["app", "opt"])
    assert pick(sol) == {"app": "1.0-0", "lib": "1.5-0", "opt": "2.0-0"}
    check_valid(sol, ["app", "opt"], [])
    # without app, opt is free to be newest
    assert pick(solve([chan], ["opt"])) == {"opt": "3.0-0"}


def test_build_string_dependency_non_contiguous() -> None:
    # python_abi-style build pins select records scattered through the rank order (ext 1.0 py39, ext 2.0 py39)
    chan = [rec("ext", v, f"py{p}_0", depends=[f"py {p[0]}.{p[1:]}.*"])
            for v in ("1.0", "2.0") for p in ("38", "39", "310", "311")]
    chan += [rec("py", v) for v in ("3.8.1", "3.9.2", "3.10.4", "3.11.1")]
    chan += [rec("tool", "1.0", depends=["ext * py39_*"]), rec("tool2", "1.0", depends=["ext <2 *_0"])]
    assert pick(solve([chan], ["tool"])) == {"tool": "1.0-0", "ext": "2.0-py39_0", "py": "3.9.2-0"}
    assert pick(solve([chan], ["tool", "ext 1.*"]))["ext"] == "1.0-py39_0"
    assert pick(solve([chan], ["tool2", "py 3.10.*"]))["ext"] == "1.0-py310_0"
    with pytest.raises(SolveError, match="ext \\* py39_\\*"):
        solve([chan], ["tool", "py 3.10.*"])


def test_spec_order_does_not_matter() -> None:
    chan = [rec("a", v, depends=[f"c {v}.*"]) for v in ("1", "2")] + [rec("b", v, depends=[f"c {v}.*"]) for v in ("1", "2", "3")]
    chan += [rec("c", v + ".0") for v in ("1", "2", "3")]
    s1 = solve([chan], ["a", "b"])
    s2 = solve([chan], ["b", "a"])
    assert s1 == s2 and pick(s1) == {"a": "2-0", "b": "2-0", "c": "2.0-0"}


def test_channel_priority() -> None:
    hi = [rec("foo", "1.0", channel="https://example.invalid/hi"), rec("bar", "1.0", channel="https://example.invalid/hi")]
    lo = [rec("foo", "2.0", channel="https://example.invalid/lo"), rec("baz", "1.0", channel="https://example.invalid/lo")]
    assert pick(solve([hi, lo], ["foo", "baz"])) == {"foo": "1.0-0", "baz": "1.0-0"}
    with pytest.raises(SolveError, match="foo >=2"):
        solve([hi, lo], ["foo >=2"], channel_priority="strict")
    assert pick(solve([hi, lo], ["foo"], channel_priority="flexible")) == {"foo": "1.0-0"}
    assert pick(solve([hi, lo], ["foo >=2"], channel_priority="flexible")) == {"foo": "2.0-0"}
    assert pick(solve([hi, lo], ["foo"], channel_priority="disabled")) == {"foo": "2.0-0"}
    # an explicit channel wins over strict priority, for the request and for everything that depends on it
    assert solve([hi, lo], ["lo::foo"])[0].channel.endswith("/lo")
    assert solve([hi, lo], ["https://example.invalid/lo::foo"])[0].version == "2.0"


def test_channel_as_lazy_mapping() -> None:
    # a channel grouped by name (as sharded repodata would give it) is only asked for names the request reaches
    from collections.abc import Mapping

    class Lazy(Mapping):
        def __init__(self, recs):
            self.by = {}
            for r in recs:
                self.by.setdefault(r.name, []).append(r)
            self.asked: set[str] = set()

        def __getitem__(self, name):
            self.asked.add(name)
            return self.by[name]

        def get(self, name, default=None):
            self.asked.add(name)
            return self.by.get(name, default)

        def __iter__(self):
            raise AssertionError("the solver should not list every name on a successful solve")

        def __len__(self):
            return len(self.by)

    recs = CONFLICT_CHAN + [rec(f"unrelated{i}", "1.0") for i in range(50)]
    lazy = Lazy(recs)
    sol = solve([lazy], ["numpy", "a"], LINUX_VP)
    assert pick(sol) == pick(solve([recs], ["numpy", "a"], LINUX_VP))
    assert not any(n.startswith("unrelated") for n in lazy.asked)
    assert {"numpy", "python", "a", "c"} <= lazy.asked


def test_several_specs_for_one_name_and_bad_input() -> None:
    chan = [rec("py", v) for v in ("3.8.1", "3.9.2", "3.10.4")] + [rec("odd", "1.0"), rec("odd", "not a version!")]
    assert pick(solve([chan], ["py >=3.9", "py <3.10"])) == {"py": "3.9.2-0"}
    assert pick(solve([chan], ["odd"])) == {"odd": "1.0-0"}  # a version conda cannot order is never picked
    with pytest.raises(SpecError):
        solve([chan], ["py >=>3"])
    with pytest.raises(SolveError, match="channel priority"):
        solve([chan], ["py"], channel_priority="sometimes")  # type: ignore[arg-type]
    assert solve([chan], []) == []


def test_virtual_packages_respected() -> None:
    chan = [rec("gpu", "2.0", depends=["__cuda >=12"]), rec("gpu", "1.0", depends=["__glibc >=2.17"]),
            rec("new", "1.0", depends=["__glibc >=2.34"])]
    assert pick(solve([chan], ["gpu"], LINUX_VP)) == {"gpu": "1.0-0"}
    with_cuda = virtual_packages("linux-64", {"cuda": "12.2"}, env={})
    assert pick(solve([chan], ["gpu"], with_cuda)) == {"gpu": "2.0-0"}
    with pytest.raises(SolveError, match=r"__glibc >=2.34.*__glibc 2.28"):
        solve([chan], ["new"], LINUX_VP)
    assert solve([chan], ["new"], virtual_packages("linux-64", {"glibc": "2.36"}, env={}))
    assert solve([chan], ["__glibc >=2.17"], LINUX_VP) == []  # a virtual request is checked, never installed


def test_dependency_order_ties_by_name() -> None:
    recs = [rec("z", "1", depends=["a", "m"]), rec("m", "1", depends=["a"]), rec("b", "1"), rec("a", "1")]
    assert [r.name for r in dependency_order(recs)] == ["a", "b", "m", "z"]
    cyc = [rec("p", "1", depends=["q"]), rec("q", "1", depends=["p"]), rec("r", "1", depends=["q"])]
    assert [r.name for r in dependency_order(cyc)] == ["p", "q", "r"]
    # python <-> pip (python's repodata lists pip): the interpreter first, noarch python packages after it
    pip = PackageRecord(**{**rec("pip", "24", depends=["python >=3.8"]).to_json(), "noarch": "python",
                           "depends": ("python >=3.8",), "constrains": (), "track_features": ()})
    py = rec("python", "3.12.1", depends=["pip", "zlib"])
    assert [r.name for r in dependency_order([pip, py, rec("zlib", "1")])] == ["zlib", "python", "pip"]


# ---------------------------------------------------------------------------------------------------------------
# unsatisfiable requests: the message names the specs in conflict and the chain


CONFLICT_CHAN = [
    rec("numpy", "2.1.0", "py310_0", depends=["python >=3.10"]), rec("numpy", "1.26.4", "py39_0", depends=["python >=3.9,<3.10"]),
    rec("python", "3.9.18"), rec("python", "3.10.4"),
    rec("a", "1.0", depends=["c 1.*"]), rec("b", "1.0", depends=["c 2.*"]), rec("c", "1.0"), rec("c", "2.0"),
    rec("k", "1.0", constrains=["d <2"]), rec("d", "2.0"),
    rec("top", "1.0", depends=["mid"]), rec("mid", "1.0", depends=["leaf >=5"]), rec("leaf", "1.0"),
    rec("gpu", "1.0", depends=["__cuda >=11"]),
]


@pytest.mark.parametrize("specs, needles", [
    (["numpy 2.1.*", "python 3.9.*"], ["numpy 2.1.*", "python 3.9.*", "needs python >=3.10", "you asked for python 3.9.*"]),
    (["a", "b"], ["'a'", "'b'", "needs c 1.*", "needs c 2.*"]),
    (["k", "d"], ["'k'", "'d'", "constrains d <2"]),
    (["top"], ["'top'", "mid 1.0 0 needs leaf >=5", "no available package matches"]),
    (["gpu"], ["'gpu'", "__cuda", "CONDA_OVERRIDE_CUDA"]),
    (["nunpy"], ["'nunpy' not found", "did you mean numpy"]),
    (["numpy 9.*"], ["numpy 9.*", "2.1.0", "1.26.4"]),
    (["elsewhere::numpy"], ["elsewhere", "numpy"]),
    (["__cuda"], ["__cuda", "not available"]),
    (["__glibc >=2.30", "top"], ["__glibc 2.28", "'__glibc >=2.30'", "CONDA_OVERRIDE_GLIBC"]),
])
def test_unsat_explained(specs, needles) -> None:
    with pytest.raises(SolveError) as ei:
        solve([CONFLICT_CHAN], specs, LINUX_VP)
    msg = str(ei.value)
    assert "\n" not in msg
    for n in needles:
        assert n in msg, (n, msg)


# ---------------------------------------------------------------------------------------------------------------
# oracle: py-rattler on generated channels


def _synth():
    spec = importlib.util.spec_from_file_location("synth_repodata", REPO / "benchmarks" / "synth_repodata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


@pytest.fixture(scope="module")
def synth_channel(tmp_path_factory) -> tuple[Path, list[PackageRecord]]:
    d = _synth().write_channel(tmp_path_factory.mktemp("synth") / "chan", 3000, seed=1)
    url = d.as_uri()
    recs = load_repodata(d / "linux-64" / "repodata.json", url) + load_repodata(d / "noarch" / "repodata.json", url, "noarch")
    return d, recs


def _rattler_solve(chan_dirs: Path | Sequence[Path], specs: list[str], vps: Sequence[PackageRecord],
                   priority: str = "strict") -> dict[str, tuple[str, str]] | None:
    rattler = pytest.importorskip("rattler")
    srcs = []
    for chan_dir in [chan_dirs] if isinstance(chan_dirs, Path) else chan_dirs:
        ch = rattler.Channel(chan_dir.as_uri())
        srcs += [rattler.SparseRepoData(ch, sd, str(chan_dir / sd / "repodata.json")) for sd in ("linux-64", "noarch")]
    vp = [rattler.GenericVirtualPackage(rattler.PackageName(r.name), rattler.Version(r.version),
                                        rattler.BuildString(r.build)) for r in vps]
    prio = {"strict": rattler.ChannelPriority.Strict, "disabled": rattler.ChannelPriority.Disabled}[priority]
    try:
        got = asyncio.run(rattler.solve_with_sparse_repodata(specs, srcs, virtual_packages=vp, channel_priority=prio))
    except Exception as e:  # rattler's SolverError: unsatisfiable
        if "solve" not in type(e).__name__.lower() and "unsat" not in str(e).lower() and "cannot" not in str(e).lower():
            raise
        return None
    return {r.name.normalized: (str(r.version), str(r.build)) for r in got}


@dataclass
class OracleCase:
    specs: list[str]
    ours: list[PackageRecord] | None  # our solution (pruned pool), None if unsatisfiable
    unpruned: list[PackageRecord] | None  # the same request on the unpruned pool
    theirs: dict[str, tuple[str, str]] | None  # rattler's {name: (version, build)}, None if unsatisfiable


@pytest.fixture(scope="module")
def oracle_cases(synth_channel) -> list[OracleCase]:
    """60 random requests on the generated channel, each solved by us (pruned and unpruned) and by rattler (when
    py-rattler is installed; the tests that compare with it skip otherwise)."""
    have_rattler = importlib.util.find_spec("rattler") is not None
    chan_dir, recs = synth_channel
    rng = random.Random(7)
    versions: dict[str, list[str]] = {}
    for r in recs:
        versions.setdefault(r.name, []).append(r.version)
    names = sorted(versions)
    popular = ["python", "numpy", "pandas", "libblas", "openssl", "pip"]

    def random_spec() -> str:
        n = rng.choice(names) if rng.random() < 0.6 else rng.choice(popular)
        vs = sorted(set(versions[n]), key=VersionOrder)
        v = rng.choice(vs)
        k = rng.random()
        if k < 0.4 or len(vs) == 1:
            return n
        if k < 0.6:
            return f"{n} >={v}"
        if k < 0.8:
            return f"{n} <{vs[-1]}"
        return f"{n} {'.'.join(v.split('.')[:2])}.*"

    def ours(specs: list[str], prune: bool) -> list[PackageRecord] | None:
        try:
            return solve([recs], specs, LINUX_VP, "strict", prune=prune)
        except SolveError:
            return None

    cases = []
    for _ in range(60):
        specs = sorted({random_spec() for _ in range(rng.randint(1, 4))})
        theirs = _rattler_solve(chan_dir, specs, LINUX_VP) if have_rattler else None
        cases.append(OracleCase(specs, ours(specs, True), ours(specs, False), theirs))
    return cases


def test_oracle_our_solutions_are_valid(oracle_cases: list[OracleCase]) -> None:
    solved = [c for c in oracle_cases if c.ours is not None]
    assert len(solved) >= 15, "the generated requests should mostly be satisfiable"
    for c in solved:
        check_valid(c.ours, c.specs, LINUX_VP)  # type: ignore[arg-type]
    for c in oracle_cases:
        if c.unpruned is not None:
            check_valid(c.unpruned, c.specs, LINUX_VP)


def test_pruning_changes_neither_solvability_nor_requested_versions(oracle_cases: list[OracleCase]) -> None:
    for c in oracle_cases:
        assert (c.unpruned is None) == (c.ours is None), c.specs
        if c.ours is None or c.unpruned is None:
            continue
        fv, ov = pick(c.unpruned), pick(c.ours)
        for s in c.specs:
            n = MatchSpec(s).name
            assert fv[n].split("-")[0] == ov[n].split("-")[0], (s, fv[n], ov[n])


def test_oracle_rattler_agrees_on_what_is_solvable(oracle_cases: list[OracleCase], capsys) -> None:
    pytest.importorskip("rattler")
    both = only_rattler = only_us = neither = same = 0
    diffs: list[str] = []
    for c in oracle_cases:
        if c.theirs is None and c.ours is None:
            neither += 1
        elif c.ours is None:
            only_rattler += 1
            diffs.append(f"{c.specs}: only rattler found a solution")
        elif c.theirs is None:
            only_us += 1  # rattler should not miss a valid solution (ours was checked above)
            diffs.append(f"{c.specs}: only we found a solution")
        else:
            both += 1
            ours = {r.name: (r.version, r.build) for r in c.ours}
            if ours == c.theirs:
                same += 1
            else:
                changed = {k: (ours.get(k), c.theirs.get(k)) for k in sorted(set(ours) | set(c.theirs))
                           if ours.get(k) != c.theirs.get(k)}
                diffs.append(f"{c.specs}: {changed}")
    with capsys.disabled():
        print(f"\noracle: {both} solved by both ({same} identical), {neither} unsatisfiable for both, "
              f"{only_rattler} only rattler, {only_us} only us; differences:")
        for d in diffs:
            print("  ", d)
    assert both + neither + only_rattler + only_us == len(oracle_cases)
    assert both >= 15, "the generated requests should mostly be satisfiable"
    assert only_rattler == 0, diffs
    assert only_us == 0, diffs


def test_oracle_requested_versions_at_least_rattlers(oracle_cases: list[OracleCase]) -> None:
    pytest.importorskip("rattler")
    compared = 0
    for c in oracle_cases:
        if c.ours is None or c.theirs is None:
            continue
        ours = {r.name: (r.version, r.build) for r in c.ours}
        for s in c.specs:
            n = MatchSpec(s).name
            assert VersionOrder(ours[n][0]) >= VersionOrder(c.theirs[n][0]), (s, ours[n], c.theirs[n])
            compared += 1
    assert compared >= 15


def test_oracle_rattler_two_channels(tmp_path: Path) -> None:
    synth = _synth()
    dirs = [synth.write_channel(tmp_path / "a", 2000, seed=11), synth.write_channel(tmp_path / "b", 3000, seed=12)]
    chans = [load_repodata(d / "linux-64" / "repodata.json", d.as_uri()) +
             load_repodata(d / "noarch" / "repodata.json", d.as_uri(), "noarch") for d in dirs]
    first_channel: dict[str, str] = {}
    for recs in chans:
        for r in recs:
            first_channel.setdefault(r.name, r.channel)
    names = sorted(first_channel)
    shared = sorted({r.name for r in chans[0]} & {r.name for r in chans[1]})
    rng = random.Random(2)
    solved = 0
    for priority in ("strict", "disabled"):
        for _ in range(25):
            specs = sorted({rng.choice(shared if rng.random() < 0.5 else names) for _ in range(rng.randint(1, 3))})
            theirs = _rattler_solve(dirs, specs, LINUX_VP, priority)
            try:
                ours = solve(chans, specs, LINUX_VP, channel_priority=priority)  # type: ignore[arg-type]
            except SolveError:
                ours = None
            assert (ours is None) == (theirs is None), (priority, specs)
            if ours is None or theirs is None:
                continue
            solved += 1
            check_valid(ours, specs, LINUX_VP)
            for s in specs:
                n = MatchSpec(s).name
                assert VersionOrder(pick(ours)[n].split("-")[0]) >= VersionOrder(theirs[n][0]), (s, priority)
            if priority == "strict":  # every name from the first channel that has it
                assert all(r.channel == first_channel[r.name] for r in ours)
    assert solved >= 20


def test_features_minimised_through_dependencies() -> None:
    # only the mkl libblas carries track_features: the blas metapackage must follow the featureless variant
    chan = [rec("libblas", "3.9.0", "20_openblas", 20), rec("libblas", "3.9.0", "21_mkl", 21, track_features=("blas_mkl",)),
            rec("blas", "2.0", "openblas", depends=["libblas 3.9.0 *_openblas"], timestamp=1),
            rec("blas", "2.0", "mkl", depends=["libblas 3.9.0 *_mkl"], timestamp=2)]
    assert pick(solve([chan], ["blas"])) == {"blas": "2.0-openblas", "libblas": "3.9.0-20_openblas"}
    assert pick(solve([chan], ["blas * mkl"])) == {"blas": "2.0-mkl", "libblas": "3.9.0-21_mkl"}
