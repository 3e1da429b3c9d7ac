"""Every image reference a skopeo user types: ``oci:``, ``oci-archive:``, ``dir:``, ``docker-archive:`` (made by
skopeo itself from a real build) work as a base, for ``inspect``, ``diff`` and ``push``; stores we do not read and
bare paths are one line with a hint."""

from __future__ import annotations

import gzip as gz
import io
import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

from conftest import REPO, need_tool
from realenv import oci_conda, one_error_line, umoci_unpack

from oci_conda.errors import ImageError
from oci_conda.oci.source import ImageRef, parse_image_ref

HELLO = REPO / "examples" / "hello"
EPOCH = {"SOURCE_DATE_EPOCH": "1700000000"}


@pytest.fixture(scope="module")
def forms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The hello example built once, then copied by skopeo into each local form."""
    skopeo = need_tool("skopeo")
    d = tmp_path_factory.mktemp("forms")
    env = {**os.environ, "OCI_CONDA_CACHE": str(d / "cache"), **EPOCH}
    oci_conda("build", str(HELLO / "environment.yml"), "-o", str(d / "hello.tar"), "--tag", "hello:1", "-q", env=env)
    for dest in (f"oci:{d / 'layout'}:hello", f"dir:{d / 'dir'}", f"docker-archive:{d / 'docker.tar'}:hello:1"):
        subprocess.run([skopeo, "copy", "-q", f"oci-archive:{d / 'hello.tar'}", dest], check=True)
    return {"oci-archive": f"oci-archive:{d / 'hello.tar'}", "oci": f"oci:{d / 'layout'}:hello",
            "dir": f"dir:{d / 'dir'}", "docker-archive": f"docker-archive:{d / 'docker.tar'}",
            "docker-archive-tag": f"docker-archive:{d / 'docker.tar'}:hello:1", "root": str(d)}


def _build_on(base: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    for k, v in EPOCH.items():
        monkeypatch.setenv(k, v)
    return json.loads(oci_conda("build", str(HELLO / "environment.yml"), "--base", base, "-o", str(out),
                                "--tag", "t:1", "--json").stdout)


def _manifest_and_config(archive: Path) -> tuple[dict, dict]:
    with tarfile.open(archive) as t:
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        mdig = index["manifests"][0]["digest"].split(":")[1]
        man = json.load(t.extractfile(f"blobs/sha256/{mdig}"))  # type: ignore[arg-type]
        cfg = json.load(t.extractfile(f"blobs/sha256/{man['config']['digest'].split(':')[1]}"))  # type: ignore[arg-type]
    return man, cfg


def test_every_form_as_a_base(forms: dict[str, str], tmp_path: Path, cache_env: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    digests = {}
    for form in ("oci-archive", "oci", "dir", "docker-archive", "docker-archive-tag"):
        digests[form] = _build_on(forms[form], tmp_path / f"{form}.tar", monkeypatch)["digest"]
    # formats that keep the blobs give the very same image
    assert digests["oci-archive"] == digests["oci"] == digests["dir"]
    # docker save keeps layers uncompressed: a different (but stable) image, same whichever way it is named
    assert digests["docker-archive"] == digests["docker-archive-tag"] != digests["oci-archive"]
    man, cfg = _manifest_and_config(tmp_path / "docker-archive.tar")
    base = man["layers"][:3]
    assert [layer["mediaType"] for layer in base] == ["application/vnd.oci.image.layer.v1.tar"] * 3
    assert [layer["digest"] for layer in base] == cfg["rootfs"]["diff_ids"][:3]
    for form in ("docker-archive", "dir"):
        rootfs = umoci_unpack(tmp_path / f"{form}.tar", tmp_path / f"u-{form}", "t:1")
        assert (rootfs / "opt" / "conda" / "bin" / "hello").is_file()


def test_inspect_and_diff_read_every_form(forms: dict[str, str]) -> None:
    views = {f: json.loads(oci_conda("inspect", forms[f], "--json").stdout)
             for f in ("oci-archive", "oci", "dir", "docker-archive")}
    pkgs = {f: [p["name"] for p in v["platforms"][0]["packages"]] for f, v in views.items()}
    assert pkgs["dir"] == pkgs["oci"] == pkgs["oci-archive"] == pkgs["docker-archive"] == ["hello", "hello-data"]
    assert views["dir"]["platforms"][0]["manifest_digest"] == views["oci-archive"]["platforms"][0]["manifest_digest"]
    d = json.loads(oci_conda("diff", forms["oci-archive"], forms["docker-archive"], "--json").stdout)
    r = d["platforms"]["linux/amd64"]
    assert r["added"] == r["removed"] == r["changed"] == [] and not r["config_changed"]


@pytest.mark.parametrize("argv, expect", [
    (["build", str(HELLO / "environment.yml"), "--base", "containers-storage:localhost/x:1"],
     "export it first: skopeo copy containers-storage:localhost/x:1 oci-archive:x.tar"),
    (["push", "containers-storage:x:1", "127.0.0.1:1/a/b:1"], "does not read containers-storage: images"),
    (["push", "PLACEHOLDER", "containers-storage:x:1"], "push writes to a registry"),
    (["build", str(HELLO / "environment.yml"), "--base", "docker-daemon:x:1"], "docker save x:1"),
    (["build", str(HELLO / "environment.yml"), "--base", "dir:/nonexistent/x"], "no such directory"),
    (["build", str(HELLO / "environment.yml"), "--base", "docker-archive:/nonexistent/x.tar"], "no such file"),
    (["build", str(HELLO / "environment.yml"), "--base", "PLACEHOLDER"], "did you mean oci-archive:"),
    (["build", str(HELLO / "environment.yml"), "--base", "DOCKERTAR"], "did you mean docker-archive:"),
    (["build", str(HELLO / "environment.yml"), "--base", "DIRFORM"], "did you mean dir:"),
])
def test_refs_we_cannot_read_are_one_line(forms: dict[str, str], tmp_path: Path, cache_env: Path,
                                          argv: list[str], expect: str) -> None:
    root = Path(forms["root"])
    subst = {"PLACEHOLDER": str(root / "hello.tar"), "DOCKERTAR": str(root / "docker.tar"),
             "DIRFORM": str(root / "dir")}
    argv = [subst.get(a, a) for a in argv]
    p = oci_conda(*argv, "-q", "-o", str(tmp_path / "o.tar"), check=False) if argv[0] == "build" else \
        oci_conda(*argv, check=False)
    assert expect in one_error_line(p)
    assert p.returncode == 2 and not (tmp_path / "o.tar").exists()


def test_parse_image_ref() -> None:
    assert parse_image_ref("scratch") == ImageRef("scratch")
    assert parse_image_ref("dir:/x") == ImageRef("dir", "/x")
    assert parse_image_ref("docker-archive:/a/b.tar:name:tag") == ImageRef("docker-archive", "/a/b.tar", "name:tag")
    assert parse_image_ref("oci:/l:ref") == ImageRef("oci", "/l", "ref")
    assert parse_image_ref("docker://localhost:5000/a:1") == ImageRef("registry", "localhost:5000/a:1")
    assert parse_image_ref("localhost:5000/a:1") == ImageRef("registry", "localhost:5000/a:1")
    assert parse_image_ref("debian:12") == ImageRef("registry", "debian:12")
    with pytest.raises(ImageError, match="did you mean oci-archive:./base.tar"):
        parse_image_ref("./base.tar")
    with pytest.raises(ImageError, match="unknown transport 'ftp'"):
        parse_image_ref("ftp://x/y")


def _rewrite_docker_archive(src: Path, dest: Path, gzip_layers: bool) -> None:
    """``src`` with manifest.json naming each layer by docker's legacy ``<id>/layer.tar`` (not a digest), or with
    every layer gzip-compressed (as some tools write them)."""
    with tarfile.open(src) as t:
        members = {m.name: m for m in t.getmembers()}
        manifest = json.load(t.extractfile("manifest.json"))  # type: ignore[arg-type]
        legacy = {os.path.normpath(os.path.join(os.path.dirname(n), m.linkname)): n
                  for n, m in members.items() if m.issym() and n.endswith("/layer.tar")}
        with tarfile.open(dest, "w") as out:
            for name, m in members.items():
                if name == "manifest.json" or (gzip_layers and name in manifest[0]["Layers"]):
                    continue
                out.addfile(m, t.extractfile(m) if m.isreg() else None)
            if gzip_layers:
                for name in manifest[0]["Layers"]:
                    data = gz.compress(t.extractfile(name).read(), mtime=0)  # type: ignore[union-attr]
                    info = tarfile.TarInfo(name.replace(".tar", ".tar.gz"))
                    info.size = len(data)
                    out.addfile(info, io.BytesIO(data))
                manifest[0]["Layers"] = [n.replace(".tar", ".tar.gz") for n in manifest[0]["Layers"]]
            else:
                manifest[0]["Layers"] = [legacy[n] for n in manifest[0]["Layers"]]
            data = json.dumps(manifest).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size = len(data)
            out.addfile(info, io.BytesIO(data))


def test_docker_archive_legacy_names_and_gzip_layers(forms: dict[str, str], tmp_path: Path, cache_env: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    src = Path(forms["root"]) / "docker.tar"
    _rewrite_docker_archive(src, tmp_path / "legacy.tar", gzip_layers=False)
    _rewrite_docker_archive(src, tmp_path / "gz.tar", gzip_layers=True)
    plain = _build_on(forms["docker-archive"], tmp_path / "a.tar", monkeypatch)["digest"]
    legacy = _build_on(f"docker-archive:{tmp_path / 'legacy.tar'}", tmp_path / "b.tar", monkeypatch)["digest"]
    assert legacy == plain  # hashed, not named by digest: the same blobs
    _build_on(f"docker-archive:{tmp_path / 'gz.tar'}", tmp_path / "c.tar", monkeypatch)
    man, _cfg = _manifest_and_config(tmp_path / "c.tar")
    assert [layer["mediaType"] for layer in man["layers"][:3]] == ["application/vnd.oci.image.layer.v1.tar+gzip"] * 3
    rootfs = umoci_unpack(tmp_path / "c.tar", tmp_path / "u", "t:1")  # diff_ids still match the gunzipped layers
    assert (rootfs / "opt" / "conda" / "bin" / "hello").is_file()
