"""conda's Python distributions, read from package file lists, and the stand-in wheels that stand for them."""

from __future__ import annotations

import zipfile
from pathlib import Path

from packaging.utils import parse_wheel_filename

from oci_conda.pypi.installed import InstalledDist, dist_from_metadata, dists_from_paths, stand_in_wheel
from oci_conda.pypi.target import Target, TargetPython


def test_dists_from_conda_file_lists() -> None:
    paths = ["lib/python3.11/site-packages/numpy-2.1.0.dist-info/METADATA",
             "lib/python3.11/site-packages/numpy/__init__.py",
             "site-packages/setuptools-80.9.0.dist-info/RECORD",  # noarch: python
             "lib/python3.11/site-packages/PyYAML-6.0.1-py3.11.egg-info",
             "lib/python3.11/site-packages/foo_bar-1.0rc1.egg-info/PKG-INFO",
             "bin/numpy-config"]
    got = {(d.key, d.version) for d in dists_from_paths(paths, "pkg")}
    assert got == {("numpy", "2.1.0"), ("setuptools", "80.9.0"), ("pyyaml", "6.0.1"), ("foo-bar", "1.0rc1")}


def test_stand_in_carries_the_top_tag_and_metadata(tmp_path: Path) -> None:
    target = Target("linux-aarch64", TargetPython((3, 12, 3)), (2, 28))
    dist = InstalledDist("Ruamel.Yaml", "0.18.6", requires_dist=("ruamel.yaml.clib>=0.2.7",))
    path, digest = stand_in_wheel(dist, target, tmp_path)
    name, version, build, tags = parse_wheel_filename(path.name)
    assert (name, str(version), build) == ("ruamel-yaml", "0.18.6", (0, ""))
    assert {str(t) for t in tags} == {"cp312-cp312-manylinux_2_28_aarch64"}
    with zipfile.ZipFile(path) as zf:
        meta = zf.read("ruamel_yaml-0.18.6.dist-info/METADATA").decode()
    assert "Requires-Dist: ruamel.yaml.clib>=0.2.7" in meta and digest.startswith("sha256:")
    again, digest2 = stand_in_wheel(dist, target, tmp_path / ".." / tmp_path.name)
    assert digest2 == digest  # reproducible bytes
    assert not InstalledDist("odd", "nightly-latest").pinnable() and InstalledDist("x", "1.0").pinnable()


def test_dist_from_metadata() -> None:
    text = ("Metadata-Version: 2.1\nName: requests\nVersion: 2.32.3\nRequires-Dist: idna<4,>=2.5\n"
            "Requires-Dist: PySocks!=1.5.7,>=1.5.6; extra == \"socks\"\n\nLong description\nName: not-this\n")
    d = dist_from_metadata(text, package="requests")
    assert (d.key, d.version, d.package) == ("requests", "2.32.3", "requests")
    assert d.requires_dist == ("idna<4,>=2.5", 'PySocks!=1.5.7,>=1.5.6; extra == "socks"')
