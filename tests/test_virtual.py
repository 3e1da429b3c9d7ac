"""Virtual packages describe the TARGET platform, whatever host the build runs on."""

from __future__ import annotations

import pytest

from oci_conda.conda.virtual import DEFAULT_GLIBC, DEFAULT_LINUX, virtual_packages
from oci_conda.errors import SpecError


def as_dict(recs) -> dict[str, tuple[str, str]]:
    return {r.name: (r.version, r.build) for r in recs}


def test_linux_defaults() -> None:
    got = virtual_packages("linux-64", env={})
    assert as_dict(got) == {
        "__unix": ("0", "0"), "__linux": (DEFAULT_LINUX, "0"), "__glibc": (DEFAULT_GLIBC, "0"),
        "__archspec": ("1", "x86_64"),
    }
    assert all(r.channel == "@" and r.subdir == "linux-64" for r in got)
    assert [r.name for r in got] == sorted(r.name for r in got)


@pytest.mark.parametrize("subdir, arch", [
    ("linux-aarch64", "aarch64"), ("linux-ppc64le", "ppc64le"), ("linux-s390x", "s390x"), ("linux-64", "x86_64"),
    ("osx-arm64", "arm64"), ("win-64", "x86_64"),
])
def test_target_not_host(subdir: str, arch: str) -> None:
    # whatever this host is (x86_64 in CI), the archspec follows the requested subdir
    got = as_dict(virtual_packages(subdir, env={}))
    assert got["__archspec"] == ("1", arch)


def test_osx_and_windows() -> None:
    osx = as_dict(virtual_packages("osx-arm64", env={}))
    assert osx["__osx"] == ("11.0", "0") and "__unix" in osx and "__glibc" not in osx and "__linux" not in osx
    assert as_dict(virtual_packages("osx-64", env={}))["__osx"] == ("10.15", "0")
    win = as_dict(virtual_packages("win-64", env={}))
    assert "__win" in win and "__unix" not in win and "__glibc" not in win


def test_overrides_from_file_and_env() -> None:
    got = as_dict(virtual_packages("linux-aarch64", {"glibc": "2.36", "cuda": "12.2"}, env={}))
    assert got["__glibc"] == ("2.36", "0") and got["__cuda"] == ("12.2", "0")
    # the environment beats the file; an empty value removes the package, as in conda
    env = {"CONDA_OVERRIDE_GLIBC": "2.39", "CONDA_OVERRIDE_CUDA": "", "CONDA_OVERRIDE_ARCHSPEC": "neoverse_v1",
           "CONDA_OVERRIDE_LINUX": "6.1"}
    got = as_dict(virtual_packages("linux-aarch64", {"glibc": "2.36", "__cuda": "12.2"}, env=env))
    assert got["__glibc"] == ("2.39", "0") and "__cuda" not in got
    assert got["__archspec"] == ("1", "neoverse_v1") and got["__linux"] == ("6.1", "0")
    assert "__glibc" not in as_dict(virtual_packages("linux-64", {"glibc": ""}, env={}))


def test_cuda_only_when_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    assert "__cuda" not in as_dict(virtual_packages("linux-64", env={}))
    monkeypatch.setenv("CONDA_OVERRIDE_CUDA", "11.8")
    assert as_dict(virtual_packages("linux-64"))["__cuda"] == ("11.8", "0")  # env defaults to os.environ


@pytest.mark.parametrize("subdir, overrides", [
    ("noarch", None), ("plan9-64", None), ("linux-64", {"glibc": "not a version!"}), ("linux-64", {"kernel": "6"}),
])
def test_bad_input(subdir: str, overrides) -> None:
    with pytest.raises(SpecError):
        virtual_packages(subdir, overrides, env={})
