"""Resolving for the target with the host's pip, against a simple index on 127.0.0.1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from wheelhouse import SimpleIndex, build_sdist, build_wheel, real_wheelhouse, sha256_file

from oci_conda.errors import SolveError
from oci_conda.pypi.installed import InstalledDist
from oci_conda.pypi.records import WheelRecord
from oci_conda.pypi.requirements import parse_pip_section
from oci_conda.pypi.resolve import resolve_wheels
from oci_conda.pypi.target import Target, TargetPython

SECRET = "s3cr3t-t0ken"
PY = TargetPython((3, 11, 7))
X86 = Target("linux-64", PY, (2, 28))
ARM = Target("linux-aarch64", PY, (2, 28))


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleIndex]:
    d = tmp_path_factory.mktemp("wheels")
    for arch in ("x86_64", "aarch64"):
        build_wheel(d, "fast", "1.0", tag=f"cp311-cp311-manylinux_2_17_{arch}.manylinux2014_{arch}")
    build_wheel(d, "fast", "0.9")
    build_wheel(d, "armonly", "1.0")
    build_wheel(d, "oldpy", "1.0")
    build_wheel(d, "pyver", "1.0", requires=('oldpy; python_version < "3.11"',))
    build_wheel(d, "app", "2.0", requires=("fast>=1", 'armonly; platform_machine == "aarch64"',
                                           'oldpy; python_version < "3.11"', "setuptools>=60"),
                extras={"x": ("numpy<2",), "y": ("extra-dep",)})
    build_wheel(d, "extra-dep", "0.1")
    build_wheel(d, "numpy", "1.26.4")
    build_wheel(d, "setuptools", "80.9.0")
    build_wheel(d, "setuptools", "81.0.0")
    build_wheel(d, "newer", "1.0", requires_python=">=3.8")
    build_wheel(d, "newer", "2.0", requires_python=">=3.12")
    build_sdist(d, "srconly", "1.0")
    idx = SimpleIndex(d, auth=("alice", SECRET))
    yield idx
    idx.stop()


def section(index: SimpleIndex, *lines: str, base: Path = Path(".")):
    entries = [f"--index-url {index.simple_url('alice', SECRET)}", *lines]
    return parse_pip_section([(t, f"env.yml:{i + 5}") for i, t in enumerate(entries)], base_dir=base, environ={})


def names(records: list[WheelRecord]) -> dict[str, str]:
    return {r.name: r.filename for r in records}


def no_secret(*things: object) -> None:
    for t in things:
        assert SECRET not in repr(t) and "alice" not in repr(t)


def test_each_target_gets_its_own_wheels(index: SimpleIndex, cache_env: Path) -> None:
    x86 = resolve_wheels(section(index, "app"), X86, installed=[InstalledDist("setuptools", "80.9.0")])
    arm = resolve_wheels(section(index, "app"), ARM, installed=[InstalledDist("setuptools", "80.9.0")])
    assert names(x86) == {"app": "app-2.0-py3-none-any.whl",
                          "fast": "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"}
    # platform_machine is the target's, not the x86_64 host's: armonly comes only for aarch64.
    assert names(arm) == {"app": "app-2.0-py3-none-any.whl", "armonly": "armonly-1.0-py3-none-any.whl",
                          "fast": "fast-1.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"}
    app = x86[0]
    assert app.requested and not app.direct and app.sha256 == sha256_file(index.directories[0] / app.filename)
    assert app.url == f"{index.url}/files/app-2.0-py3-none-any.whl" and app.size is None
    assert not x86[1].requested
    no_secret(x86, arm)


def test_python_version_markers_and_requires_python(index: SimpleIndex, cache_env: Path) -> None:
    py310 = Target("linux-64", TargetPython((3, 10, 14)), (2, 28))
    got = names(resolve_wheels(section(index, "pyver", "newer"), py310))
    assert "oldpy" in got and got["newer"] == "newer-1.0-py3-none-any.whl"
    assert "oldpy" not in names(resolve_wheels(section(index, "pyver"), X86))
    py312 = Target("linux-64", TargetPython((3, 12, 1)), (2, 28))
    got = names(resolve_wheels(section(index, "newer"), py312))
    assert got == {"newer": "newer-2.0-py3-none-any.whl"}


def test_extras(index: SimpleIndex, cache_env: Path) -> None:
    got = names(resolve_wheels(section(index, "app[y]"), X86))
    assert "extra-dep" in got and "setuptools" in got


def test_conda_dists_count_as_installed(index: SimpleIndex, cache_env: Path) -> None:
    before = len(index.log)
    got = resolve_wheels(section(index, "app", "setuptools>=70"), X86,
                         installed=[InstalledDist("setuptools", "80.9.0", package="setuptools")])
    assert "setuptools" not in names(got)
    assert not any(p.startswith("/files/setuptools") for p, _ in index.log[before:])  # not even downloaded
    # Without conda's, pip takes the newest from the index.
    assert names(resolve_wheels(section(index, "setuptools"), X86))["setuptools"].startswith("setuptools-81.0.0")
    # A conda version the index never had is still "installed" (pip is offered a stand-in, not the index).
    got = resolve_wheels(section(index, "app"), X86, installed=[InstalledDist("setuptools", "75.1.0.post1")])
    assert "setuptools" not in names(got)


def test_conflict_with_conda_is_one_line_naming_both(index: SimpleIndex, cache_env: Path) -> None:
    with pytest.raises(SolveError) as err:
        resolve_wheels(section(index, "app[x]"), X86,
                       installed=[InstalledDist("numpy", "2.1.0", package="numpy"),
                                  InstalledDist("setuptools", "80.9.0")])
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("pip: conflicting requirements for linux-64")
    assert "depends on numpy<2" in msg and "conda installed numpy 2.1.0" in msg
    no_secret(msg)


def test_conflict_inside_the_section(index: SimpleIndex, cache_env: Path) -> None:
    with pytest.raises(SolveError) as err:
        resolve_wheels(section(index, "app", "fast<1"), X86)
    msg = str(err.value)
    assert "\n" not in msg and "fast<1" in msg and "env.yml:7" in msg and "depends on fast>=1" in msg


def test_source_only_is_one_line(index: SimpleIndex, cache_env: Path) -> None:
    with pytest.raises(SolveError) as err:
        resolve_wheels(section(index, "requests", "srconly"), X86)
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("env.yml:6: pip: no wheel of") and "a wheel is needed" in msg
    no_secret(msg)


def test_hash_checking_mode(index: SimpleIndex, cache_env: Path) -> None:
    wheel = index.directories[0] / "newer-1.0-py3-none-any.whl"
    good = resolve_wheels(section(index, f"newer==1.0 --hash=sha256:{sha256_file(wheel)}"), X86)
    assert [(r.name, r.sha256) for r in good] == [("newer", sha256_file(wheel))]
    with pytest.raises(SolveError) as err:
        resolve_wheels(section(index, f"newer==1.0 --hash=sha256:{'0' * 64}"), X86)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("env.yml:6: pip: newer==1.0: the wheel's sha256 is " + sha256_file(wheel))
    # Dependencies must be hashed too, as in pip.
    with pytest.raises(SolveError) as err:
        app = index.directories[0] / "app-2.0-py3-none-any.whl"
        resolve_wheels(section(index, f"app==2.0 --hash=sha256:{sha256_file(app)}"), X86,
                       installed=[InstalledDist("setuptools", "80.9.0")])
    msg = str(err.value)
    assert "\n" not in msg and "hash-checking mode" in msg and "fast>=1 (needed by app==2.0)" in msg
    # Every dependency hashed; conda's setuptools still counts as installed (its stand-in is hashed by us).
    fast = index.directories[0] / "fast-1.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"
    got = resolve_wheels(section(index, f"app==2.0 --hash=sha256:{sha256_file(app)}",
                                 f"fast==1.0 --hash=sha256:{sha256_file(fast)}"), X86,
                         installed=[InstalledDist("setuptools", "80.9.0")])
    assert [(r.name, r.sha256) for r in got] == [("app", sha256_file(app)), ("fast", sha256_file(fast))]


def test_direct_wheel_url(index: SimpleIndex, cache_env: Path) -> None:
    wheel = index.directories[0] / "oldpy-1.0-py3-none-any.whl"
    url = f"http://alice:{SECRET}@127.0.0.1:{index.port}/files/{wheel.name}#sha256={sha256_file(wheel)}"
    [rec] = resolve_wheels(section(index, f"oldpy @ {url}"), X86)
    assert rec.direct and rec.requested and rec.sha256 == sha256_file(wheel)
    assert rec.url == f"{index.url}/files/{wheel.name}"
    no_secret(rec)


def test_real_wheels_for_two_platforms(cache_env: Path) -> None:
    house = real_wheelhouse()
    idx = SimpleIndex(house)
    try:
        v = sys.version_info
        py = TargetPython((v.major, v.minor, v.micro))
        lines = [(f"--index-url {idx.simple_url()}", "env.yml:1"), ("requests", "env.yml:2"),
                 ("markupsafe", "env.yml:3")]
        x86 = names(resolve_wheels(parse_pip_section(lines, base_dir=".", environ={}), Target("linux-64", py)))
        assert {"requests", "urllib3", "idna", "certifi", "charset-normalizer", "markupsafe"} <= set(x86)
        assert x86["markupsafe"].endswith("x86_64.whl")
        arm = names(resolve_wheels(parse_pip_section(lines[::2], base_dir=".", environ={}),
                                   Target("linux-aarch64", py)))
        assert arm["markupsafe"].endswith("aarch64.whl")
    finally:
        idx.stop()


def test_index_credentials_from_the_environment(index: SimpleIndex, cache_env: Path) -> None:
    env = {"PIP_INDEX_URL": index.simple_url("alice", SECRET)}
    sec = parse_pip_section([("oldpy", "env.yml:3")], base_dir=".", environ=env)
    [rec] = resolve_wheels(sec, X86)
    assert rec.name == "oldpy"
    no_secret(rec)
    # Without them the index answers 401 and pip finds nothing: one line, no secret.
    with pytest.raises(SolveError) as err:
        resolve_wheels(parse_pip_section([(f"--index-url {index.simple_url()}", "env.yml:2"),
                                          ("oldpy", "env.yml:3")], base_dir=".", environ={}), X86)
    assert "\n" not in str(err.value) and "oldpy" in str(err.value)


def test_find_links_without_an_index(index: SimpleIndex, tmp_path: Path, cache_env: Path) -> None:
    wheels = index.directories[0]
    lines = [("--no-index", "env.yml:1"), ("--find-links wheels", "env.yml:2"), ("pyver", "env.yml:3")]
    (tmp_path / "wheels").symlink_to(wheels)
    [rec] = resolve_wheels(parse_pip_section(lines, base_dir=tmp_path, environ={}), X86)
    assert rec.name == "pyver" and rec.url == (wheels / rec.filename).resolve().as_uri()
    assert rec.sha256 == sha256_file(wheels / rec.filename)  # pip hashes local files itself


def test_time_cap(index: SimpleIndex, cache_env: Path) -> None:
    with pytest.raises(SolveError, match="took longer than 0s"):
        resolve_wheels(section(index, "app"), X86, timeout=0.05)


def test_extras_of_a_conda_dist_come_from_its_metadata(index: SimpleIndex, cache_env: Path) -> None:
    conda_app = InstalledDist("app", "2.0", requires_dist=('extra-dep; extra == "y"',))
    assert names(resolve_wheels(section(index, "app[y]"), X86, installed=[conda_app])) == {
        "extra-dep": "extra_dep-0.1-py3-none-any.whl"}
