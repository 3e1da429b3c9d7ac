"""Registry credentials: where they are kept and how to read and write them, in the formats Docker and podman use.

Looked up, first hit wins: ``--authfile`` (or ``REGISTRY_AUTH_FILE``), podman's ``$XDG_RUNTIME_DIR/containers/auth.json``,
then Docker's ``$DOCKER_CONFIG/config.json`` (default ``~/.docker/config.json``). In each file: ``credHelpers[host]``,
then ``auths[host]`` (``auth`` = base64 ``user:password``, or ``identitytoken``), then ``credsStore``. Helpers speak
the ``docker-credential-NAME get|store`` protocol (server URL on stdin, JSON on stdout).

A ``Credentials`` value never shows its secret in ``repr`` or ``str``; nothing here prints or logs one. Credentials
found for a registry are bound to exactly one origin (scheme, host, port) as :class:`ScopedCredentials`: they go
only to that origin, and to a token server it names only over HTTPS (or in the clear on the same host, when the
registry is plain HTTP itself), never to another host in the clear and never over a downgrade from HTTPS to HTTP.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from oci_conda.cache import atomic_write
from oci_conda.errors import OciCondaError
from oci_conda.oci.registry.reference import DOCKER_HUB_NAMES


class AuthError(OciCondaError):
    """Credentials cannot be read or stored."""


@dataclass(frozen=True)
class Credentials:
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)  # an OAuth2 refresh token (Docker's ``identitytoken``)

    def __str__(self) -> str:
        return f"credentials for {self.username or '<token>'}"


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def _podman_auth_path() -> Path | None:
    run = os.environ.get("XDG_RUNTIME_DIR")
    return Path(run) / "containers" / "auth.json" if run else None


def auth_files(authfile: str | os.PathLike[str] | None = None) -> list[Path]:
    """The files searched for credentials, in order."""
    if authfile:
        return [Path(authfile)]
    out: list[Path] = []
    env = os.environ.get("REGISTRY_AUTH_FILE")
    if env:
        out.append(Path(env))
    podman = _podman_auth_path()
    if podman is not None:
        out.append(podman)
    out.append(docker_config_path())
    return out


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise AuthError(f"cannot read credentials file {path}: {exc.strerror}") from None
    try:
        doc = json.loads(data or b"{}")
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise AuthError(f"credentials file {path} is not valid JSON") from None
    if not isinstance(doc, dict):
        raise AuthError(f"credentials file {path} is not a JSON object")
    return doc


def _host_of(key: str) -> str:
    """``https://host/v1/`` or ``host`` -> ``host``, as docker normalises ``auths`` keys (Docker Hub -> docker.io)."""
    k = key
    for p in ("https://", "http://"):
        if k.startswith(p):
            k = k[len(p):]
    host = k.split("/", 1)[0]
    return "docker.io" if host in DOCKER_HUB_NAMES else host


def _decode_auth(value: str, host: str, path: Path) -> tuple[str, str]:
    try:
        user, sep, password = base64.b64decode(value).decode("utf-8").partition(":")
    except (ValueError, UnicodeDecodeError):
        raise AuthError(f"credentials file {path}: the auth entry for {host} is not base64 user:password") from None
    if not sep:
        raise AuthError(f"credentials file {path}: the auth entry for {host} is not base64 user:password")
    return user, password


