"""pixi.lock v4, v5 and v6: every real file parses; environments, platforms, PyPI entries; one-line errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from oci_conda.conda.pixilock import is_pixi_lock, lock_environments, parse_pixi_lock, read_pixi_lock
from oci_conda.errors import SpecError

LOCKS = Path(os.environ.get("OCI_CONDA_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "realdata" / "envs" \
    / "lockfiles" / "pixi-lock"
REAL = sorted(LOCKS.glob("*")) if LOCKS.is_dir() else []
PARAMS = [pytest.param(p, id=p.name) for p in REAL] or [
    pytest.param(None, id="no-realdata", marks=pytest.mark.skip(reason=f"{LOCKS} not found"))]


@pytest.mark.parametrize("path", PARAMS)
def test_every_real_pixi_lock(path: Path) -> None:
    doc = yaml.safe_load(path.read_text())
    lock = read_pixi_lock(path)
    env = doc["environments"]["default"]
    assert lock.environment == "default" and lock.channels
    assert set(lock.platforms) == set(env["packages"])
    for platform, selectors in env["packages"].items():
        got = lock.platforms[platform]
        assert [r.url for r in got.conda] == [s["conda"] for s in selectors]
        for r in got.conda:
            assert r.name and r.version and r.build and r.fn.startswith(f"{r.name}-{r.version}-{r.build}")
            assert r.subdir in (platform, "noarch") and r.url.rsplit("/", 2)[-2] == r.subdir
            assert r.sha256 and len(r.sha256) == 64 and r.md5 and len(r.md5) == 32
            assert r.channel and r.url.startswith(r.channel + "/")
        # one record per name: a platform's environment is installable as is
        assert len({r.name for r in got.conda}) == len(got.conda)
    # every record of the file is reachable with the right checksums
    by_url = {}
    for p in doc["packages"]:
        by_url.setdefault(p.get("url") or p.get("conda"), []).append(p)
    for platform, got in lock.platforms.items():
        for r in got.conda:
            assert r.sha256 in {p["sha256"] for p in by_url[r.url]}


def test_v4_noarch_record_repeated_per_platform_takes_its_own() -> None:
    """conda-lock-converted v4 files repeat a noarch record per platform, with that platform as subdir."""
    path = LOCKS / "rattler-v4-python-lock.yml"
    if not path.is_file():
        pytest.skip("realdata not found")
    lock = read_pixi_lock(path, platforms=["linux-aarch64", "win-64"])
    assert set(lock.platforms) == {"linux-aarch64", "win-64"}
    pip = [r for r in lock.platforms["linux-aarch64"].conda if r.name == "pip"]
    assert len(pip) == 1 and pip[0].subdir == "noarch" and pip[0].depends == ("python >=3.7", "setuptools", "wheel")


def test_v4_full_records_keep_every_field() -> None:
    path = LOCKS / "rattler-v4-turtlesim-lock.yml"
    if not path.is_file():
        pytest.skip("realdata not found")
    recs = {r.name: r for r in read_pixi_lock(path, platforms=["linux-64"]).platforms["linux-64"].conda}
    m = recs["_openmp_mutex"]
    assert (m.build, m.build_number, m.size, m.timestamp, m.license) == ("2_gnu", 16, 23621, 1650670423406,
                                                                        "BSD-3-Clause")
    assert m.constrains == ("openmp_impl 9999",)
    assert recs["aiosignal"].noarch == "python" and recs["aiosignal"].subdir == "noarch"
    assert "robostack-staging" in {r.channel.rsplit("/", 1)[-1] for r in recs.values()}


def test_v6_fields_derived_from_the_file_name() -> None:
    path = LOCKS / "rattler-v6-python-from-conda-only-lock.yml"
    if not path.is_file():
        pytest.skip("realdata not found")
    recs = {r.name: r for r in read_pixi_lock(path).platforms["osx-arm64"].conda}
    py = recs["python"]
    assert (py.version, py.build, py.build_number, py.subdir) == ("3.13.0", "hbbac1ca_101_cp313", 101, "osx-arm64")
    assert recs["bzip2"].build_number == 7 and recs["bzip2"].depends == ("__osx >=11.0",)
    assert recs["libexpat"].constrains == ("expat 2.6.4.*",)
    assert recs["tzdata"].subdir == "noarch" and recs["tzdata"].timestamp == 1728047496079


SHA = "a" * 64
MD5 = "b" * 32

V6 = f"""\
version: 6
environments:
  default:
    channels:
      - url: https://conda.example.invalid/conda-forge/
    indexes:
      - https://pypi.example.invalid/simple
    packages:
      linux-64:
        - conda: https://conda.example.invalid/conda-forge/linux-64/python-3.12.1-hab00c5b_1_cpython.conda
        - conda: ./local/noarch/mypkg-1.0-pyh_0.conda
        - pypi: https://files.example.invalid/requests-2.31.0-py3-none-any.whl
          extras: [socks]
        - pypi: ./src/mylib
  test:
    channels:
      - url: https://conda.example.invalid/conda-forge/
    packages:
      linux-aarch64:
        - conda: https://conda.example.invalid/conda-forge/noarch/tzdata-2024b-hc8b5060_0.conda
