"""``keygen``, ``sign``, ``verify`` and ``build --push --sign-key`` through the command line against a real registry:
cosign's format checked by the independent oracle (tests/cosign_oracle.py) as well as by ``oci-conda verify``, with a
tampered manifest digest, another key and a wrong passphrase refused in one line; simple signing (gpg) checked by
skopeo under a ``signedBy`` policy both ways. Keys and passphrases never appear in any output."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, need_tool
from cosign_oracle import cosign_verify, decrypt_cosign_key
from ocipush import get_blob, get_manifest, put_manifest
from realenv import oci_conda, one_error_line
from registry_cli import cli_env
from registry_fixtures import Servers, module_servers  # noqa: F401  (fixture)
from supply_fixtures import GpgKey, make_gpg_key, stop_gpg_agent

pytestmark = pytest.mark.slow

HELLO = REPO / "examples" / "hello" / "environment.yml"
PASS = "tr0ub4dor&3 passphrase"


def sig_tag(digest: str) -> str:
    return "sha256-" + digest.split(":")[1] + ".sig"


def fetch_sig(url: str, repo: str, digest: str) -> tuple[bytes, dict[str, bytes]]:
    man = get_manifest(url, repo, sig_tag(digest))
    assert man is not None
    return man, {d["digest"]: get_blob(url, repo, d["digest"]) for d in json.loads(man)["layers"]}


def test_cosign_keygen_sign_verify(module_servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    reg = module_servers.registry("cosign")
    env = cli_env(tmp_path, COSIGN_PASSWORD=PASS)
    keys = tmp_path / "keys"
    keys.mkdir()
    r = oci_conda("keygen", "--output-dir", str(keys), env=env)
    assert PASS not in r.stdout + r.stderr
    priv, pub = keys / "cosign.key", keys / "cosign.pub"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600 and b"ENCRYPTED SIGSTORE PRIVATE KEY" in priv.read_bytes()
    assert decrypt_cosign_key(priv.read_bytes(), PASS.encode())  # the oracle opens it with the passphrase
    # keygen in the current directory by default; never over an existing key
    oci_conda("keygen", cwd=tmp_path, env=env)
    assert (tmp_path / "cosign.key").is_file()
    line = one_error_line(oci_conda("keygen", cwd=tmp_path, env=env, check=False), PASS)
    assert "already exists" in line

    # build --push, with and without signing in the same run: what signing adds
    t0 = time.perf_counter()
    plain = json.loads(oci_conda("build", str(HELLO), "--push", f"{reg.host}/t/plain:1", "--json", env=env).stdout)
    t1 = time.perf_counter()
    signed = json.loads(oci_conda("build", str(HELLO), "--push", f"{reg.host}/t/app:1", "--sign-key", str(priv),
                                  "--json", env=env).stdout)
    t2 = time.perf_counter()
    digest = signed["push"]["digest"]
    assert signed["signature"]["digest"] == digest and signed["signature"]["tag"] == sig_tag(digest)
    print(f"\nbuild --push {t1 - t0:.2f}s; with --sign-key {t2 - t1:.2f}s (sign step {signed['signature']['seconds']}s: "
          "scrypt key decrypt happens before the build)")

    ok = json.loads(oci_conda("verify", f"{reg.host}/t/app:1", "--key", str(pub), "--json", env=env).stdout)
    assert ok["digest"] == digest and ok["verified"] == [{"reference": f"{reg.host}/t/app", "digest": digest}]
    man, blobs = fetch_sig(reg.url, "t/app", digest)
    assert len(cosign_verify(pub.read_bytes(), digest, man, blobs)) == 1  # the independent verifier agrees

    # an unsigned image, another key, a wrong passphrase: one line each, no secret shown
    line = one_error_line(oci_conda("verify", f"{reg.host}/t/plain:1", "--key", str(pub), env=env, check=False))
    assert "no cosign signatures" in line and plain["push"]["digest"] in line
    other = tmp_path / "other"
    other.mkdir()
    oci_conda("keygen", "--output-dir", str(other), env=env)
    line = one_error_line(oci_conda("verify", f"{reg.host}/t/app:1", "--key", str(other / "cosign.pub"), env=env,
                                    check=False))
    assert "does not match the key" in line
    bad = {**env, "COSIGN_PASSWORD": "not the passphrase"}
    line = one_error_line(oci_conda("sign", f"{reg.host}/t/app:1", "--key", str(priv), env=bad, check=False),
                          PASS, "not the passphrase")
    assert "wrong passphrase" in line

    # tampered: the tag moved to other manifest bytes and the old signature copied to the new digest's tag
    doc = json.loads(get_manifest(reg.url, "t/app", "1") or b"{}")
    doc["annotations"] = {"tampered": "yes"}
    new_digest = put_manifest(reg.url, "t/app", "1", json.dumps(doc).encode(), doc["mediaType"])
    line = one_error_line(oci_conda("verify", f"{reg.host}/t/app:1", "--key", str(pub), env=env, check=False))
    assert "no cosign signatures" in line
    put_manifest(reg.url, "t/app", sig_tag(new_digest), man, "application/vnd.oci.image.manifest.v1+json")
    line = one_error_line(oci_conda("verify", f"{reg.host}/t/app:1", "--key", str(pub), env=env, check=False))
    assert f"signed digest {digest} is not {new_digest}" in line
    assert cosign_verify(pub.read_bytes(), new_digest, man, blobs) == []
    # the original digest still verifies by digest
    oci_conda("verify", f"{reg.host}/t/app@{digest}", "--key", str(pub), env=env)

    # `sign` an image pushed earlier; a second signature is appended, both verify
    oci_conda("sign", f"{reg.host}/t/plain:1", "--key", str(priv), env=env)
    oci_conda("sign", f"{reg.host}/t/plain:1", "--key", str(other / "cosign.key"), env=env)
    pd = plain["push"]["digest"]
    man, blobs = fetch_sig(reg.url, "t/plain", pd)
    assert len(json.loads(man)["layers"]) == 2
    assert len(cosign_verify(pub.read_bytes(), pd, man, blobs)) == 1
    assert len(cosign_verify((other / "cosign.pub").read_bytes(), pd, man, blobs)) == 1
    oci_conda("verify", f"{reg.host}/t/plain:1", "--key", str(pub), env=env)
    view = json.loads(oci_conda("inspect", f"{reg.host}/t/plain:1", "--json", env=env).stdout)
    assert view["subjects"][pd]["cosign_signatures"] == 2


@pytest.fixture(scope="module")
def gpg_keys(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GpgKey, GpgKey]]:
    d = tmp_path_factory.mktemp("gpg")
    signer, stranger = make_gpg_key(d / "a", "Signer", "s@example.com"), make_gpg_key(d / "b", "Other", "o@example.com")
    yield signer, stranger
    stop_gpg_agent(signer)
    stop_gpg_agent(stranger)


def skopeo_policy(d: Path, host: str, repo: str, sigs: Path, keyring: Path) -> tuple[Path, Path]:
    (d / "rd").mkdir(parents=True)
    (d / "rd" / "r.yaml").write_text(json.dumps(
        {"docker": {host: {"lookaside": f"file://{sigs}", "lookaside-staging": f"file://{sigs}"}}}))
    policy = d / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "reject"}], "transports": {"docker": {
        f"{host}/{repo}": [{"type": "signedBy", "keyType": "GPGKeys", "keyPath": str(keyring)}]}}}))
    return policy, d / "rd"


def skopeo_pull(host: str, repo: str, policy: Path, rd: Path, out: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["skopeo", "--policy", str(policy), "--registries.d", str(rd), "copy", "--remove-signatures",
                           "--src-tls-verify=false", f"docker://{host}/{repo}:1", f"oci-archive:{out}"],
                          check=False, capture_output=True, text=True, timeout=120)


def test_gpg_sign_verify_with_skopeo_both_ways(module_servers: Servers, tmp_path: Path,  # noqa: F811
                                               gpg_keys: tuple[GpgKey, GpgKey]) -> None:
    need_tool("skopeo")
    signer, stranger = gpg_keys
    reg = module_servers.registry("gpg")
    env = cli_env(tmp_path, GNUPGHOME=str(signer.home))
    sigs = tmp_path / "sigs"
    ref = f"{reg.host}/t/ours:1"
    digest = json.loads(oci_conda("build", str(HELLO), "--push", ref, "--json", env=env).stdout)["push"]["digest"]
    policy, rd = skopeo_policy(tmp_path / "ours", reg.host, "t/ours", sigs, signer.public)
    assert skopeo_pull(reg.host, "t/ours", policy, rd, tmp_path / "a.tar").returncode != 0  # unsigned: refused

    t0 = time.perf_counter()
    oci_conda("sign", ref, "--gpg-key", signer.fingerprint, "--lookaside", str(sigs), env=env)
    print(f"\noci-conda sign --gpg-key: {time.perf_counter() - t0:.2f}s")
    assert (sigs / f"t/ours@sha256={digest.split(':')[1]}" / "signature-1").is_file()
    r = skopeo_pull(reg.host, "t/ours", policy, rd, tmp_path / "b.tar")
    assert r.returncode == 0, r.stderr  # skopeo accepts our signature
    ok = json.loads(oci_conda("verify", ref, "--gpg-keyring", str(signer.public), "--lookaside", str(sigs), "--json",
                              env=env).stdout)
    assert [v["fingerprint"] for v in ok["verified"]] == [signer.fingerprint]
    line = one_error_line(oci_conda("verify", ref, "--gpg-keyring", str(stranger.public), "--lookaside", str(sigs),
                                    env=env, check=False))
    assert "not accepted" in line

    # the other way: skopeo signs, oci-conda verifies
    theirs = f"{reg.host}/t/theirs:1"
    policy2, rd2 = skopeo_policy(tmp_path / "theirs", reg.host, "t/theirs", sigs, signer.public)
    r = subprocess.run(["skopeo", "--registries.d", str(rd2), "copy", "--dest-tls-verify=false", "--sign-by",
                        signer.fingerprint, f"docker://{ref}", f"docker://{theirs}", "--src-tls-verify=false"],
                       check=False, capture_output=True, text=True, timeout=120,
                       env={**os.environ, "GNUPGHOME": str(signer.home)})
    assert r.returncode == 0, r.stderr
    ok = json.loads(oci_conda("verify", theirs, "--gpg-keyring", str(signer.public), "--lookaside", str(sigs),
                              "--json", env=env).stdout)
    assert ok["verified"][0]["reference"] == theirs and ok["verified"][0]["fingerprint"] == signer.fingerprint

    # tampered: the tag now names other manifest bytes; both readers refuse
    for repo, pol, rdd in (("t/ours", policy, rd), ("t/theirs", policy2, rd2)):
        doc = json.loads(get_manifest(reg.url, repo, "1") or b"{}")
        doc["annotations"] = {"tampered": "yes"}
        new = put_manifest(reg.url, repo, "1", json.dumps(doc).encode(), doc["mediaType"])
        assert hashlib.sha256(json.dumps(doc).encode()).hexdigest() == new.split(":")[1]
        assert skopeo_pull(reg.host, repo, pol, rdd, tmp_path / f"{repo.replace('/', '-')}.tar").returncode != 0
        line = one_error_line(oci_conda("verify", f"{reg.host}/{repo}:1", "--gpg-keyring", str(signer.public),
                                        "--lookaside", str(sigs), env=env, check=False))
        assert "no valid signature" in line and new in line


def test_sign_and_verify_argument_errors(tmp_path: Path) -> None:
    env = cli_env(tmp_path)
    for args, want in ((("sign", "127.0.0.1:1/a:1"), "give --key cosign.key or --gpg-key"),
                       (("sign", "127.0.0.1:1/a:1", "--gpg-key", "ABC"), "--lookaside"),
                       (("verify", "127.0.0.1:1/a:1"), "give --key cosign.pub or --gpg-keyring"),
                       (("build", str(HELLO), "-o", str(tmp_path / "x.tar"), "--sign-key", "k"), "--push"),
                       (("build", str(HELLO), "-o", str(tmp_path / "x.tar"), "--sbom", "swid"), "unknown format")):
        assert want in one_error_line(oci_conda(*args, env=env, check=False))
    assert not (tmp_path / "x.tar").exists()
