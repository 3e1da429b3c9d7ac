"""One HTTP session per build: connection reuse, retries, a User-Agent, an offline switch, redacted URLs.

Everything that talks HTTP (repodata, package downloads) goes through the session made here, so retry policy and
offline mode are decided in one place. Error messages must never show credentials: use :func:`redact_url`.
"""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.util.retry import Retry

from . import __version__
from .credentials import redact_url
from .errors import FetchError

USER_AGENT = f"oci-conda/{__version__}"
#: (connect, read) seconds; a stalled server must not hang a build forever.
DEFAULT_TIMEOUT = (15.0, 60.0)
#: Enough pooled connections per host for the parallel package downloads (fetch uses up to ``jobs`` threads).
POOL_SIZE = 32
RETRY_STATUSES = (429, 500, 502, 503, 504)

class OfflineError(FetchError):
    """A request was attempted while the build runs offline."""


def describe_error(exc: BaseException) -> str:
    """A short, credential-free reason for a ``requests`` failure (its own text embeds the full URL)."""
    text = repr(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS/SSL error"
    if isinstance(exc, requests.exceptions.ProxyError):
        return "proxy error"
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    if isinstance(exc, (requests.exceptions.ChunkedEncodingError, requests.exceptions.ContentDecodingError)):
        return "connection broken during transfer"
    if isinstance(exc, requests.exceptions.ConnectionError):
        low = text.lower()
        if "name or service not known" in low or "nodename nor servname" in low or "name resolution" in low \
                or "getaddrinfo" in low or "no address associated" in low:
            return "host name could not be resolved"
        if "refused" in low:
            return "connection refused"
        if "reset" in low:
            return "connection reset"
        return "connection failed"
    if isinstance(exc, requests.exceptions.InvalidURL):
        return "invalid URL"
    return type(exc).__name__


class _OfflineAdapter(BaseAdapter):
    """Refuses every request: an offline build must say what it would have needed, not hang or half-work."""

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        raise OfflineError(f"the build is offline but needs {redact_url(request.url or '')}")

    def close(self) -> None:
        pass


class _Session(requests.Session):
    """A ``requests.Session`` with a default timeout (``requests`` has none)."""

    offline: bool = False

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
        return super().request(method, url, *args, **kwargs)


def make_session(offline: bool = False, *, retries: int = 4, backoff: float = 0.25) -> requests.Session:
    """The build's one session; ``offline`` makes every request raise :class:`OfflineError` (a ``FetchError``).

    Idempotent requests (GET/HEAD) are retried ``retries`` times with exponential backoff on connection errors,
    HTTP 429 and 5xx; ``Retry-After`` is honoured. The session has an ``offline`` attribute for callers that want
    to pick a cache-only path up front.
    """
    s = _Session()
    s.headers["User-Agent"] = USER_AGENT
    s.offline = offline
    if offline:
        adapter: BaseAdapter = _OfflineAdapter()
    else:
        retry = Retry(
            total=retries,
            connect=retries,
            read=retries,
            status=retries,
            other=0,
            backoff_factor=backoff,
            backoff_max=30,
            status_forcelist=RETRY_STATUSES,
            allowed_methods=frozenset({"GET", "HEAD"}),
            raise_on_status=False,
            respect_retry_after_header=True,
        )
        adapter = HTTPAdapter(pool_connections=8, pool_maxsize=POOL_SIZE, max_retries=retry)
    s.mount("http://", adapter)
    s.mount("https://", adapter)
    return s


def is_offline(session: requests.Session) -> bool:
    """True for a session from ``make_session(offline=True)``."""
    return bool(getattr(session, "offline", False))
