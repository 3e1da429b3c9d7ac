"""SBOMs: SPDX 2.3 validated with spdx-tools, CycloneDX 1.6 with cyclonedx-python-lib's strict JSON validator,
purls checked against packageurl-python, the hello image's SBOM against the conda-meta records in its archive,
deterministic bytes, and the OCI 1.1 artifact manifests that attach the documents to the image."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from oci_schema import oci_validator
from packageurl import PackageURL
from sbom_validate import validate_cdx, validate_spdx
from supply_fixtures import HelloImage, build_hello

from oci_conda.oci import artifact as A
from oci_conda.oci.registry import referrers as R
from oci_conda.sbom import (
    CondaPackage,
    ImageSubject,
    OsPackage,
    SbomInput,
    WheelPackage,
    cyclonedx_bytes,
    output_path,
    sbom_artifact,
    spdx_bytes,
)
from oci_conda.sbom.licenses import spdx_expression
from oci_conda.sbom.purl import conda_purl, oci_purl, os_purl, pypi_purl

EPOCH = 1735689600
DIGEST = "sha256:" + "ab" * 32


def rec(name: str, version: str = "1.0", build: str = "h123_0", depends: tuple[str, ...] = (),
        license: str | None = "MIT", channel: str = "https://conda.anaconda.org/conda-forge",
        subdir: str = "linux-64", ext: str = ".conda") -> CondaPackage:
    fn = f"{name}-{version}-{build}{ext}"
    return CondaPackage(name, version, build, channel, subdir, fn, f"{channel}/{subdir}/{fn}",
                        hashlib.sha256(fn.encode()).hexdigest(), hashlib.md5(fn.encode()).hexdigest(), license,
                        depends)


def sample() -> SbomInput:
    conda = (
        rec("python", "3.12.4", "h194c7f8_0_cpython", ("libzlib >=1.2.13,<2.0a0", "openssl >=3.3,<4.0a0",
                                                       "__glibc >=2.17,<3.0.a0", "pip")),
        rec("openssl", "3.3.1", "h4ab18f5_1", ("ca-certificates", "libgcc-ng >=12"), "Apache-2.0"),
        rec("ca-certificates", "2024.7.4", "hbcca054_0", (), "ISC", subdir="noarch"),
        rec("libzlib", "1.3.1", "h4ab18f5_1", (), "Zlib", ext=".tar.bz2"),
        rec("weird_lic", "0.1", "0", (), "BSD"),  # not an SPDX id: kept verbatim
        rec("nolicense", "0.1", "0", (), None, channel="file:///srv/chan"),
        rec("tokened", "1", "0", ("conda-forge::python >=3.8",), "GPL-2.0-or-later WITH GCC-exception-3.1",
            channel="https://conda.anaconda.org/private"),
    )
    wheels = (WheelPackage("Typing_Extensions", "4.12.2", "cd" * 32, "https://files.example.org/t.whl", "PSF-2.0"),)
    os_pkgs = (OsPackage("deb", "debian", "libc6", "2.36-9+deb12u4", "amd64", "debian-12", None, "glibc",
                         ("libgcc-s1",)),
               OsPackage("deb", "debian", "tzdata", "2024a-0+deb12u1", "all", "debian-12"))
    return SbomInput(ImageSubject("127.0.0.1:5000/team/app", DIGEST, "linux/amd64", "1.0"), EPOCH, conda, wheels,
                     os_pkgs)


def test_purls_are_canonical_and_carry_conda_qualifiers() -> None:
    p = rec("libzlib", "1.3.1", "h4ab18f5_1", ext=".tar.bz2")
    s = conda_purl(p)
    assert s == "pkg:conda/libzlib@1.3.1?build=h4ab18f5_1&channel=conda-forge&subdir=linux-64&type=tar.bz2"
    for purl in (s, conda_purl(rec("x", channel="file:///srv/a b")), pypi_purl(WheelPackage("Typing_Extensions", "4")),
                 os_purl(OsPackage("deb", "debian", "libc6", "1:2.36-9+deb12u4", "amd64", "debian-12")),
                 oci_purl(ImageSubject("127.0.0.1:5000/team/app", DIGEST, "linux/arm64", "1.0"))):
        parsed = PackageURL.from_string(purl)
        assert parsed.to_string() == purl  # our encoding is packageurl-python's canonical one
    assert PackageURL.from_string(conda_purl(rec("x", channel="file:///srv/a b"))).qualifiers["channel"] == \
        "file:///srv/a b"
    assert pypi_purl(WheelPackage("Typing_Extensions", "4")) == "pkg:pypi/typing-extensions@4"
    img = PackageURL.from_string(oci_purl(ImageSubject("127.0.0.1:5000/team/app", DIGEST, "linux/arm64", "1.0")))
    assert (img.type, img.name, img.version) == ("oci", "app", DIGEST)
    assert img.qualifiers == {"arch": "arm64", "repository_url": "127.0.0.1:5000/team/app", "tag": "1.0"}


@pytest.mark.parametrize("text,expected", [
    ("MIT", "MIT"), ("mit", "MIT"), ("BSD 3-Clause", "BSD-3-Clause"), ("Apache 2.0", "Apache-2.0"),
    ("GPL-2.0-or-later WITH GCC-exception-3.1", "GPL-2.0-or-later WITH GCC-exception-3.1"),
    ("(MIT OR Apache-2.0) AND bsd-2-clause", "(MIT OR Apache-2.0) AND BSD-2-Clause"),
    ("LGPL-2.1-or-later and GPL-3.0-only", "LGPL-2.1-or-later AND GPL-3.0-only"), ("GPL-2.0+", "GPL-2.0+"),
    ("LicenseRef-Custom", "LicenseRef-Custom"),
    ("BSD", None), ("Proprietary", None), ("MIT AND", None), ("(MIT", None), ("MIT WITH Nothing", None), ("", None),
])
def test_license_expressions(text: str, expected: str | None) -> None:
    assert spdx_expression(text) == expected


def test_spdx_validates_and_says_what_the_records_say() -> None:
    data = spdx_bytes(sample())
    validate_spdx(data)
    doc = json.loads(data)
    pkgs = {p["SPDXID"]: p for p in doc["packages"]}
    by_name = {p["name"]: p for p in doc["packages"]}
    assert by_name["127.0.0.1:5000/team/app"]["primaryPackagePurpose"] == "CONTAINER"
    assert by_name["libzlib"]["checksums"][0] == {"algorithm": "SHA256", "checksumValue": rec(
        "libzlib", "1.3.1", "h4ab18f5_1", ext=".tar.bz2").sha256}
    assert by_name["tokened"]["licenseDeclared"] == "GPL-2.0-or-later WITH GCC-exception-3.1"
    assert by_name["nolicense"]["licenseDeclared"] == "NOASSERTION"
    ref = by_name["weird_lic"]["licenseDeclared"]
    assert ref.startswith("LicenseRef-BSD-")
    assert {"licenseId": ref, "extractedText": "BSD", "name": "BSD"} in doc["hasExtractedLicensingInfos"]
    assert by_name["typing-extensions"]["externalRefs"][0]["referenceLocator"] == "pkg:pypi/typing-extensions@4.12.2"
    assert by_name["libc6"]["externalRefs"][0]["referenceLocator"] == \
        "pkg:deb/debian/libc6@2.36-9%2Bdeb12u4?arch=amd64&distro=debian-12"
    rels = {(pkgs[r["spdxElementId"]]["name"] if r["spdxElementId"] in pkgs else r["spdxElementId"],
             r["relationshipType"], pkgs[r["relatedSpdxElement"]]["name"]) for r in doc["relationships"]}
    assert ("SPDXRef-DOCUMENT", "DESCRIBES", "127.0.0.1:5000/team/app") in rels
    assert sum(1 for r in rels if r[1] == "CONTAINS") == 7 + 1 + 2
    deps = {(a, b) for a, t, b in rels if t == "DEPENDS_ON"}
    # resolved by name to the chosen records; virtual packages and absent names (pip, libgcc-ng) give no edge
    assert deps == {("python", "libzlib"), ("python", "openssl"), ("openssl", "ca-certificates"),
                    ("tokened", "python")}
    assert doc["creationInfo"]["created"] == "2025-01-01T00:00:00Z"


def test_cyclonedx_validates_and_has_the_dependency_graph() -> None:
    data = cyclonedx_bytes(sample())
    validate_cdx(data)
    doc = json.loads(data)
    comps = {c["name"]: c for c in doc["components"]}
    assert len(comps) == 10
    assert doc["metadata"]["component"]["type"] == "container"
    assert doc["metadata"]["timestamp"] == "2025-01-01T00:00:00Z"
    assert comps["weird_lic"]["licenses"] == [{"license": {"name": "BSD"}}]
    assert comps["openssl"]["licenses"] == [{"expression": "Apache-2.0"}]
    assert {"alg": "SHA-256", "content": comps["openssl"]["hashes"][0]["content"]} in comps["openssl"]["hashes"]
    deps = {d["ref"]: set(d["dependsOn"]) for d in doc["dependencies"]}
    assert deps[comps["python"]["bom-ref"]] == {comps["libzlib"]["bom-ref"], comps["openssl"]["bom-ref"]}
    assert deps[doc["metadata"]["component"]["bom-ref"]] == {c["bom-ref"] for c in doc["components"]}


def test_bytes_are_deterministic_and_follow_the_image() -> None:
    a, b = sample(), sample()
    assert spdx_bytes(a) == spdx_bytes(b) and cyclonedx_bytes(a) == cyclonedx_bytes(b)
    # input order does not matter
    c = SbomInput(a.image, a.created, tuple(reversed(a.conda)), a.wheels, a.os_packages)
    assert spdx_bytes(c) == spdx_bytes(a) and cyclonedx_bytes(c) == cyclonedx_bytes(a)
    # another image gets another namespace / serial number
    d = SbomInput(ImageSubject(a.image.name, "sha256:" + "cd" * 32, "linux/amd64"), a.created, a.conda)
    assert json.loads(spdx_bytes(d))["documentNamespace"] != json.loads(spdx_bytes(a))["documentNamespace"]
    assert json.loads(cyclonedx_bytes(d))["serialNumber"] != json.loads(cyclonedx_bytes(a))["serialNumber"]


def test_credentials_never_reach_the_sbom() -> None:
    p = CondaPackage.from_record({
        "name": "secret", "version": "1", "build": "0", "subdir": "linux-64", "fn": "secret-1-0.conda",
        "channel": "https://user:pw@conda.example.com/t/tk-123/chan",
        "url": "https://user:pw@conda.example.com/t/tk-123/chan/linux-64/secret-1-0.conda", "sha256": "ee" * 32})
    inp = SbomInput(ImageSubject("app", DIGEST, "linux/amd64"), EPOCH, (p,))
    for data in (spdx_bytes(inp), cyclonedx_bytes(inp)):
        assert b"pw" not in data and b"tk-123" not in data and b"user" not in data
        assert b"conda.example.com/chan/linux-64/secret-1-0.conda" in data


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> HelloImage:
    return build_hello(tmp_path_factory.mktemp("hello"))


def hello_input(h: HelloImage) -> SbomInput:
    return SbomInput(ImageSubject("hello", h.manifest_digest, "linux/amd64", "latest"), EPOCH,
                     tuple(CondaPackage.from_record(r) for r in h.records.values()))


def test_hello_image_sbom_lists_exactly_its_conda_meta(hello: HelloImage) -> None:
    assert set(hello.records) == {"hello", "hello-data"}
    spdx_data, cdx_data = spdx_bytes(hello_input(hello)), cyclonedx_bytes(hello_input(hello))
    validate_spdx(spdx_data)
    validate_cdx(cdx_data)
    doc = json.loads(spdx_data)
    conda = {p["name"]: p for p in doc["packages"] if p["externalRefs"][0]["referenceLocator"].startswith("pkg:conda/")}
    assert set(conda) == set(hello.records)
    for name, p in conda.items():
        assert p["checksums"][0] == {"algorithm": "SHA256", "checksumValue": hello.records[name]["sha256"]}
        assert p["versionInfo"] == hello.records[name]["version"]
    cdx = json.loads(cdx_data)
    assert {c["name"]: c["hashes"][0]["content"] for c in cdx["components"]} == \
        {n: r["sha256"] for n, r in hello.records.items()}
    assert cdx["metadata"]["component"]["version"] == hello.manifest_digest
    # the image's own records give the DEPENDS_ON edge hello -> hello-data
    ids = {p["SPDXID"]: p["name"] for p in doc["packages"]}
    assert [(ids[r["spdxElementId"]], ids[r["relatedSpdxElement"]]) for r in doc["relationships"]
            if r["relationshipType"] == "DEPENDS_ON"] == [("hello", "hello-data")]
    # a second run gives the same bytes
    assert spdx_bytes(hello_input(hello)) == spdx_data and cyclonedx_bytes(hello_input(hello)) == cdx_data
    print(f"\nhello SBOM sizes: spdx {len(spdx_data)} B, cyclonedx {len(cdx_data)} B")


def test_sbom_artifacts_attach_to_the_image(hello: HelloImage, realdata: Path) -> None:
    subject = A.subject_descriptor(hello.manifest)
    assert subject.digest == hello.manifest_digest
    validator = oci_validator(realdata, "manifest")
    descs = []
    for fmt, media in (("spdx", "application/spdx+json"), ("cyclonedx", "application/vnd.cyclonedx+json")):
        doc = spdx_bytes(hello_input(hello)) if fmt == "spdx" else cyclonedx_bytes(hello_input(hello))
        art = sbom_artifact(fmt, doc, subject, EPOCH)
        man = json.loads(art.manifest)
        validator.validate(man)
        assert man["artifactType"] == media
        assert man["config"] == {"mediaType": "application/vnd.oci.empty.v1+json", "size": 2, "data": "e30=",
                                 "digest": "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"}
        assert man["layers"] == [{"mediaType": media, "digest": "sha256:" + hashlib.sha256(doc).hexdigest(),
                                  "size": len(doc)}]
        assert man["subject"] == {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "digest": hello.manifest_digest, "size": len(hello.manifest)}
        assert man["annotations"] == {"org.opencontainers.image.created": "2025-01-01T00:00:00Z"}
        assert art.blobs == {man["config"]["digest"]: b"{}", man["layers"][0]["digest"]: doc}
        assert art.descriptor.to_json() == {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                  "digest": "sha256:" + hashlib.sha256(art.manifest).hexdigest(),
                                  "size": len(art.manifest), "artifactType": media,
                                  "annotations": man["annotations"]}
        assert art == sbom_artifact(fmt, doc, subject, EPOCH)  # same bytes every time
        descs.append(art.descriptor)
    index = R.referrers_index(descs)
    oci_validator(realdata, "index").validate(json.loads(index))
    assert json.loads(index)["manifests"] == [d.to_json() for d in descs]
    assert R.add_referrer(R.referrers_index(descs[:1]), descs[1]) == index
    assert R.add_referrer(index, descs[0]) == index  # no duplicate entry
    assert R.add_referrer(None, descs[0]) == R.referrers_index(descs[:1])
    with pytest.raises(Exception, match="other than an image index"):
        R.add_referrer(hello.manifest, descs[0])


def test_output_paths(tmp_path: Path) -> None:
    assert output_path(tmp_path / "OUT.tar", "spdx") == tmp_path / "OUT.spdx.json"
    assert output_path(tmp_path / "OUT.tar", "cyclonedx") == tmp_path / "OUT.cdx.json"
    assert output_path(tmp_path / "OUT.tar", "spdx", "linux/arm64/v8") == tmp_path / "OUT.linux-arm64-v8.spdx.json"
    assert output_path(tmp_path / "layout", "cyclonedx", "linux/amd64") == tmp_path / "layout.linux-amd64.cdx.json"


def test_referrers_tag_schema() -> None:
    assert R.referrers_tag("sha256:" + "a" * 64) == "sha256-" + "a" * 64
    assert R.referrers_tag("sha512:" + "a" * 128) == "sha512-" + "a" * 64
    # the distribution spec's own example of truncation and replacement
    weird = ("test+algorithm+using+algorithm+separators+and+lots+of+characters+to+excercise+overall+truncation:"
             "alsoSome=InTheEncodedSectionToShowHyphenReplacementAndLotsAndLotsOfCharactersToExcerciseEncodedTruncation")
    assert R.referrers_tag(weird) == ("test-algorithm-using-algorithm-s-alsoSome-InTheEncodedSectionToShowHyphen"
                                      "ReplacementAndLotsAndLot")


# conda names and versions never hold blanks or slashes at their ends; packageurl-python strips those on parse
_WORD = st.text(min_size=1, max_size=10).filter(lambda s: s == s.strip().strip("/") and s.strip() != "")


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(_WORD, _WORD,
                          st.text(max_size=8), st.text(max_size=20), st.one_of(st.none(), st.text(max_size=30))),
                min_size=1, max_size=5))
def test_any_record_text_gives_valid_documents(rows: list) -> None:
    """Hostile or odd conda metadata (any unicode in names, versions, builds, channels, licenses) still gives
    documents both validators accept, with purls packageurl-python reads back to the same fields."""
    pkgs = tuple(CondaPackage(n, v, b, c, "linux-64", f"{n}.conda", "", None, None, lic, (n,))
                 for n, v, b, c, lic in rows)
    inp = SbomInput(ImageSubject("app", DIGEST, "linux/amd64"), EPOCH, pkgs)
    validate_spdx(spdx_bytes(inp))
    validate_cdx(cyclonedx_bytes(inp))
    for p in pkgs:
        parsed = PackageURL.from_string(conda_purl(p))
        assert (parsed.name, parsed.version) == (p.name, p.version)