def helper_get(helper: str, host: str) -> Credentials | None:
    """Ask ``docker-credential-HELPER`` for ``host``; None if it has nothing stored."""
    prog = f"docker-credential-{helper}"
    try:
        p = subprocess.run([prog, "get"], input=host.encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise AuthError(f"credential helper {prog} (configured for {host}) is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {prog} did not answer for {host} within 60 s") from None
    if p.returncode != 0:
        out = (p.stdout + p.stderr).decode("utf-8", "replace").lower()
        if "not found" in out:
            return None
        raise AuthError(f"credential helper {prog} failed for {host} (exit {p.returncode})")
    try:
        doc = json.loads(p.stdout)
        user, secret = doc.get("Username") or "", doc.get("Secret") or ""
    except (ValueError, AttributeError):
        raise AuthError(f"credential helper {prog} gave an unreadable answer for {host}") from None
    if not isinstance(user, str) or not isinstance(secret, str):
        raise AuthError(f"credential helper {prog} gave an unreadable answer for {host}")
    if user == "<token>":
        return Credentials(identity_token=secret)
    return Credentials(user, secret)


def helper_store(helper: str, host: str, creds: Credentials) -> None:
    prog = f"docker-credential-{helper}"
    doc = {"ServerURL": host, "Username": creds.username, "Secret": creds.password}
    try:
        p = subprocess.run([prog, "store"], input=json.dumps(doc).encode(), capture_output=True, timeout=60)
    except FileNotFoundError:
        raise AuthError(f"credential helper {prog} (configured for {host}) is not on PATH") from None
    except subprocess.TimeoutExpired:
        raise AuthError(f"credential helper {prog} did not answer for {host} within 60 s") from None
    if p.returncode != 0:
        raise AuthError(f"credential helper {prog} could not store credentials for {host} (exit {p.returncode})")


def _from_file(doc: dict[str, Any], host: str, path: Path) -> Credentials | None:
    helpers = doc.get("credHelpers") or {}
    if isinstance(helpers, dict) and isinstance(helpers.get(host), str):
        return helper_get(helpers[host], host)
    auths = doc.get("auths") or {}
    if isinstance(auths, dict):
        for key, entry in auths.items():
            if _host_of(key) != host or not isinstance(entry, dict):
                continue
            if entry.get("identitytoken"):
                return Credentials(identity_token=str(entry["identitytoken"]))
            if entry.get("auth"):
                return Credentials(*_decode_auth(str(entry["auth"]), host, path))
            if entry.get("username") and entry.get("password"):
                return Credentials(str(entry["username"]), str(entry["password"]))
    store = doc.get("credsStore")
    if isinstance(store, str) and store:
        return helper_get(store, host)
    return None


def lookup(host: str, authfile: str | os.PathLike[str] | None = None) -> Credentials | None:
    """The stored credentials for registry ``host`` (``name[:port]``), or None (anonymous)."""
    host = "docker.io" if host in DOCKER_HUB_NAMES else host
    for path in auth_files(authfile):
        doc = _read_json(path)
        if doc is None:
            continue
        creds = _from_file(doc, host, path)
        if creds is not None:
            return creds
    return None


def login_file(authfile: str | os.PathLike[str] | None = None) -> Path:
    """Where ``login`` writes: ``--authfile``, else ``REGISTRY_AUTH_FILE``, else Docker's config.json."""
    if authfile:
        return Path(authfile)
    env = os.environ.get("REGISTRY_AUTH_FILE")
    return Path(env) if env else docker_config_path()


def store(host: str, creds: Credentials, authfile: str | os.PathLike[str] | None = None) -> Path:
    """Save ``creds`` for ``host`` the way ``docker login`` does (a helper if one is configured); returns the file."""
    path = login_file(authfile)
    doc = _read_json(path) or {}
    helpers = doc.get("credHelpers") or {}
    helper = helpers.get(host) if isinstance(helpers, dict) else None
    helper = helper or doc.get("credsStore")
    if isinstance(helper, str) and helper:
        helper_store(helper, host, creds)
        doc.setdefault("auths", {})
        if isinstance(doc["auths"], dict):
            doc["auths"].setdefault(host, {})
    else:
        auths = doc.setdefault("auths", {})
        if not isinstance(auths, dict):
            raise AuthError(f"credentials file {path}: 'auths' is not an object")
        for key in [k for k in auths if _host_of(k) == host]:
            del auths[key]
        token = base64.b64encode(f"{creds.username}:{creds.password}".encode()).decode()
        auths[host] = {"auth": token}
    _write_credentials(path, doc)
    return path


def remove(host: str, authfile: str | os.PathLike[str] | None = None) -> Path | None:
    """Forget ``host``'s credentials in the file ``login`` writes (and in its helper, if one is configured); returns
    the file changed, or None if it held nothing for ``host``."""
    path = login_file(authfile)
    doc = _read_json(path) or {}
    auths = doc.get("auths")
    keys = [k for k in auths if _host_of(k) == host] if isinstance(auths, dict) else []
    helpers = doc.get("credHelpers") or {}
    helper = (helpers.get(host) if isinstance(helpers, dict) else None) or doc.get("credsStore")
    if isinstance(helper, str) and helper and keys:
        try:
            subprocess.run([f"docker-credential-{helper}", "erase"], input=host.encode(), capture_output=True,
                           timeout=60, check=False)
        except OSError:
            pass
    if not keys:
        return None
    for k in keys:
        del auths[k]
    _write_credentials(path, doc)
    return path


def _write_credentials(path: Path, doc: dict[str, Any]) -> None:
    """The credentials file, replaced whole (readers never see half of it) and readable by its owner only (the temp
    file is created 0600 and keeps that mode)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        with atomic_write(path, "w") as f:
            json.dump(doc, f, indent="\t")
            f.write("\n")
    except OSError as exc:
        raise AuthError(f"cannot write credentials file {path}: {exc.strerror}") from None


# ---------------------------------------------------------------------------------------------------------------
# scope: where credentials may go

_DEFAULT_PORTS = {"http": 80, "https": 443}


@dataclass(frozen=True)
class Origin:
    """scheme, host and port of a URL: the unit credentials are bound to."""

    scheme: str
    host: str
    port: int

    @classmethod
    def of(cls, url: str) -> "Origin":
        u = urlsplit(url)
        scheme = u.scheme.lower()
        try:
            port = u.port
        except ValueError:
            port = None
        return cls(scheme, (u.hostname or "").lower(), port or _DEFAULT_PORTS.get(scheme, 0))

    def __str__(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"


@dataclass(frozen=True)
class ScopedCredentials:
    """Credentials bound to one registry origin; they say themselves where they may be sent."""

    origin: Origin
    credentials: Credentials

    def allows(self, url: str) -> bool:
        """Whether a request to ``url`` may carry these credentials (or a token obtained with them): same origin only."""
        return Origin.of(url) == self.origin

    def allows_realm(self, realm: str) -> bool:
        """Whether the token server ``realm`` the registry named may receive them: over HTTPS, or in the clear only
        on the registry's own host when the registry itself is plain HTTP; never a downgrade from HTTPS."""
        o = Origin.of(realm)
        if o.scheme == "https":
            return True
        return o.scheme == "http" and self.origin.scheme == "http" and o.host == self.origin.host


def lookup_scoped(origin: Origin, host: str, authfile: str | os.PathLike[str] | None = None) -> ScopedCredentials | None:
    """The stored credentials for registry ``host`` (as the credentials files name it), bound to ``origin``."""
    creds = lookup(host, authfile)
    return ScopedCredentials(origin, creds) if creds is not None else None
