"""One HTTP session per build: connection reuse, retries, a User-Agent, an offline switch, redacted URLs.

Everything that talks HTTP (repodata, package downloads) goes through the session made here, so retry policy and
offline mode are decided in one place. Error messages must never show credentials: use :func:`redact_url`.

``requests`` (with urllib3, ~0.1 s to import) is loaded when a session is first used, not when one is made: a build
from local channels whose layers are all memoised never talks HTTP and never pays for it.
"""

from __future__ import annotations

import functools
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, cast

from . import __version__
from .credentials import redact_url
from .errors import FetchError

USER_AGENT = f"oci-conda/{__version__}"
#: (connect, read) seconds; a stalled server must not hang a build forever.
DEFAULT_TIMEOUT = (15.0, 60.0)
#: Enough pooled connections per host for the parallel package downloads (fetch uses up to ``jobs`` threads).
POOL_SIZE = 32
RETRY_STATUSES = (429, 500, 502, 503, 504)
#: The longest wait a server's ``Retry-After`` can impose before one retry (a hostile 100000 is not obeyed).
MAX_RETRY_AFTER = 30.0
#: Default cap on a body read whole (repodata, shards, tokens, manifests); a caller may pass ``max_bytes``.
MAX_BODY = 1 << 30  # as large as the largest repodata.json we accept (conda/repodata.MAX_REPODATA)
#: Wall-clock cap on reading one body: a server trickling bytes must not hold a build for hours.
BODY_DEADLINE = 900.0
#: The longest response header value we parse (a 60 KB ``WWW-Authenticate`` is refused, not parsed).
MAX_HEADER = 8 << 10

if TYPE_CHECKING:
    import requests

class OfflineError(FetchError):
    """A request was attempted while the build runs offline."""


def request_errors() -> tuple[type[Exception], ...]:
    """What an ``except`` meant for failed requests catches, without importing ``requests``: its base exception
    once it is loaded, else nothing (no request can have failed yet). For code that may never talk HTTP."""
    loaded = sys.modules.get("requests")
    return (loaded.RequestException,) if loaded is not None else ()


def describe_error(exc: BaseException) -> str:
    """A short, credential-free reason for a ``requests`` failure (its own text embeds the full URL)."""
    import requests

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


class BodyTooLarge(FetchError):
    """A server sent more than the cap for what was asked, or took longer than the deadline to send it."""


def read_capped(resp: requests.Response, cap: int, what: str, *, deadline: float = BODY_DEADLINE) -> bytes:
    """The body of a streamed response, read at most ``cap`` bytes and ``deadline`` seconds: the ONE bounded read.

    The cap is enforced while streaming (a ``Content-Length`` over it is refused before reading anything), so an
    endless or huge body costs at most ``cap`` bytes of memory. ``requests`` exceptions pass through."""
    declared = resp.headers.get("Content-Length", "")
    if declared.isdigit() and int(declared) > cap:
        resp.close()
        raise BodyTooLarge(f"{redact_url(what)}: the server announced {int(declared)} bytes, over the "
                           f"{cap}-byte limit")
    end = time.monotonic() + deadline
    parts: list[bytes] = []
    got = 0
    try:
        for chunk in resp.iter_content(1 << 16):
            got += len(chunk)
            if got > cap:
                raise BodyTooLarge(f"{redact_url(what)}: more than the {cap}-byte limit, refused")
            if time.monotonic() > end:
                raise BodyTooLarge(f"{redact_url(what)}: not received within {deadline:.0f} s")
            parts.append(chunk)
    except BodyTooLarge:
        resp.close()
        raise
    return b"".join(parts)


def header_value(resp: requests.Response, name: str, what: str, *, cap: int = MAX_HEADER) -> str:
    """A response header, refused (one line) when longer than ``cap``: what we parse stays small."""
    value = resp.headers.get(name, "")
    if len(value) > cap:
        raise BodyTooLarge(f"{redact_url(what)}: a {len(value)}-byte {name} header, over the {cap}-byte limit")
    return value