packages:
  - conda: https://conda.example.invalid/conda-forge/linux-64/python-3.12.1-hab00c5b_1_cpython.conda
    build_number: 1
    sha256: {SHA}
    md5: {MD5}
    depends:
      - libzlib >=1.2.13
    size: 123
    timestamp: 1700000000
  - conda: ./local/noarch/mypkg-1.0-pyh_0.conda
    noarch: python
    sha256: {SHA}
  - conda: https://conda.example.invalid/conda-forge/noarch/tzdata-2024b-hc8b5060_0.conda
    sha256: {SHA}
  - pypi: https://files.example.invalid/requests-2.31.0-py3-none-any.whl
    name: requests
    version: 2.31.0
    sha256: {SHA.upper()}
    requires_dist:
      - charset-normalizer<4,>=2
      - PySocks!=1.5.7,>=1.5.6 ; extra == 'socks'
    requires_python: '>=3.7'
  - pypi: ./src/mylib
    name: mylib
    version: 0.1.0
    editable: true
"""


def test_v6_with_pypi_and_local_paths(tmp_path: Path) -> None:
    p = tmp_path / "pixi.lock"
    p.write_text(V6)
    lock = read_pixi_lock(p)
    assert lock.channels == ("https://conda.example.invalid/conda-forge",)
    plat = lock.platforms["linux-64"]
    py, mine = plat.conda
    assert (py.name, py.version, py.build, py.build_number, py.depends, py.size, py.timestamp) == (
        "python", "3.12.1", "hab00c5b_1_cpython", 1, ("libzlib >=1.2.13",), 123, 1700000000000)
    assert mine.url == (tmp_path / "local" / "noarch" / "mypkg-1.0-pyh_0.conda").as_uri()
    assert mine.noarch == "python" and mine.subdir == "noarch"
    req, lib = plat.pypi
    assert (req.name, req.version, req.sha256, req.extras, req.requires_python) == (
        "requests", "2.31.0", SHA, ("socks",), ">=3.7")
    assert req.requires_dist[1] == "PySocks!=1.5.7,>=1.5.6 ; extra == 'socks'"
    assert (lib.name, lib.url, lib.editable, lib.sha256) == ("mylib", "./src/mylib", True, None)
    assert lock_environments(V6, "pixi.lock") == ["default", "test"]
    assert is_pixi_lock(yaml.safe_load(V6)) and not is_pixi_lock({"version": 1, "package": []})
    test = read_pixi_lock(p, environment="test")
    assert [r.name for r in test.platforms["linux-aarch64"].conda] == ["tzdata"]


V4 = f"""\
version: 4
environments:
  default:
    channels:
      - url: https://conda.example.invalid/conda-forge/
    packages:
      linux-64:
        - conda: https://conda.example.invalid/conda-forge/linux-64/xz-5.2.6-h166bdaf_0.tar.bz2
        - pypi: https://files.example.invalid/six-1.16.0-py2.py3-none-any.whl
