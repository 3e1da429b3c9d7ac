"""URL credentials, in one place: ``user:pass@`` in the authority and anaconda-style ``/t/<token>`` path segments.

Every module that prints, records or compares a URL goes through here, so a secret cannot slip past one of several
hand-written strippers. Registry credentials (scoped to one host) live in ``oci/registry/auth.py``; this module only
knows how secrets sit *inside* URLs.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

#: An anaconda.org-style token segment: ``/t/<token>`` followed by ``/`` or the end of the path.
TOKEN_RE = re.compile(r"/t/[^/]+(?=/|$)")


def redact_url(url: str) -> str:
    """``url`` with ``user:pass@``, ``/t/<token>`` and any query hidden, for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return TOKEN_RE.sub("/t/***", url)
    netloc = parts.netloc
    if "@" in netloc:
        netloc = "***@" + netloc.rsplit("@", 1)[1]
    path = TOKEN_RE.sub("/t/***", parts.path)
    return urlunsplit((parts.scheme, netloc, path, parts.query and "***", parts.fragment))


def split_credentials(url: str) -> tuple[str, str]:
    """``(canonical, auth)``: the URL without ``user:pass@`` and ``/t/<token>`` (scheme and host lower-cased, no
    trailing ``/``), and the URL as given with only its scheme and host lower-cased."""
    url = url.rstrip("/")
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[1] if "@" in parts.netloc else parts.netloc
    path = TOKEN_RE.sub("", parts.path)
    canonical = urlunsplit((parts.scheme.lower(), netloc.lower(), path, parts.query, parts.fragment)).rstrip("/")
    auth = urlunsplit((parts.scheme.lower(), _lower_host(parts.netloc), parts.path, parts.query, parts.fragment))
    return canonical, auth.rstrip("/")


def strip_credentials(url: str) -> str:
    """The credential-free form of ``url`` for records, locks and SBOMs (``file:`` and paths carry none)."""
    if url.startswith(("http://", "https://")):
        return split_credentials(url)[0]
    return url


def has_credentials(url: str) -> bool:
    """Whether ``url`` carries a secret that must never be printed or written."""
    try:
        netloc = urlsplit(url).netloc
    except ValueError:
        return True
    return "@" in netloc or TOKEN_RE.search(url) is not None


def _lower_host(netloc: str) -> str:
    if "@" in netloc:
        cred, host = netloc.rsplit("@", 1)
        return f"{cred}@{host.lower()}"
    return netloc.lower()
