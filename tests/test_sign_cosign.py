"""cosign's key-based format: keys in cosign's encrypted format (read back by an independent oracle), signature
manifests tagged ``sha256-<hex>.sig`` pushed to a real registry and verified by both our verifier and the oracle;
tampered digests, wrong keys and wrong passphrases refused; passphrases never printed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import pty
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cosign_oracle import cosign_verify, decrypt_cosign_key
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from ocipush import get_blob, get_manifest, put_blob, put_manifest
from registry_fixtures import Servers, servers  # noqa: F401  (fixture)
from supply_fixtures import HelloImage, build_hello

from oci_conda.sign import cosign, keys
from oci_conda.sign.errors import SignError
from oci_conda.sign.payload import make_payload

PASS = b"correct horse battery staple"
DIGEST = "sha256:" + "12" * 32


@pytest.fixture(scope="module")
def pair() -> keys.KeyPair:
    return keys.generate_key_pair(PASS)


def test_key_files_are_cosigns_format(pair: keys.KeyPair) -> None:
    assert pair.private_pem.startswith(b"-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\n")
    assert pair.public_pem.startswith(b"-----BEGIN PUBLIC KEY-----\n")
    body = json.loads(base64.b64decode(b"".join(pair.private_pem.splitlines()[1:-1])))
    assert body["kdf"]["params"] == {"N": 65536, "r": 8, "p": 1} and body["cipher"]["name"] == "nacl/secretbox"
    assert len(base64.b64decode(body["kdf"]["salt"])) == 32
    assert len(base64.b64decode(body["cipher"]["nonce"])) == 24
    # the oracle decrypts it to the key whose public half is cosign.pub
    k = decrypt_cosign_key(pair.private_pem, PASS)
    assert keys.public_pem(k) == pair.public_pem
    # and our reader decrypts a key the oracle's way of writing would produce (legacy PEM type, legacy N)
    legacy = keys.encrypt_private_key(k, PASS, (32768, 8, 1)).replace(b"SIGSTORE", b"COSIGN")
    assert keys.public_pem(keys.decrypt_private_key(legacy, PASS)) == pair.public_pem
    assert keys.public_pem(decrypt_cosign_key(legacy, PASS)) == pair.public_pem


def test_wrong_passphrase_and_bad_files_are_one_line_errors(pair: keys.KeyPair) -> None:
    with pytest.raises(SignError, match="wrong passphrase"):
        keys.decrypt_private_key(pair.private_pem, b"wrong")
    with pytest.raises(SignError, match="not a PEM file"):
        keys.decrypt_private_key(b"garbage", PASS)
    with pytest.raises(SignError, match="not a cosign encrypted private key"):
        keys.decrypt_private_key(pair.public_pem, PASS)
    with pytest.raises(SignError, match="not a PEM public key"):
        keys.load_public_key(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")


def test_round_trip_and_independent_verifier(pair: keys.KeyPair) -> None:
    key = keys.decrypt_private_key(pair.private_pem, PASS)
    sig = cosign.sign(key, "127.0.0.1:5000/team/app", DIGEST)
    assert sig.payload == (b'{"critical":{"identity":{"docker-reference":"127.0.0.1:5000/team/app"},"image":'
                           b'{"docker-manifest-digest":"' + DIGEST.encode() + b'"},"type":"cosign container image '
                           b'signature"},"optional":null}')
    art = cosign.signature_manifest([sig])
    man = json.loads(art.manifest)
    assert man["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert man["layers"][0]["mediaType"] == "application/vnd.dev.cosign.simplesigning.v1+json"
    assert json.loads(art.blobs[man["config"]["digest"]])["rootfs"]["diff_ids"] == [man["layers"][0]["digest"]]
    pub = keys.load_public_key(pair.public_pem)
    claims = cosign.verify(pub, DIGEST, art.manifest, art.blobs, "127.0.0.1:5000/team/app")
    assert [c.reference for c in claims] == ["127.0.0.1:5000/team/app"]
    assert len(cosign_verify(pair.public_pem, DIGEST, art.manifest, art.blobs)) == 1
    assert cosign.signature_tag(DIGEST) == "sha256-" + "12" * 32 + ".sig"


def test_oracle_made_signature_is_accepted(pair: keys.KeyPair) -> None:
    """A signature layer made without our signing code (cryptography directly, payload by hand) verifies."""
    key = decrypt_cosign_key(pair.private_pem, PASS)
    payload = json.dumps({"critical": {"identity": {"docker-reference": "r.example/a"},
                                       "image": {"docker-manifest-digest": DIGEST},
                                       "type": "cosign container image signature"}, "optional": None}).encode()
    b64 = base64.b64encode(key.sign(payload, ec.ECDSA(hashes.SHA256()))).decode()
    art = cosign.signature_manifest([cosign.Signature(payload, b64)])
    assert cosign.verify(keys.load_public_key(pair.public_pem), DIGEST, art.manifest, art.blobs)


def test_tampering_and_wrong_keys_are_refused(pair: keys.KeyPair) -> None:
    key = keys.decrypt_private_key(pair.private_pem, PASS)
    pub = keys.load_public_key(pair.public_pem)
    other = "sha256:" + "34" * 32
    good = cosign.sign(key, "r.example/a", DIGEST)
    # a signature for another digest
    art = cosign.signature_manifest([cosign.sign(key, "r.example/a", other)])
    with pytest.raises(SignError, match="signed digest"):
        cosign.verify(pub, DIGEST, art.manifest, art.blobs)
    assert cosign_verify(pair.public_pem, DIGEST, art.manifest, art.blobs) == []
    # the payload's digest edited after signing
    forged = cosign.Signature(make_payload("r.example/a", other, "cosign container image signature"), good.signature)
    art = cosign.signature_manifest([forged])
    with pytest.raises(SignError, match="does not match the key"):
        cosign.verify(pub, other, art.manifest, art.blobs)
    assert cosign_verify(pair.public_pem, other, art.manifest, art.blobs) == []
    # another key
    stranger = keys.load_public_key(keys.generate_key_pair(b"x").public_pem)
    art = cosign.signature_manifest([good])
    with pytest.raises(SignError, match="does not match the key"):
        cosign.verify(stranger, DIGEST, art.manifest, art.blobs)
    # a blob that is not what the manifest names
    bad_blobs = {**art.blobs, json.loads(art.manifest)["layers"][0]["digest"]: good.payload + b" "}
    with pytest.raises(SignError, match="no cosign signatures"):
        cosign.verify(pub, DIGEST, art.manifest, bad_blobs)
    # a wrong repository when one is required
    with pytest.raises(SignError, match="signed repository"):
        cosign.verify(pub, DIGEST, art.manifest, art.blobs, "r.example/b")


def test_keygen_files_modes_and_no_overwrite(tmp_path: Path, pair: keys.KeyPair) -> None:
    priv, pub = keys.write_key_pair(tmp_path, pair)
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600 and stat.S_IMODE(pub.stat().st_mode) == 0o644
    assert priv.read_bytes() == pair.private_pem and pub.read_bytes() == pair.public_pem
    with pytest.raises(SignError, match="already exists"):
        keys.write_key_pair(tmp_path, keys.generate_key_pair(PASS))
    assert priv.read_bytes() == pair.private_pem
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cosign.key", "cosign.pub"]  # no temp files left
    assert PASS.decode() not in repr(pair) and "PRIVATE" not in repr(pair)


def test_passphrase_from_env_or_error_without_a_terminal() -> None:
    assert keys.read_passphrase(env={"COSIGN_PASSWORD": "s3cret"}) == b"s3cret"
    assert keys.read_passphrase(env={"COSIGN_PASSWORD": ""}) == b""
    code = ("import sys; from oci_conda.sign import keys\n"
            "try:\n keys.read_passphrase(env={})\nexcept keys.SignError as e:\n print(e); sys.exit(3)")
    r = subprocess.run([sys.executable, "-c", code], stdin=subprocess.DEVNULL, check=False, capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 3 and r.stdout.strip() == "no passphrase: set COSIGN_PASSWORD or run on a terminal"


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> HelloImage:
    return build_hello(tmp_path_factory.mktemp("hello"))


@pytest.mark.slow
def test_sign_pushed_image_in_a_real_registry(servers: Servers, hello: HelloImage, pair: keys.KeyPair,  # noqa: F811
                                              tmp_path: Path) -> None:
    reg = servers.registry()
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci-archive:{hello.archive}",
                    f"docker://{reg.host}/team/hello:1"], check=True, capture_output=True, timeout=120)
    manifest = get_manifest(reg.url, "team/hello", "1")
    assert manifest is not None
    digest = "sha256:" + hashlib.sha256(manifest).hexdigest()
    repo = f"{reg.host}/team/hello"

    t0 = time.perf_counter()
    key = keys.load_private_key(_write(tmp_path / "cosign.key", pair.private_pem), PASS)
    t1 = time.perf_counter()
    art = cosign.signature_manifest([cosign.sign(key, repo, digest)])
    t2 = time.perf_counter()
    for data in art.blobs.values():
        put_blob(reg.url, "team/hello", data)
    put_manifest(reg.url, "team/hello", cosign.signature_tag(digest), art.manifest, art.descriptor.media_type)
    t3 = time.perf_counter()
    print(f"\ncosign: key decrypt (scrypt N=65536) {t1 - t0:.3f}s, sign {t2 - t1:.4f}s, push {t3 - t2:.3f}s")

    # fetched back from the registry under cosign's tag, verified by us and by the oracle
    sig_manifest = get_manifest(reg.url, "team/hello", f"sha256-{digest.split(':')[1]}.sig")
    assert sig_manifest == art.manifest
    fetched = {d["digest"]: get_blob(reg.url, "team/hello", d["digest"])
               for d in json.loads(sig_manifest)["layers"]}
    pub = keys.load_public_key(pair.public_pem)
    assert [c.digest for c in cosign.verify(pub, digest, sig_manifest, fetched, repo)] == [digest]
    assert len(cosign_verify(pair.public_pem, digest, sig_manifest, fetched)) == 1
    # a second signature is appended to the same tag, both verify
    art2 = cosign.signature_manifest([*cosign.signatures_in(sig_manifest, fetched), cosign.sign(key, repo, digest)])
    assert len(cosign_verify(pair.public_pem, digest, art2.manifest, art2.blobs)) == 2
    # the image changes (another tag with other bytes): the old signature does not cover it
    other = json.loads(manifest)
    other["annotations"] = {"tampered": "yes"}
    other_digest = put_manifest(reg.url, "team/hello", "2", json.dumps(other).encode(), other["mediaType"])
    with pytest.raises(SignError, match="signed digest"):
        cosign.verify(pub, other_digest, sig_manifest, fetched)
    assert cosign_verify(pair.public_pem, other_digest, sig_manifest, fetched) == []


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    os.chmod(path, 0o600)
    return path


def test_passphrase_prompt_on_a_terminal_is_not_echoed() -> None:
    """On a TTY the passphrase is asked twice for a new key (getpass: echo off) and never shown."""
    code = ("import hashlib; from oci_conda.sign import keys\n"
            "try:\n p = keys.read_passphrase(confirm=True, env={})\n print('GOT', hashlib.sha256(p).hexdigest())\n"
            "except keys.SignError as e:\n print('ERR', e)")
    for second, expect in (("hunter22", "GOT " + hashlib.sha256(b"hunter22").hexdigest()),
                           ("different", "ERR passwords do not match")):
        pid, fd = pty.fork()
        if pid == 0:  # child: stdin/stdout are the pty
            os.execv(sys.executable, [sys.executable, "-c", code])
        out = b""
        for answer in ("hunter22", second):
            while b"password for private key" not in out.split(b"\n")[-1]:
                out += os.read(fd, 1024)
            os.write(fd, answer.encode() + b"\n")
            out += b"\n"
        while True:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        text = out.decode()
        assert expect in text and "hunter22" not in text and "different" not in text