packages:
  - kind: conda
    name: xz
    version: 5.2.6
    build: h166bdaf_0
    subdir: linux-64
    url: https://conda.example.invalid/conda-forge/linux-64/xz-5.2.6-h166bdaf_0.tar.bz2
    sha256: {SHA}
  - kind: pypi
    name: six
    version: 1.16.0
    url: https://files.example.invalid/six-1.16.0-py2.py3-none-any.whl
    sha256: {SHA}
    requires_python: '>=2.7, !=3.0.*'
"""


@pytest.mark.parametrize("version", [4, 5])
def test_v4_v5_kind_tagged_records_with_pypi(version: int) -> None:
    lock = parse_pixi_lock(V4.replace("version: 4", f"version: {version}"), "pixi.lock")
    plat = lock.platforms["linux-64"]
    assert [(r.name, r.version, r.build, r.sha256) for r in plat.conda] == [("xz", "5.2.6", "h166bdaf_0", SHA)]
    assert [(w.name, w.version, w.requires_python) for w in plat.pypi] == [("six", "1.16.0", ">=2.7, !=3.0.*")]


@pytest.mark.parametrize("mutate, kwargs, match", [
    (lambda t: t.replace("version: 6", "version: 7"), {}, r"^pixi.lock: version: pixi.lock format 7 is not supported"),
    (lambda t: t, {"environment": "prod"}, r"^pixi.lock: environments: no environment 'prod' \(the lock has: default, test\)"),
    (lambda t: t, {"platforms": ["linux-s390x"]},
     r"^pixi.lock: environments.default.packages: no packages for platform 'linux-s390x' \(the lock has: linux-64\)"),
    (lambda t: t.replace("        - conda: ./local/noarch/mypkg-1.0-pyh_0.conda\n",
                         "        - conda: https://x.invalid/c/linux-64/nope-1-0.conda\n"), {},
     r"^pixi.lock: environments.default.packages.linux-64\[1\]: no package record for https://x.invalid/c/linux-64/nope-1-0.conda"),
    (lambda t: t.replace(f"    md5: {MD5}\n", "    md5: xyz\n"), {}, r"^pixi.lock: packages\[0\].md5: not a md5 hex digest"),
    (lambda t: t.replace("    size: 123\n", "    size: -1\n"), {}, r"packages\[0\].size: expected a non-negative integer"),
    (lambda t: t.replace("      - libzlib >=1.2.13\n", "      - {a: b}\n"), {}, r"packages\[0\].depends\[0\]: expected a string"),
    (lambda t: t.replace("    name: requests\n", ""), {}, r"packages\[3\]: PyPI package without 'name'"),
    (lambda t: t.replace("  - pypi: ./src/mylib\n", "  - wheel: ./src/mylib\n"), {},
     r"packages\[4\]: unknown package kind"),
    (lambda t: "- just a list\n", {}, r"^pixi.lock: not a pixi.lock"),
    (lambda t: "version: [\n", {}, r"^pixi.lock:2: not valid YAML"),
])
def test_errors_are_one_line_naming_file_and_key(mutate, kwargs, match) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SpecError, match=match) as e:
        parse_pixi_lock(mutate(V6), "pixi.lock", base_dir=Path("/srv"), **kwargs)
    assert "\n" not in str(e.value)


def test_relative_path_without_a_directory_is_refused() -> None:
    with pytest.raises(SpecError, match=r"relative package path './local/noarch/mypkg-1.0-pyh_0.conda' needs"):
        parse_pixi_lock(V6, "pixi.lock")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="no such file"):
        read_pixi_lock(tmp_path / "pixi.lock")
