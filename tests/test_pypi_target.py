"""Target tags and markers, derived without running the target; checked against packaging's own host tags."""

from __future__ import annotations

import platform
import sys

import pytest
from packaging import tags
from packaging.markers import Marker, default_environment

from oci_conda.errors import SpecError
from oci_conda.pypi.target import Target, TargetPython


def test_platform_tags_follow_glibc_and_cpu() -> None:
    x86 = Target("linux-64", TargetPython((3, 11, 7)), (2, 28))
    plats = x86.platforms()
    assert plats[0] == "manylinux_2_28_x86_64" and plats[-1] == "linux_x86_64"
    assert plats.index("manylinux2014_x86_64") == plats.index("manylinux_2_17_x86_64") + 1
    assert "manylinux2010_x86_64" in plats and "manylinux1_x86_64" in plats
    assert "manylinux_2_29_x86_64" not in plats
    arm = Target("linux-aarch64", TargetPython((3, 11, 7)), (2, 17)).platforms()
    assert arm == ["manylinux_2_17_aarch64", "manylinux2014_aarch64", "linux_aarch64"]
    with pytest.raises(SpecError):
        Target("osx-arm64", TargetPython((3, 11, 7)))


def test_abis_and_tag_order() -> None:
    t = Target("linux-aarch64", TargetPython.from_conda("3.12.4", "h2c7b2c0_0_cpython"), (2, 17))
    assert t.abis() == ["cp312", "abi3", "none"]
    got = [str(x) for x in t.tags()]
    assert got[0] == "cp312-cp312-manylinux_2_17_aarch64"
    assert "cp38-abi3-manylinux2014_aarch64" in got and "py3-none-any" in got
    assert not any("x86_64" in g for g in got)
    ft = TargetPython.from_conda("3.13.1", "h9a34b6e_5_cp313t")
    assert ft.abi == "cp313t" and Target("linux-64", ft).abis() == ["cp313t", "none"]


@pytest.mark.skipif(sys.platform != "linux" or platform.machine() != "x86_64" or
                    sys.implementation.name != "cpython", reason="compares with this host's own tags")
def test_same_tags_as_packaging_computes_for_this_host() -> None:
    glibc = tuple(int(p) for p in platform.libc_ver()[1].split(".")[:2])
    v = sys.version_info
    ours = {str(t) for t in Target("linux-64", TargetPython((v.major, v.minor, v.micro)), glibc).tags()}
    host = {str(t) for t in tags.sys_tags() if "musllinux" not in str(t)}
    assert host <= ours  # ours adds only the older cpXY-abi3 spellings packaging also yields for other pythons
    assert {t for t in ours if "manylinux" in t} == {t for t in host if "manylinux" in t}


def test_marker_environment_is_the_targets() -> None:
    env = Target("linux-aarch64", TargetPython((3, 10, 14))).marker_environment()
    assert set(env) == set(default_environment())
    assert env["platform_machine"] == "aarch64" and env["python_full_version"] == "3.10.14"
    assert Marker('platform_machine == "aarch64" and python_version < "3.11"').evaluate(env)
    assert not Marker('sys_platform == "win32"').evaluate(env)
