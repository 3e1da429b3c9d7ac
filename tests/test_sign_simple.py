"""containers "simple signing" with the real tools: an image in a real registry signed by oci_conda (gpg) is
accepted by ``skopeo copy`` under a ``signedBy`` policy with a registries.d lookaside and refused when the signature
is tampered with, made by another key or made for another digest; an image signed by ``skopeo copy --sign-by`` is
accepted by our verifier, which refuses what skopeo refuses."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import need_tool
from ocipush import get_manifest, put_manifest
from registry_fixtures import Servers, module_servers  # noqa: F401  (fixture)
from supply_fixtures import (
    GpgKey,
    HelloImage,
    build_hello,
    make_gpg_key,
    stop_gpg_agent,
)

from oci_conda.sign import simple
from oci_conda.sign.errors import SignError
from oci_conda.sign.payload import ATOMIC_TYPE, make_payload

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GpgKey, GpgKey]]:
    d = tmp_path_factory.mktemp("gpg")
    signer, stranger = make_gpg_key(d / "a", "Signer", "s@example.com"), make_gpg_key(d / "b", "Other", "o@example.com")
    yield signer, stranger
    stop_gpg_agent(signer)
    stop_gpg_agent(stranger)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, module_servers: Servers) -> dict:  # noqa: F811
    need_tool("skopeo")
    d = tmp_path_factory.mktemp("simple")
    hello: HelloImage = build_hello(d)
    reg = module_servers.registry()
    return {"dir": d, "hello": hello, "reg": reg}


def push(env: dict, repo: str, tag: str = "1") -> str:
    reg = env["reg"]
    subprocess.run(["skopeo", "copy", "--dest-tls-verify=false", f"oci-archive:{env['hello'].archive}",
                    f"docker://{reg.host}/{repo}:{tag}"], check=True, capture_output=True, timeout=120)
    manifest = get_manifest(reg.url, repo, tag)
    assert manifest is not None
    return "sha256:" + hashlib.sha256(manifest).hexdigest()


def skopeo_config(env: dict, sigs: Path, repo: str, keyring: Path, name: str) -> tuple[Path, Path]:
    d = env["dir"] / name
    (d / "rd").mkdir(parents=True)
    (d / "rd" / "r.yaml").write_text(json.dumps(
        {"docker": {env["reg"].host: {"lookaside": f"file://{sigs}", "lookaside-staging": f"file://{sigs}"}}}))
    policy = d / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {"docker": {
        f"{env['reg'].host}/{repo}": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(keyring)}]}}}))
    return policy, d / "rd"


def skopeo_accepts(env: dict, repo: str, policy: Path, rd: Path, tag: str = "1") -> subprocess.CompletedProcess:
    out = env["dir"] / f"pulled-{time.monotonic_ns()}.tar"
    return subprocess.run(["skopeo", "--policy", str(policy), "--registries.d", str(rd), "copy",
                           "--remove-signatures", "--src-tls-verify=false",
                           f"docker://{env['reg'].host}/{repo}:{tag}", f"oci-archive:{out}"],
                          check=False, capture_output=True, text=True, timeout=120)


def test_our_signature_is_accepted_by_skopeo_and_tampering_refused(env: dict, keys: tuple[GpgKey, GpgKey]) -> None:
    signer, stranger = keys
    repo = "t/ours"
    digest = push(env, repo)
    sigs = env["dir"] / "sigs-ours"
    ref = f"{env['reg'].host}/{repo}:1"
    policy, rd = skopeo_config(env, sigs, repo, signer.public, "cfg-ours")

    r = skopeo_accepts(env, repo, policy, rd)
    assert r.returncode != 0 and "signature" in r.stderr.lower()  # unsigned: refused

    t0 = time.perf_counter()
    path = simple.sign_image(ref, digest, signer.fingerprint, sigs, gnupghome=str(signer.home))
    print(f"\nsimple signing (gpg, RSA-2048): {time.perf_counter() - t0:.3f}s")
    assert path == sigs / f"{repo}@sha256={digest.split(':')[1]}" / "signature-1"
    r = skopeo_accepts(env, repo, policy, rd)
    assert r.returncode == 0, r.stderr
    ok = simple.verify_image(ref, digest, signer.public, sigs)
    assert [v.fingerprint for v in ok] == [signer.fingerprint]
    assert ok[0].claim.optional and ok[0].claim.optional["creator"].startswith("oci-conda")

    # a flipped byte in the signature: refused by skopeo and by us
    good = path.read_bytes()
    bad = bytearray(good)
    bad[len(bad) // 2] ^= 0x01
    path.write_bytes(bytes(bad))
    r = skopeo_accepts(env, repo, policy, rd)
    assert r.returncode != 0
    with pytest.raises(SignError, match="no valid signature"):
        simple.verify_image(ref, digest, signer.public, sigs)

    # signed by a key the policy does not trust
    path.write_bytes(simple.gpg_sign(make_payload(ref, digest, ATOMIC_TYPE), stranger.fingerprint,
                                     str(stranger.home)))
    assert skopeo_accepts(env, repo, policy, rd).returncode != 0
    with pytest.raises(SignError, match="not accepted"):
        simple.verify_image(ref, digest, signer.public, sigs)

    # a good signature by the right key, but for another manifest digest
    other = "sha256:" + "0" * 64
    path.write_bytes(simple.gpg_sign(make_payload(ref, other, ATOMIC_TYPE), signer.fingerprint, str(signer.home)))
    assert skopeo_accepts(env, repo, policy, rd).returncode != 0
    with pytest.raises(SignError, match="signed digest"):
        simple.verify_image(ref, digest, signer.public, sigs)

    # ... or for another image name
    path.write_bytes(simple.gpg_sign(make_payload(f"{env['reg'].host}/t/else:1", digest, ATOMIC_TYPE),
                                     signer.fingerprint, str(signer.home)))
    assert skopeo_accepts(env, repo, policy, rd).returncode != 0
    with pytest.raises(SignError, match="signed for"):
        simple.verify_image(ref, digest, signer.public, sigs)

    # restored, and a second signature goes to signature-2; both kinds of reader still accept
    path.write_bytes(good)
    p2 = simple.sign_image(ref, digest, signer.fingerprint, sigs, gnupghome=str(signer.home))
    assert p2.name == "signature-2"
    assert skopeo_accepts(env, repo, policy, rd).returncode == 0
    assert len(simple.verify_image(ref, digest, signer.public, sigs)) == 2

    # the image under the tag changes: the signatures do not cover the new manifest
    man = json.loads(get_manifest(env["reg"].url, repo, "1") or b"{}")
    man["annotations"] = {"tampered": "yes"}
    new_digest = put_manifest(env["reg"].url, repo, "1", json.dumps(man).encode(), man["mediaType"])
    assert skopeo_accepts(env, repo, policy, rd).returncode != 0
    with pytest.raises(SignError):
        simple.verify_image(ref, new_digest, signer.public, sigs)


def test_skopeo_signature_is_accepted_by_our_verifier(env: dict, keys: tuple[GpgKey, GpgKey]) -> None:
    signer, stranger = keys
    repo = "t/theirs"
    sigs = env["dir"] / "sigs-theirs"
    policy, rd = skopeo_config(env, sigs, repo, signer.public, "cfg-theirs")
    r = subprocess.run(["skopeo", "--registries.d", str(rd), "copy", "--dest-tls-verify=false", "--sign-by",
                        signer.fingerprint, f"oci-archive:{env['hello'].archive}",
                        f"docker://{env['reg'].host}/{repo}:1"], check=False, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "GNUPGHOME": str(signer.home)})
    assert r.returncode == 0, r.stderr
    manifest = get_manifest(env["reg"].url, repo, "1")
    digest = "sha256:" + hashlib.sha256(manifest or b"").hexdigest()
    ref = f"{env['reg'].host}/{repo}:1"
    assert (sigs / f"{repo}@sha256={digest.split(':')[1]}" / "signature-1").is_file()
    ok = simple.verify_image(ref, digest, signer.public, sigs)
    assert [v.fingerprint for v in ok] == [signer.fingerprint]
    assert ok[0].claim.reference == ref and ok[0].claim.digest == digest
    assert skopeo_accepts(env, repo, policy, rd).returncode == 0  # the same signature, skopeo's own verdict
    with pytest.raises(SignError, match="not accepted"):
        simple.verify_image(ref, digest, stranger.public, sigs)
    with pytest.raises(SignError, match="signed digest"):
        # the signature file moved to another digest's directory is still for the old digest
        other = "sha256:" + "f" * 64
        d = sigs / f"{repo}@sha256={'f' * 64}"
        d.mkdir()
        (d / "signature-1").write_bytes((sigs / f"{repo}@sha256={digest.split(':')[1]}" / "signature-1").read_bytes())
        simple.verify_image(ref, other, signer.public, sigs)
    with pytest.raises(SignError, match="signed for"):
        simple.verify_image(f"{env['reg'].host}/{repo}:2", digest, signer.public, sigs)


def test_errors_are_one_line(tmp_path: Path, keys: tuple[GpgKey, GpgKey]) -> None:
    signer, _ = keys
    with pytest.raises(SignError, match="full reference"):
        simple.sign_image("hello:1", "sha256:" + "0" * 64, signer.fingerprint, tmp_path)
    with pytest.raises(SignError, match="could not sign with key"):
        simple.sign_image("127.0.0.1:1/a:1", "sha256:" + "0" * 64, "0" * 40, tmp_path, gnupghome=str(signer.home))
    with pytest.raises(SignError, match="none under"):
        simple.verify_image("127.0.0.1:1/a:1", "sha256:" + "0" * 64, signer.public, tmp_path)
    with pytest.raises(SignError, match="cannot read keyring"):
        simple.gpg_verify(b"x", tmp_path / "missing.gpg")
