"""Wheels pip installed in an image, from their dist-info: conda-owned dist-info left out (those are conda
components), PEP 610 direct_url.json giving URL and sha256, license from core metadata; into valid SBOMs."""

from __future__ import annotations

import json

from sbom_validate import layer, validate_cdx, validate_spdx

from oci_conda.sbom import (
    CondaPackage,
    ImageSubject,
    SbomInput,
    conda_owned,
    cyclonedx_bytes,
    read_wheels,
    spdx_bytes,
)
from oci_conda.sbom.image import input_from_layers

SP = "opt/conda/lib/python3.12/site-packages"
CONDA_REC = {"name": "six", "version": "1.16.0", "build": "pyhd8ed1ab_0", "subdir": "noarch", "fn": "six.conda",
             "channel": "https://conda.anaconda.org/conda-forge", "url": "https://conda.anaconda.org/x/six.conda",
             "sha256": "11" * 32, "license": "MIT",
             "files": ["lib/python3.12/site-packages/six.py",
                       "lib/python3.12/site-packages/six-1.16.0.dist-info/METADATA"]}


def meta(name: str, version: str, extra: str = "") -> bytes:
    return f"Metadata-Version: 2.4\nName: {name}\nVersion: {version}\n{extra}\nlong description\n".encode()


def test_pip_wheels_but_not_conda_dist_info() -> None:
    direct = {"url": "https://user:pw@files.example.org/packages/Typing_Extensions-4.12.2-py3-none-any.whl",
              "archive_info": {"hashes": {"sha256": "AB" * 32}}}
    lower = layer({
        f"{SP}/six-1.16.0.dist-info/METADATA": meta("six", "1.16.0", "License: MIT"),
        f"{SP}/typing_extensions-4.12.2.dist-info/METADATA": meta("typing_extensions", "4.12.2",
                                                                  "License-Expression: PSF-2.0\nLicense: ignored"),
        f"{SP}/typing_extensions-4.12.2.dist-info/direct_url.json": json.dumps(direct).encode(),
        f"{SP}/legacy-1.0.dist-info/METADATA": meta("legacy", "1.0", "License: Copyright (c)\n  whole text"),
        f"{SP}/legacy-1.0.dist-info/direct_url.json": b'{"url": "file:///w/legacy.whl", '
                                                      b'"archive_info": {"hash": "sha256=' + b"cd" * 32 + b'"}}',
        f"{SP}/gone-2.0.dist-info/METADATA": meta("gone", "2.0"),
    })
    upper = layer({f"{SP}/.wh.gone-2.0.dist-info": b""}, "zstd")
    wheels = read_wheels([lower, upper], conda_owned([CONDA_REC["files"]], "/opt/conda"))
    assert [(w.name, w.version, w.sha256, w.url, w.license) for w in wheels] == [
        ("legacy", "1.0", "cd" * 32, "file:///w/legacy.whl", None),
        ("typing_extensions", "4.12.2", "ab" * 32,
         "https://files.example.org/packages/Typing_Extensions-4.12.2-py3-none-any.whl", "PSF-2.0"),
    ]
    inp = SbomInput(ImageSubject("app", "sha256:" + "0" * 64, "linux/amd64"), 0,
                    (CondaPackage.from_record(CONDA_REC),), tuple(wheels))
    s, c = spdx_bytes(inp), cyclonedx_bytes(inp)
    validate_spdx(s)
    validate_cdx(c)
    assert b"pw@" not in s and b"pw@" not in c
    names = sorted((x["name"], x["purl"]) for x in json.loads(c)["components"])
    assert names == [("legacy", "pkg:pypi/legacy@1.0"), ("six", next(x["purl"] for x in json.loads(c)["components"]
                                                                    if x["name"] == "six")),
                     ("typing-extensions", "pkg:pypi/typing-extensions@4.12.2")]
    assert names[1][1].startswith("pkg:conda/six@1.16.0?")


def test_image_reader_lists_conda_meta_wheels_and_os_packages() -> None:
    """What ``build --sbom`` reads from the built image's layers: every conda-meta record (a deleted one left
    out), pip's wheels but not a conda package's own dist-info, and the base's dpkg database."""
    rec = CONDA_REC
    gone = {"name": "gone", "version": "1", "build": "0", "subdir": "noarch", "fn": "gone-1-0.conda", "channel": "c",
            "url": "c/noarch/gone-1-0.conda"}
    base = layer({"var/lib/dpkg/status": b"Package: tzdata\nStatus: install ok installed\nVersion: 2024a\n"
                                         b"Architecture: all\n", "etc/os-release": b"ID=debian\nVERSION_ID=12\n"})
    env = layer({"opt/conda/conda-meta/six-1.16.0-pyhd8ed1ab_0.json": json.dumps(rec).encode(),
                 "opt/conda/conda-meta/gone-1-0.json": json.dumps(gone).encode(),
                 f"{SP}/six-1.16.0.dist-info/METADATA": meta("six", "1.16.0"),
                 f"{SP}/attrs-24.2.0.dist-info/METADATA": meta("attrs", "24.2.0", "License-Expression: MIT")},
                "zstd")
    top = layer({"opt/conda/conda-meta/.wh.gone-1-0.json": b""})
    inp = input_from_layers([base, env, top], ImageSubject("app", "sha256:" + "0" * 64, "linux/amd64"), 0)
    assert [p.name for p in inp.conda] == ["six"]
    assert [(w.name, w.version, w.license) for w in inp.wheels] == [("attrs", "24.2.0", "MIT")]
    assert [(o.name, o.namespace, o.distro) for o in inp.os_packages] == [("tzdata", "debian", "debian-12")]
    validate_spdx(spdx_bytes(inp))
    validate_cdx(cyclonedx_bytes(inp))
