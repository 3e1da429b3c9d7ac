"""Shared pieces of the supply-chain tests: the README's hello image built once per session, its conda-meta
records read back from the archive with tarfile, and an isolated GnuPG home with a fresh unprotected key."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from conftest import REPO, need_tool


@dataclass
class HelloImage:
    archive: Path
    manifest: bytes
    manifest_digest: str
    records: dict[str, dict]  # name -> conda-meta record, as the image holds it


def build_hello(dest: Path) -> HelloImage:
    """``oci-conda build examples/hello/environment.yml -o hello.tar`` (offline: a local channel)."""
    out = dest / "hello.tar"
    env = {**os.environ, "OCI_CONDA_CACHE": str(dest / "cache"), "SOURCE_DATE_EPOCH": "1735689600"}
    subprocess.run([sys.executable, "-m", "oci_conda", "build", str(REPO / "examples/hello/environment.yml"),
                    "-o", str(out)], check=True, env=env, capture_output=True, timeout=300)
    with tarfile.open(out) as t:
        index = json.load(t.extractfile("index.json"))  # type: ignore[arg-type]
        desc = index["manifests"][0]
        manifest = t.extractfile(f"blobs/sha256/{desc['digest'].split(':')[1]}").read()  # type: ignore[union-attr]
        assert "sha256:" + hashlib.sha256(manifest).hexdigest() == desc["digest"]
        records: dict[str, dict] = {}
        for layer in json.loads(manifest)["layers"]:
            raw = t.extractfile(f"blobs/sha256/{layer['digest'].split(':')[1]}").read()  # type: ignore[union-attr]
            if layer["mediaType"].endswith("gzip"):
                raw = gzip.decompress(raw)
            with tarfile.open(fileobj=io.BytesIO(raw)) as lt:
                for m in lt:
                    if "/conda-meta/" in m.name and m.name.endswith(".json") and m.isfile():
                        rec = json.load(lt.extractfile(m))  # type: ignore[arg-type]
                        records[rec["name"]] = rec
    return HelloImage(out, manifest, desc["digest"], records)


@dataclass
class GpgKey:
    home: Path
    fingerprint: str
    public: Path  # armored export, what a signedBy policy's keyPath and --gpg-keyring take


def make_gpg_key(d: Path, name: str = "Test", email: str = "t@example.com") -> GpgKey:
    need_tool("gpg")
    home = d / "gnupg"
    home.mkdir(mode=0o700, parents=True)
    env = {**os.environ, "GNUPGHOME": str(home)}
    params = (f"%no-protection\nKey-Type: RSA\nKey-Length: 2048\nName-Real: {name}\nName-Email: {email}\n"
              "%commit\n")
    subprocess.run(["gpg", "--batch", "--gen-key"], input=params.encode(), env=env, check=True, capture_output=True)
    out = subprocess.run(["gpg", "--batch", "--list-keys", "--with-colons", email], env=env, check=True,
                         capture_output=True, text=True).stdout
    fpr = next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr"))
    pub = d / f"{name.lower()}.pub.gpg"
    pub.write_bytes(subprocess.run(["gpg", "--batch", "--export", "--armor", fpr], env=env, check=True,
                                   capture_output=True).stdout)
    return GpgKey(home, fpr, pub)


def stop_gpg_agent(key: GpgKey) -> None:
    subprocess.run(["gpgconf", "--kill", "all"], env={**os.environ, "GNUPGHOME": str(key.home)},
                   capture_output=True, check=False)
