"""Log in: check credentials against a registry, then store them the way ``docker login`` does."""

from __future__ import annotations

from pathlib import Path

from oci_conda.oci.registry import auth
from oci_conda.oci.registry.client import RegistryClient, RegistryError, RegistryOptions


def login(host: str, username: str, password: str, options: RegistryOptions | None = None) -> Path:
    """Check the credentials against ``host`` and store them (``docker login`` format); returns the file written."""
    if "/" in host or not host:
        raise RegistryError(f"login: {host!r} is not a registry host (HOST[:PORT])")
    opts = options or RegistryOptions()
    creds = auth.Credentials(username, password)
    client = RegistryClient(host, opts)
    client.set_credentials(creds)
    client.ping()
    return auth.store(host, creds, opts.authfile)


def logout(host: str, options: RegistryOptions | None = None) -> Path | None:
    """Forget the stored credentials for ``host``; returns the file changed (None: there were none)."""
    if "/" in host or not host:
        raise RegistryError(f"logout: {host!r} is not a registry host (HOST[:PORT])")
    return auth.remove(host, (options or RegistryOptions()).authfile)
