"""OS packages of a base image from its layers: dpkg status (and distroless status.d), apk installed, os-release,
whiteouts across layers, gzip/zstd/plain layers; and a real Debian base checked against dpkg-query itself."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import tarfile
from pathlib import Path

import pytest
from conftest import need_tool
from realenv import debian_base
from sbom_validate import layer, validate_cdx, validate_spdx

from oci_conda.sbom import (
    ImageSubject,
    SbomInput,
    cyclonedx_bytes,
    read_os_packages,
    spdx_bytes,
)

STATUS = b"""Package: libc6
Status: install ok installed
Priority: optional
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries.

Package: removed-one
Status: deinstall ok config-files
Architecture: amd64
Version: 1.0

Package: bash
Status: install ok installed
Architecture: amd64
Version: 5.2.15-2+b2
Pre-Depends: libc6 (>= 2.36), libtinfo6 (>= 6)
Depends: base-files (>= 2.1.12), debianutils (>= 5.6-0.1)
"""
OS_RELEASE = b'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n'
APK = b"""C:Q1abc=
P:musl
V:1.2.4-r2
A:x86_64
L:MIT
o:musl
D:

P:busybox
V:1.36.1-r15
A:x86_64
L:GPL-2.0-only
o:busybox
D:so:libc.musl-x86_64.so.1 /bin/sh
"""


def test_dpkg_status_with_os_release_symlink() -> None:
    pkgs = read_os_packages([layer({"usr/lib/os-release": OS_RELEASE, "etc/os-release": "../usr/lib/os-release",
                                    "./var/lib/dpkg/status": STATUS}, "zstd")])
    assert [(p.name, p.version, p.arch, p.namespace, p.distro) for p in pkgs] == [
        ("bash", "5.2.15-2+b2", "amd64", "debian", "debian-12"),
        ("libc6", "2.36-9+deb12u4", "amd64", "debian", "debian-12")]
    bash = pkgs[0]
    assert bash.depends == ("base-files", "debianutils", "libc6", "libtinfo6")
    assert pkgs[1].source == "glibc"


def test_distroless_status_d_and_whiteouts() -> None:
    lower = layer({"etc/os-release": OS_RELEASE, "var/lib/dpkg/status.d/base": STATUS.split(b"\n\n")[0] + b"\n",
                   "var/lib/dpkg/status.d/tzdata": b"Package: tzdata\nVersion: 2024a-0+deb12u1\nArchitecture: all\n",
                   "var/lib/dpkg/status": STATUS}, "plain")
    upper = layer({"var/lib/dpkg/status.d/.wh.tzdata": b"", "var/lib/dpkg/.wh.status": b""})
    names = [p.name for p in read_os_packages([lower, upper])]
    assert names == ["libc6"]
    # an opaque directory hides everything below it from lower layers, but keeps what the same layer adds
    lower.seek(0)
    opaque = layer({"var/lib/dpkg/status.d/.wh..wh..opq": b"",
                    "var/lib/dpkg/status.d/new": b"Package: new\nVersion: 1\nArchitecture: amd64\n"})
    assert [p.name for p in read_os_packages([lower, opaque])] == ["bash", "libc6", "new"]


def test_apk_database() -> None:
    rel = b'ID=alpine\nVERSION_ID=3.19.1\n'
    pkgs = read_os_packages([layer({"etc/os-release": rel, "lib/apk/db/installed": APK})])
    assert [(p.ecosystem, p.namespace, p.name, p.version, p.license, p.distro) for p in pkgs] == [
        ("apk", "alpine", "busybox", "1.36.1-r15", "GPL-2.0-only", "alpine-3.19.1"),
        ("apk", "alpine", "musl", "1.2.4-r2", "MIT", "alpine-3.19.1")]
    inp = SbomInput(ImageSubject("alpine", "sha256:" + "0" * 64, "linux/amd64"), 0, os_packages=tuple(pkgs))
    validate_spdx(spdx_bytes(inp))
    validate_cdx(cyclonedx_bytes(inp))
    assert "pkg:apk/alpine/busybox@1.36.1-r15?arch=x86_64&distro=alpine-3.19.1" in \
        spdx_bytes(inp).decode()


def test_no_database_no_packages_and_bad_layer_is_one_error() -> None:
    assert read_os_packages([layer({"usr/bin/x": b"x"})]) == []
    with pytest.raises(Exception, match="layer 0 is not a readable tar"):
        read_os_packages([io.BytesIO(b"\x1f\x8bnot gzip at all")])


@pytest.mark.slow
def test_real_debian_base_matches_dpkg_query(tmp_path: Path) -> None:
    need_tool("dpkg-query")
    layout = Path(debian_base().split(":")[1])
    index = json.loads((layout / "index.json").read_text())
    blob = lambda d: layout / "blobs" / "sha256" / d.split(":")[1]
    man = json.loads(blob(index["manifests"][0]["digest"]).read_bytes())
    with contextlib.ExitStack() as stack:
        pkgs = read_os_packages([stack.enter_context(open(blob(lay["digest"]), "rb")) for lay in man["layers"]])
    # the oracle: dpkg itself, on the same status file extracted from the layers
    admin = tmp_path / "dpkg"
    admin.mkdir()
    for lay in man["layers"]:
        with tarfile.open(blob(lay["digest"])) as t:
            for m in t:
                if m.name.lstrip("./") == "var/lib/dpkg/status":
                    (admin / "status").write_bytes(t.extractfile(m).read())  # type: ignore[union-attr]
    out = subprocess.run(["dpkg-query", f"--admindir={admin}", "-W", "-f",
                          "${db:Status-Status} ${Package} ${Version} ${Architecture}\n"],
                         check=True, capture_output=True, text=True).stdout
    expected = sorted(tuple(line.split()[1:]) for line in out.splitlines() if line.startswith("installed "))
    assert len(expected) > 50
    assert sorted((p.name, p.version, p.arch) for p in pkgs) == expected
    assert {p.namespace for p in pkgs} == {"debian"} and {p.distro for p in pkgs} == {"debian-12"}
    inp = SbomInput(ImageSubject("debian", man["config"]["digest"], "linux/amd64"), 0, os_packages=tuple(pkgs))
    validate_spdx(spdx_bytes(inp))
    validate_cdx(cyclonedx_bytes(inp))
