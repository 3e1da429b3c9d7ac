"""Index credentials, scoped to the host that they came with.

A ``pip:`` section may name ``https://user:token@host/simple`` (or get it from ``PIP_INDEX_URL``); the wheels it
lists are fetched later from credential-free URLs. We remember ``user:token`` per (scheme, host, port) and hand it
only to requests for that exact origin, so a wheel hosted elsewhere never sees it. Secrets are never part of a
message: :meth:`HostCredentials.scrub` removes them from any text (pip's output included).
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import unquote, urlsplit

from ..credentials import has_credentials

Origin = tuple[str, str, int | None]


def origin(url: str) -> Origin:
    """``(scheme, host, port)`` of ``url``, lower-cased; the scope of a credential."""
    parts = urlsplit(url)
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port


class HostCredentials:
    """``user:password`` per origin, collected from URLs that carried them."""

    def __init__(self, urls: Iterable[str] = ()) -> None:
        self._auth: dict[Origin, tuple[str, str]] = {}
        self._secrets: set[str] = set()
        for url in urls:
            self.add(url)

    def add(self, url: str) -> None:
        """Remember the credentials inside ``url`` (if any) for its origin."""
        if not has_credentials(url):
            return
        parts = urlsplit(url)
        if parts.username is None:
            return
        user, password = unquote(parts.username), unquote(parts.password or "")
        self._auth.setdefault(origin(url), (user, password))
        userinfo = parts.netloc.rsplit("@", 1)[0]
        # The password is the secret; with none, the user name is a token (``https://TOKEN@host``).
        secret = (parts.password, password) if parts.password else (parts.username, user)
        self._secrets.update(s for s in (userinfo, *secret) if s)

    def for_url(self, url: str) -> tuple[str, str] | None:
        """The credentials for exactly this URL's origin, or ``None``."""
        return self._auth.get(origin(url))

    def scrub(self, text: str) -> str:
        """``text`` with every known secret replaced by ``***`` (longest first, so parts cannot survive)."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    def __bool__(self) -> bool:
        return bool(self._auth)