@functools.cache
def _session_classes() -> tuple[type, type, type]:
    """(retry policy, offline adapter, session class): subclasses of ``requests``/urllib3 types, made on first use."""
    import requests
    from requests.adapters import BaseAdapter
    from urllib3.util.retry import Retry

    class CappedRetry(Retry):
        """urllib3's retry policy with ``Retry-After`` obeyed only up to :data:`MAX_RETRY_AFTER` seconds."""

        def get_retry_after(self, response: Any) -> float | None:
            after = super().get_retry_after(response)
            return None if after is None else min(after, MAX_RETRY_AFTER)

    class OfflineAdapter(BaseAdapter):
        """Refuses every request: an offline build must say what it would have needed, not hang or half-work."""

        def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
            raise OfflineError(f"the build is offline but needs {redact_url(request.url or '')}")

        def close(self) -> None:
            pass

    class Session(requests.Session):
        """A ``requests.Session`` with a default timeout (``requests`` has none) and a cap on every body read whole.

        A request without ``stream=True`` is streamed anyway and its body read through :func:`read_capped`
        (``max_bytes``, default :data:`MAX_BODY`), so ``.content`` can never hold more than the cap."""

        offline: bool = False

        def request(self, method: str, url: str, *args: Any,  # type: ignore[override]
                    **kwargs: Any) -> requests.Response:
            kwargs.setdefault("timeout", DEFAULT_TIMEOUT)
            cap = kwargs.pop("max_bytes", MAX_BODY)
            if kwargs.get("stream"):
                return super().request(method, url, *args, **kwargs)
            kwargs["stream"] = True
            resp = super().request(method, url, *args, **kwargs)
            preload(resp, cap, url)
            return resp

    return CappedRetry, OfflineAdapter, Session


def __getattr__(name: str) -> type:
    """``CappedRetry``, the retry policy sessions use (a urllib3 subclass, so made on first use)."""
    if name == "CappedRetry":
        return _session_classes()[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def preload(resp: requests.Response, cap: int, what: str) -> None:
    """Read a streamed response's body now, capped, so that ``.content``/``.json()`` work without a further read."""
    if method_has_no_body(resp):
        body = b""
    else:
        body = read_capped(resp, cap, what)
    resp._content = body  # requests' own slot for a body already read
    resp._content_consumed = True
    resp.close()


def method_has_no_body(resp: requests.Response) -> bool:
    return resp.request is not None and resp.request.method == "HEAD"


def make_session(offline: bool = False, *, retries: int = 4, backoff: float = 0.25) -> requests.Session:
    """The build's one session; ``offline`` makes every request raise :class:`OfflineError` (a ``FetchError``).

    Idempotent requests (GET/HEAD) are retried ``retries`` times with exponential backoff on connection errors,
    HTTP 429 and 5xx; ``Retry-After`` is honoured up to :data:`MAX_RETRY_AFTER`. The session has an ``offline`` attribute for callers that want
    to pick a cache-only path up front. The ``requests`` session behind it is made on first use (see the module
    docstring): every attribute but ``offline`` is that session's.
    """
    return cast("requests.Session", LazySession(offline, retries, backoff))


class LazySession:
    """Stands for the session :func:`make_session` promises, and makes it (importing ``requests``) on first use."""

    def __init__(self, offline: bool, retries: int, backoff: float) -> None:
        self.offline = offline
        self._settings = (retries, backoff)
        self._made: requests.Session | None = None
        self._lock = threading.Lock()  # the gateway's threads may all reach for it at once

    def real(self) -> requests.Session:
        """The ``requests`` session, made now if not yet."""
        with self._lock:
            if self._made is None:
                self._made = _real_session(self.offline, *self._settings)
            return self._made

    def __getattr__(self, name: str) -> Any:
        if name in ("_made", "_lock", "_settings", "offline"):  # not set yet (a copy): never recurse
            raise AttributeError(name)
        return getattr(self.real(), name)

    def __enter__(self) -> requests.Session:
        return self.real().__enter__()

    def __exit__(self, *exc: object) -> None:
        self.real().__exit__(*exc)


def _real_session(offline: bool, retries: int, backoff: float) -> requests.Session:
    from requests.adapters import BaseAdapter, HTTPAdapter

    capped_retry, offline_adapter, session_class = _session_classes()
    s = session_class()
    s.headers["User-Agent"] = USER_AGENT
    s.offline = offline
    if offline:
        adapter: BaseAdapter = offline_adapter()
    else:
        retry = capped_retry(
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
