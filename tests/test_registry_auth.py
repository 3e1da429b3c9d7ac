"""Registry auth against the real registry: Basic (htpasswd), bearer tokens from a token server whose JWTs the
registry verifies, TLS with a private CA, Docker config.json / podman auth.json / credential helpers, ``login``.
No secret may appear in any output."""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from realenv import oci_conda, one_error_line
from registry_fixtures import Servers, htpasswd, make_tls, servers  # noqa: F401
from registry_cli import cli_env, hello  # noqa: F401

from oci_conda.oci.image import Platform
from oci_conda.oci.registry import auth
from oci_conda.oci.registry.client import Diagnostic, RegistryError, RegistryOptions
from oci_conda.oci.registry.pull import pull_image

USER, PASSWORD = "alice", "s3cret-Basic-pw"


def auth_entry(user: str, password: str) -> dict:
    return {"auth": base64.b64encode(f"{user}:{password}".encode()).decode()}


@pytest.fixture
def basic(servers: Servers):  # noqa: F811
    return servers.registry("basic", auth=htpasswd(servers.root / "htpasswd", USER, PASSWORD))


def test_basic_auth_login_and_config_files(hello: dict, basic, tmp_path: Path) -> None:  # noqa: F811
    env = cli_env(tmp_path)
    ref = f"{basic.host}/private/hello:1"
    p = oci_conda("push", "-q", str(hello["out"]), ref, env=env, check=False)
    assert "login" in one_error_line(p) and basic.host in p.stderr
    # a wrong password: one line, nothing written, the password nowhere
    authfile = tmp_path / "auth.json"
    p = subprocess.run(["python", "-m", "oci_conda", "login", basic.host, "-u", USER, "--password-stdin", "--authfile",
                        str(authfile)], input="wrong-Password-9\n", capture_output=True, text=True, env=env)
    assert "401" in one_error_line(p, "wrong-Password-9") and not authfile.exists()
    p = subprocess.run(["python", "-m", "oci_conda", "login", basic.host, "-u", USER, "--password-stdin", "--authfile",
                        str(authfile)], input=PASSWORD + "\n", capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert PASSWORD not in p.stdout + p.stderr
    assert json.loads(authfile.read_text())["auths"][basic.host] == auth_entry(USER, PASSWORD)
    assert stat.S_IMODE(authfile.stat().st_mode) == 0o600
    # the file written by login works through --authfile, REGISTRY_AUTH_FILE and as Docker's config.json
    oci_conda("push", "-q", str(hello["out"]), ref, "--authfile", str(authfile), env=env)
    oci_conda("push", "-q", str(hello["out"]), ref, env=dict(env, REGISTRY_AUTH_FILE=str(authfile)))
    docker = tmp_path / "docker"
    docker.mkdir()
    (docker / "config.json").write_text(authfile.read_text())
    p = oci_conda("push", str(hello["out"]), ref, env=env)
    assert p.stdout.strip() == hello["summary"]["digest"]
    # podman's auth.json under XDG_RUNTIME_DIR
    run = tmp_path / "run"
    (run / "containers").mkdir(parents=True)
    (run / "containers" / "auth.json").write_text(authfile.read_text())
    oci_conda("push", "-q", str(hello["out"]), ref, env=dict(env, XDG_RUNTIME_DIR=str(run), DOCKER_CONFIG=str(tmp_path)))


HELPER = """#!/bin/sh
# a docker-credential-* helper: get answers for one registry, store records what it was given
echo "$1" >> "{log}"
case "$1" in
  get) read host; if [ "$host" = "{host}" ]; then
         printf '{{"ServerURL":"%s","Username":"{user}","Secret":"{password}"}}' "$host"
       else echo "credentials not found in native keychain"; exit 1; fi ;;
  store) cat > "{stored}" ;;
  *) exit 1 ;;
esac
"""


def test_credential_helpers(hello: dict, basic, tmp_path: Path) -> None:  # noqa: F811
    bindir = tmp_path / "bin"
    bindir.mkdir()
    log, stored = tmp_path / "helper.log", tmp_path / "stored.json"
    helper = bindir / "docker-credential-test"
    helper.write_text(HELPER.format(log=log, host=basic.host, user=USER, password=PASSWORD, stored=stored))
    helper.chmod(0o755)
    env = cli_env(tmp_path, PATH=f"{bindir}{os.pathsep}{os.environ['PATH']}")
    docker = tmp_path / "docker"
    docker.mkdir()
    ref = f"{basic.host}/helped/hello:1"
    (docker / "config.json").write_text(json.dumps({"credHelpers": {basic.host: "test"}}))
    oci_conda("push", "-q", str(hello["out"]), ref, env=env)
    assert log.read_text().split() == ["get"]
    (docker / "config.json").write_text(json.dumps({"credsStore": "test"}))
    oci_conda("push", "-q", str(hello["out"]), ref, env=env)
    # login with a credsStore hands the secret to the helper, not to the file
    p = subprocess.run(["python", "-m", "oci_conda", "login", basic.host, "-u", USER, "--password-stdin"],
                       input=PASSWORD, capture_output=True, text=True, env=env)
    assert p.returncode == 0, p.stderr
    assert json.loads(stored.read_text()) == {"ServerURL": basic.host, "Username": USER, "Secret": PASSWORD}
    assert PASSWORD not in (docker / "config.json").read_text()
    # a helper that knows nothing for this registry: anonymous, so the registry asks for a login
    (docker / "config.json").write_text(json.dumps({"credHelpers": {basic.host: "missing"}}))
    p = oci_conda("push", "-q", str(hello["out"]), ref, env=env, check=False)
    assert "docker-credential-missing" in one_error_line(p)


def test_bearer_token_auth(hello: dict, servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    ts = servers.token_server({"bob": "tok-Secret-pw"})
    reg = servers.registry("token", auth=ts.registry_auth())
    ref = f"{reg.host}/tok/hello:1"
    env = cli_env(tmp_path)
    docker = tmp_path / "docker"
    docker.mkdir()
    # anonymous: the token grants pull only, so the push is refused in one line
    p = oci_conda("push", "-q", str(hello["out"]), ref, env=env, check=False)
    assert "401" in one_error_line(p)
    (docker / "config.json").write_text(json.dumps({"auths": {f"https://{reg.host}/v1/": auth_entry("bob", "tok-Secret-pw")}}))
    ts.log.clear()
    p = oci_conda("push", str(hello["out"]), ref, "--json", env=env)
    assert json.loads(p.stdout)["digest"] == hello["summary"]["digest"]
    # one token for the whole push (cached per scope, shared by the upload threads), asked as bob
    assert ts.log == [("token", "bob", ["repository:tok/hello:pull,push"])]
    # anonymous pull with a token for the pull scope
    img = pull_image(ref, Platform(), RegistryOptions(authfile=str(tmp_path / "none.json")))
    assert img.annotations["org.opencontainers.image.base.digest"] == hello["summary"]["digest"]
    assert ("token", None, ["repository:tok/hello:pull"]) in ts.log
    # an identity token (OAuth2 refresh token) instead of a password
    ts.refresh_tokens["Refresh-Token-42"] = "bob"
    (docker / "config.json").write_text(json.dumps({"auths": {reg.host: {"identitytoken": "Refresh-Token-42"}}}))
    ts.log.clear()
    p = oci_conda("push", str(hello["out"]), f"{reg.host}/tok/other:1", env=env)
    assert "Refresh-Token-42" not in p.stdout + p.stderr
    assert ts.log == [("refresh", "bob", ["repository:tok/other:pull,push"])]
    # wrong password: the token server refuses; one line, no secret
    (docker / "config.json").write_text(json.dumps({"auths": {reg.host: auth_entry("bob", "Wrong-tok-pw")}}))
    p = oci_conda("push", "-q", str(hello["out"]), ref, env=env, check=False)
    assert "refused" in one_error_line(p, "Wrong-tok-pw")
    p = subprocess.run(["python", "-m", "oci_conda", "login", reg.host, "-u", "bob", "--password-stdin"],
                       input="Wrong-tok-pw\n", capture_output=True, text=True, env=env)
    one_error_line(p, "Wrong-tok-pw")


def test_tls_with_a_private_ca(hello: dict, servers: Servers, tmp_path: Path) -> None:  # noqa: F811
    tls = make_tls(tmp_path / "tls")
    other = make_tls(tmp_path / "other")
    reg = servers.registry("tls", tls=tls)
    ref = f"{reg.host}/secure/hello:1"
    env = cli_env(tmp_path)
    p = oci_conda("push", "-q", str(hello["out"]), ref, "--ca-file", str(other.ca), env=env, check=False)
    assert "TLS certificate verification failed" in one_error_line(p)
    p = oci_conda("push", "-q", str(hello["out"]), ref, env=env, check=False)  # loopback without a CA: plain HTTP
    assert reg.host in one_error_line(p)
    p = oci_conda("push", str(hello["out"]), ref, "--ca-file", str(tls.ca), env=env)
    assert p.stdout.strip() == hello["summary"]["digest"]
    certs = tmp_path / "certs"
    certs.mkdir()
    (certs / "ca.crt").write_bytes(tls.ca.read_bytes())
    got = subprocess.run(["skopeo", "inspect", "--format", "{{.Digest}}", "--cert-dir", str(certs), f"docker://{ref}"],
                         capture_output=True, text=True)
    assert got.stdout.strip() == hello["summary"]["digest"], got.stderr
    # and pulled back as a base over TLS
    img = pull_image(ref, Platform(), RegistryOptions(ca_file=str(tls.ca)))
    assert img.annotations["org.opencontainers.image.base.digest"] == hello["summary"]["digest"]


def test_credentials_lookup_order_and_no_secret_in_repr(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    docker = tmp_path / "docker"
    docker.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(docker))
    (docker / "config.json").write_text(json.dumps({"auths": {"https://reg.test:5000/v1/": auth_entry("d", "pw-d"),
                                                              "other.test": {"identitytoken": "idt"}}}))
    podman_file = tmp_path / "auth.json"
    podman_file.write_text(json.dumps({"auths": {"reg.test:5000": auth_entry("p", "pw:with:colons")}}))
    assert auth.lookup("reg.test:5000") == auth.Credentials("d", "pw-d")
    assert auth.lookup("other.test") == auth.Credentials(identity_token="idt")
    assert auth.lookup("nobody.test") is None
    monkeypatch.setenv("REGISTRY_AUTH_FILE", str(podman_file))
    creds = auth.lookup("reg.test:5000")
    assert creds == auth.Credentials("p", "pw:with:colons")
    assert "pw:with:colons" not in repr(creds) + str(creds)
    assert auth.lookup("other.test") == auth.Credentials(identity_token="idt")  # falls through to Docker's file
    (docker / "config.json").write_text("{not json")
    with pytest.raises(auth.AuthError, match="config.json is not valid JSON"):
        auth.lookup("nobody.test")


def test_docker_hub_credentials_under_dockers_own_key(tmp_path: Path) -> None:
    """docker login stores Docker Hub credentials under https://index.docker.io/v1/; every Hub name finds them."""
    import base64

    cfg = tmp_path / "config.json"
    cfg.write_text(json.dumps({"auths": {"https://index.docker.io/v1/": {
        "auth": base64.b64encode(b"hubuser:hubpass").decode()}}}))
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        creds = auth.lookup(host, authfile=cfg)
        assert creds is not None and creds.username == "hubuser"
    assert auth.lookup("ghcr.io", authfile=cfg) is None


def test_credentials_are_bound_to_one_origin() -> None:
    creds = auth.Credentials("u", "pw")
    https = auth.ScopedCredentials(auth.Origin.of("https://reg.test/v2/"), creds)
    assert https.allows("https://reg.test:443/v2/a/blobs/uploads/x")
    assert not https.allows("http://reg.test/v2/")  # a downgrade
    assert not https.allows("https://reg.test:8443/v2/")  # another port
    assert not https.allows("https://bucket.test/blob")  # another host (e.g. an upload Location elsewhere)
    assert https.allows_realm("https://auth.test/token")
    assert not https.allows_realm("http://reg.test/token")  # never from HTTPS down to HTTP
    plain = auth.ScopedCredentials(auth.Origin.of("http://127.0.0.1:5000"), creds)
    assert plain.allows_realm("http://127.0.0.1:5001/token")  # the same host, already in the clear
    assert not plain.allows_realm("http://other.test/token")
    assert "pw" not in repr(https) and "pw" not in str(creds)


def test_registry_error_is_typed_and_says_whether_to_retry() -> None:
    assert RegistryError("x", status=503).temporary()
    assert not RegistryError("x", status=404).temporary()
    assert RegistryError("x", status=400, diagnostics=(Diagnostic("TOOMANYREQUESTS"),)).temporary()
    denied = RegistryError("x", status=403, diagnostics=(Diagnostic("DENIED", "no"),))
    assert not denied.temporary() and denied.codes == {"DENIED"}
    assert RegistryError("connection refused", temporary=True).temporary()
