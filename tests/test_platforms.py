"""Platforms as users spell them: conda subdirs, OCI os/arch[/variant], comma lists, CONDA_SUBDIR."""

from __future__ import annotations

import pytest

from oci_conda.errors import SpecError
from oci_conda.platforms import (
    IMAGE_PLATFORMS,
    default_platforms,
    image_platforms,
    parse_conda_subdir,
    parse_platforms,
    platform_for_subdir,
)


@pytest.mark.parametrize("values, want", [
    (["linux-64"], ["linux-64"]),
    (["linux/amd64"], ["linux-64"]),
    (["linux/arm64"], ["linux-aarch64"]),
    (["linux/arm64/v8"], ["linux-aarch64"]),
    (["linux/ppc64le"], ["linux-ppc64le"]),
    (["linux/s390x"], ["linux-s390x"]),
    (["linux/arm/v7"], ["linux-armv7l"]),
    (["LINUX/AMD64"], ["linux-64"]),
    (["linux/amd64,linux/arm64"], ["linux-64", "linux-aarch64"]),
    (["linux-64, linux/arm64", "linux-ppc64le"], ["linux-64", "linux-aarch64", "linux-ppc64le"]),
    (["linux/arm64", "linux-aarch64", "linux/arm64/v8"], ["linux-aarch64"]),  # one subdir, first occurrence
])
def test_spellings(values: list[str], want: list[str]) -> None:
    assert parse_platforms(values) == want


@pytest.mark.parametrize("values, match", [
    (["linux/mips"], r"--platform: unknown platform 'linux/mips' \(known: linux-64, .*linux/amd64"),
    (["osx-arm64"], r"'osx-arm64' is a conda platform but not an image platform"),
    (["amd64"], r"unknown platform 'amd64'"),
    (["linux-64,,linux/arm64"], r"empty platform"),
    (["Linux-64"], r"unknown platform 'Linux-64'"),
])
def test_unknown_spellings_are_one_line(values: list[str], match: str) -> None:
    with pytest.raises(SpecError, match=match) as e:
        parse_platforms(values)
    assert "\n" not in str(e.value)


def test_env_file_platforms_take_any_conda_subdir() -> None:
    assert parse_conda_subdir("osx-arm64", "f:3") == "osx-arm64"
    assert parse_conda_subdir("win-64", "f:3") == "win-64"
    assert parse_conda_subdir("linux/arm64", "f:3") == "linux-aarch64"
    for bad in ("noarch", "macos", "linux/mips"):
        with pytest.raises(SpecError, match=r"^f:3: unknown platform"):
            parse_conda_subdir(bad, "f:3")


def test_default_platforms_order_of_precedence() -> None:
    # the environment file's platforms: (image ones only) win over CONDA_SUBDIR
    assert default_platforms(["linux-64", "osx-arm64", "linux-aarch64"], {"CONDA_SUBDIR": "linux-s390x"}) == [
        "linux-64", "linux-aarch64"]
    # then CONDA_SUBDIR, in either spelling
    assert default_platforms([], {"CONDA_SUBDIR": "linux-aarch64"}) == ["linux-aarch64"]
    assert default_platforms([], {"CONDA_SUBDIR": "linux/ppc64le"}) == ["linux-ppc64le"]
    # then linux-64
    assert default_platforms([], {}) == ["linux-64"]
    assert default_platforms([], {"CONDA_SUBDIR": " "}) == ["linux-64"]


def test_default_platforms_refuses_what_cannot_be_an_image() -> None:
    with pytest.raises(SpecError, match=r"CONDA_SUBDIR=osx-64: 'osx-64' is a conda platform but not an image platform"):
        default_platforms([], {"CONDA_SUBDIR": "osx-64"})
    with pytest.raises(SpecError, match=r"platforms \(osx-arm64, win-64\) include no image platform; give --platform"):
        default_platforms(["osx-arm64", "win-64"], {})


def test_each_oci_spelling_names_the_platform_its_subdir_becomes() -> None:
    """The spelling table and the subdir -> OCI platform table are one table: ``linux/arm/v7`` builds an arm v7
    image, never something else."""
    for subdir, (_plat, names) in IMAGE_PLATFORMS.items():
        plat = platform_for_subdir(subdir)
        for name in names:
            assert parse_platforms([name]) == [subdir]
            os_, arch, *variant = name.split("/")
            aliases = {"x86_64": "amd64", "aarch64": "arm64"}
            assert (os_, aliases.get(arch, arch)) == (plat.os, plat.architecture), name
            if variant:
                assert variant[0] == plat.variant, name


def test_image_platforms_keeps_the_linux_ones_in_order() -> None:
    assert image_platforms(["osx-arm64", "linux-aarch64", "win-64", "linux-64", "linux-aarch64"]) == [
        "linux-aarch64", "linux-64"]
