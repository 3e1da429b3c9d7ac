"""HTTP to one registry: transport, auth challenges, retries, size caps, and the one typed registry error.

Transport: HTTPS, verified (``ca_file`` for a private CA); plain HTTP for ``insecure`` and loopback hosts (unless a
CA file is given); proxies from the environment. Auth: ``WWW-Authenticate`` Bearer (a token per scope set, cached
until it expires; anonymous, with credentials, or with an identity token) or Basic, with credentials that
:mod:`~oci_conda.oci.registry.auth` binds to this registry's origin. 429, 5xx and connection failures are retried
with backoff. Every failure is a :class:`RegistryError`: one line naming registry, repository and blob, the
registry's diagnostic codes kept, and ``temporary()`` saying whether trying again may help (as
go-containerregistry's transport error does). Secrets never appear in one.

Nothing here reads the environment: every knob is a field of :class:`RegistryOptions`, passed in.
"""

from __future__ import annotations

import base64
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin

from oci_conda.credentials import redact_url
from oci_conda.errors import OciCondaError
from oci_conda.http import (
    DEFAULT_TIMEOUT,
    MAX_RETRY_AFTER,
    USER_AGENT,
    BodyTooLarge,
    describe_error,
    header_value,
    preload,
)
from oci_conda.oci.registry import auth
from oci_conda.oci.registry.reference import DOCKER_HUB_API, DOCKER_HUB_NAMES

if TYPE_CHECKING:
    import requests

RETRY_STATUSES = (429, 500, 502, 503, 504)
TEMPORARY_STATUSES = frozenset({408, *RETRY_STATUSES})
# distribution-spec error codes worth another try (the rest say the request itself is wrong)
TEMPORARY_CODES = frozenset({"BLOB_UPLOAD_INVALID", "TOOMANYREQUESTS", "UNKNOWN", "UNAVAILABLE"})
MAX_MANIFEST = 4 << 20
#: a body read whole (tags, tokens, errors, small blobs) is refused past this; manifests have their own cap
MAX_BODY = 16 << 20
#: an error answer is read only this far, for its diagnostic codes
MAX_ERROR_BODY = 1 << 20
MAX_REDIRECTS = 5
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


@dataclass(frozen=True)
class RegistryOptions:
    """How to talk to registries; built by the caller (the CLI builds it from flags and the environment)."""

    insecure: bool = False  # plain HTTP (loopback hosts are too, unless ca_file is given)
    ca_file: str | None = None  # a private CA bundle for HTTPS (also makes a loopback registry HTTPS)
    authfile: str | None = None  # credentials file instead of the usual search
    jobs: int = 4  # parallel blob transfers
    retries: int = 5
    backoff: float = 0.5  # seconds before the first retry; doubles each time (a Retry-After wins)
    monolithic_max: int = 16 << 20  # blobs up to this size go up in one PUT, bigger ones in PATCH chunks
    chunk_size: int = 8 << 20
    login_hint: str = "log in to {host}"  # what a refused request suggests; {host} is the registry
    client_id: str = "oci-conda"  # OAuth2 client id for identity-token grants


@dataclass(frozen=True)
class Diagnostic:
    """One entry of a registry's ``{"errors": [...]}`` answer."""

    code: str
    message: str = ""

    def __str__(self) -> str:
        return f"{self.code}: {self.message}".strip(": ")


class RegistryError(OciCondaError):
    """A registry refused, failed or could not be reached; the message names registry, repository and blob."""

    def __init__(self, message: str, *, status: int | None = None, diagnostics: tuple[Diagnostic, ...] = (),
                 temporary: bool | None = None):
        super().__init__(message)
        self.status = status
        self.diagnostics = diagnostics
        self._temporary = temporary

    @property
    def codes(self) -> frozenset[str]:
        return frozenset(d.code for d in self.diagnostics)

    def temporary(self) -> bool:
        """Whether the same request may succeed later (throttling, a 5xx, a dropped connection)."""
        if self._temporary is not None:
            return self._temporary
        if self.diagnostics and all(d.code in TEMPORARY_CODES for d in self.diagnostics):
            return True
        return self.status in TEMPORARY_STATUSES


def diagnostics(resp: requests.Response) -> tuple[Diagnostic, ...]:
    """The ``errors`` a registry put in its answer (none if the body is not the spec's JSON)."""
    try:
        errors = resp.json().get("errors") or []
        return tuple(Diagnostic(str(e.get("code", "")), str(e.get("message", ""))) for e in errors
                     if isinstance(e, dict))
    except (ValueError, AttributeError):
        return ()


def _is_loopback(host: str) -> bool:
    h = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return h in ("localhost", "127.0.0.1", "[::1]")


def parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    """``Scheme k="v", k2=v2`` -> (scheme, params), in one pass over the header (every character is read once)."""
    scheme, _, rest = header.strip().partition(" ")
    params: dict[str, str] = {}
    i, n = 0, len(rest)
    while i < n:
        while i < n and rest[i] in " \t,":
            i += 1
        start = i
        while i < n and (rest[i].isalnum() or rest[i] in "_-"):
            i += 1
        key = rest[start:i].lower()
        while i < n and rest[i] in " \t":
            i += 1
        if i >= n or rest[i] != "=" or not key:
            while i < n and rest[i] != ",":  # not a parameter: skip to the next one
                i += 1
            continue
        i += 1
        while i < n and rest[i] in " \t":
            i += 1
        if i < n and rest[i] == '"':
            end = rest.find('"', i + 1)
            end = n if end < 0 else end
            params[key] = rest[i + 1:end]
            i = end + 1
        else:
            start = i
            while i < n and rest[i] != ",":
                i += 1
            params[key] = rest[start:i].strip()
    return scheme.lower(), params


def token_ok(token: str) -> bool:
    """A bearer token goes into a header: visible ASCII only (no CR/LF, no spaces)."""
    return bool(token) and all("!" <= c <= "~" for c in token)


def location(resp: requests.Response, what: str) -> str:
    """The absolute URL a registry's ``Location`` header names."""
    loc = resp.headers.get("Location")
    if not loc:
        raise RegistryError(f"{what}: the registry gave no upload location (HTTP {resp.status_code})",
                            status=resp.status_code)
    return urljoin(resp.url, loc)


class RegistryClient:
    """HTTP to one registry: auth, retries, and errors. One per registry and operation; safe across threads."""

    def __init__(self, host: str, options: RegistryOptions | None = None):
        import requests
        from requests.adapters import HTTPAdapter

        self.host = host
        self.options = options or RegistryOptions()
        # loopback and --insecure registries speak plain HTTP, unless a private CA is named (then it is TLS)
        plain = (self.options.insecure or _is_loopback(host)) and not self.options.ca_file
        api_host = DOCKER_HUB_API if host in DOCKER_HUB_NAMES else host  # Docker Hub's API has its own name
        self.base = f"{'http' if plain else 'https'}://{api_host}"
        self.origin = auth.Origin.of(self.base)
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        if self.options.ca_file:
            if not Path(self.options.ca_file).is_file():
                raise RegistryError(f"registry {host}: CA file {self.options.ca_file} does not exist")
            self.session.verify = self.options.ca_file
        # passed with every request: requests lets REQUESTS_CA_BUNDLE override a session's own verify setting
        # (None keeps the default: the environment's bundle, else certifi's)
        self._verify: str | None = self.options.ca_file or None
        self.retries = self.options.retries
        self.backoff = self.options.backoff
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._creds: auth.ScopedCredentials | None = None
        self._creds_loaded = False
        self._scheme: str | None = None  # "bearer" | "basic" once the registry challenged us
        self._challenge: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    @property
    def login_hint(self) -> str:
        return self.options.login_hint.format(host=self.host)

    # -- auth ---------------------------------------------------------------------------------------------------

    def credentials(self) -> auth.ScopedCredentials | None:
        with self._lock:
            if not self._creds_loaded:
                self._creds = auth.lookup_scoped(self.origin, self.host, self.options.authfile)
                self._creds_loaded = True
            return self._creds

    def set_credentials(self, creds: auth.Credentials | None) -> None:
        with self._lock:
            self._creds = auth.ScopedCredentials(self.origin, creds) if creds is not None else None
            self._creds_loaded = True
            self._tokens.clear()

    def _basic(self) -> str | None:
        sc = self.credentials()
        if sc is None or not sc.credentials.username:
            return None
        c = sc.credentials
        return "Basic " + base64.b64encode(f"{c.username}:{c.password}".encode()).decode()

    def _auth_header(self, scopes: tuple[str, ...]) -> str | None:
        if self._scheme == "basic":
            return self._basic()
        if self._scheme == "bearer":
            with self._token_lock:  # one token request per scope set, however many threads ask at once
                with self._lock:
                    tok = self._tokens.get(scopes)
                if tok is None or tok[1] < time.monotonic():
                    return self._fetch_token(scopes)
                return f"Bearer {tok[0]}"
        return None

    def _fetch_token(self, scopes: tuple[str, ...]) -> str:
        import requests

        realm, service = self._challenge.get("realm", ""), self._challenge.get("service")
        what = f"registry {self.host}: token server {redact_url(realm)}"
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"registry {self.host}: bearer challenge without a usable realm")
        sc = self.credentials()
        if sc is not None and not sc.allows_realm(realm):
            raise RegistryError(f"{what}: refusing to send the credentials for {self.origin} to a token server "
                                "over plain HTTP")
        creds = sc.credentials if sc is not None else None
        try:
            if creds is not None and creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token,
                        "client_id": self.options.client_id}
                if service:
                    form["service"] = service
                if scopes:
                    form["scope"] = " ".join(scopes)
                resp = self.session.post(realm, data=form, timeout=DEFAULT_TIMEOUT, verify=self._verify,
                                         allow_redirects=False, stream=True)
            else:
                params = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
                basic = (creds.username, creds.password) if creds is not None and creds.username else None
                resp = self.session.get(realm, params=params, auth=basic, timeout=DEFAULT_TIMEOUT,
                                        verify=self._verify, allow_redirects=False, stream=True)
            preload(resp, MAX_ERROR_BODY, what)
        except BodyTooLarge as exc:
            raise RegistryError(str(exc)) from None
        except requests.RequestException as exc:
            raise RegistryError(f"{what}: {describe_error(exc)}", temporary=True) from None
        if resp.status_code in (401, 403):
            who = "the stored credentials" if creds is not None else "anonymous access"
            raise RegistryError(f"{what} refused {who} (HTTP {resp.status_code}) for {' '.join(scopes) or 'login'}; "
                                f"check them ({self.login_hint})", status=resp.status_code)
        if resp.status_code in REDIRECT_STATUSES:
            raise RegistryError(f"{what}: answered with a redirect (HTTP {resp.status_code}), not followed "
                                "with credentials", status=resp.status_code)
        if resp.status_code != 200:
            raise RegistryError(f"{what}: HTTP {resp.status_code}", status=resp.status_code)
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
            expires = int(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError(f"{what}: unreadable token response") from None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{what}: no token in the response")
        if not token_ok(token):
            raise RegistryError(f"{what}: the token contains characters a header cannot carry (CR/LF, spaces)")
        with self._lock:
            self._tokens[scopes] = (token, time.monotonic() + max(10, expires - 10))
        return f"Bearer {token}"

    def _on_401(self, resp: requests.Response, scopes: tuple[str, ...], what: str, sent: str | None) -> None:
        try:
            header = header_value(resp, "WWW-Authenticate", what)
        except BodyTooLarge as exc:
            raise RegistryError(str(exc), status=401) from None
        scheme, params = parse_challenge(header)
        if scheme == "bearer":
            self._challenge = params
            self._scheme = "bearer"
            with self._lock:  # drop the token that was refused (not one another thread has fetched since)
                tok = self._tokens.get(scopes)
                if tok is not None and sent == f"Bearer {tok[0]}":
                    del self._tokens[scopes]
        elif scheme == "basic":
            if self.credentials() is None:
                raise RegistryError(f"{what}: the registry requires a login ({self.login_hint})", status=401)
            self._scheme = "basic"
        else:
            raise RegistryError(f"{what}: unsupported authentication scheme {scheme or '(none)'!r}", status=401)

    # -- HTTP ---------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{path}"

    def sleep(self, attempt: int, resp: requests.Response | None = None) -> None:
        """Back off before retry ``attempt`` (0-based); a ``Retry-After`` in ``resp`` wins (capped at 30 s)."""
        delay = self.backoff * (2 ** attempt)
        after = resp.headers.get("Retry-After", "")[:12] if resp is not None else ""
        if after.isdigit():
            delay = float(after)
        time.sleep(min(delay, MAX_RETRY_AFTER))

    def request(self, method: str, url: str, scopes: tuple[str, ...], what: str, *,
                headers: dict[str, str] | None = None, body: Callable[[], Any] | None = None,
                stream: bool = False, retry: bool = True, allow_redirects: bool = True,
                max_bytes: int = MAX_BODY) -> requests.Response:
        """One call with auth (a 401 is answered once) and, if ``retry``, backoff on 429/5xx/connection failures.

        Credentials and tokens go only to this registry's own origin: an upload ``Location`` or a redirect elsewhere
        gets none. Redirects are followed here, not by ``requests``: at most :data:`MAX_REDIRECTS`, never from
        HTTPS to HTTP. Unless ``stream``, the body is read now, at most ``max_bytes``; an error answer is read at most
        :data:`MAX_ERROR_BODY` even when streaming.
        """
        import requests

        authed = False
        attempt = 0
        hops = 0
        while True:
            ours = auth.Origin.of(url) == self.origin
            hdrs = dict(headers or {})
            sent = self._auth_header(scopes) if ours else None
            if sent:
                hdrs["Authorization"] = sent
            try:
                resp = self.session.request(method, url, headers=hdrs, data=body() if body else None, stream=True,
                                            allow_redirects=False, timeout=DEFAULT_TIMEOUT, verify=self._verify)
            except requests.exceptions.SSLError:
                raise RegistryError(f"{what}: TLS certificate verification failed for {self.host} "
                                    "(a private CA needs its CA file)", temporary=False) from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if retry and attempt < self.retries:
                    self.sleep(attempt)
                    attempt += 1
                    continue
                raise RegistryError(f"{what}: {describe_error(exc)} ({self.base})", temporary=True) from None
            except ValueError as exc:  # requests refuses a header value (CR/LF) or URL before sending anything
                raise RegistryError(f"{what}: refused to send a malformed request ({type(exc).__name__})") from None
            if resp.status_code in REDIRECT_STATUSES and allow_redirects:
                resp.close()
                url, method, body = self._redirect(resp, url, method, body, what, hops)
                hops += 1
                continue
            if resp.status_code == 401 and not authed and ours:
                authed = True
                resp.close()
                self._on_401(resp, scopes, what, sent)
                continue
            if resp.status_code in RETRY_STATUSES and retry and attempt < self.retries:
                resp.close()
                self.sleep(attempt, resp)
                attempt += 1
                continue
            self._read_body(resp, stream, max_bytes, what)
            return resp

    def _redirect(self, resp: requests.Response, url: str, method: str, body: Callable[[], Any] | None, what: str,
                  hops: int) -> tuple[str, str, Callable[[], Any] | None]:
        """Where a redirect leads (and with which method and body); a loop, a downgrade or no target is refused."""
        if hops >= MAX_REDIRECTS:
            raise RegistryError(f"{what}: more than {MAX_REDIRECTS} redirects (a redirect loop?)",
                                status=resp.status_code, temporary=False)
        target = resp.headers.get("Location", "")
        if not target or len(target) > 8192:
            raise RegistryError(f"{what}: a redirect (HTTP {resp.status_code}) without a usable Location",
                                status=resp.status_code)
        nxt = urljoin(url, target)
        scheme = auth.Origin.of(nxt).scheme
        if scheme not in ("http", "https"):
            raise RegistryError(f"{what}: refusing a redirect to a {scheme or 'relative'} URL", status=resp.status_code)
        if auth.Origin.of(url).scheme == "https" and scheme == "http":
            raise RegistryError(f"{what}: refusing a redirect from HTTPS to plain HTTP ({redact_url(nxt)})",
                                status=resp.status_code, temporary=False)
        if resp.status_code == 303 and method != "HEAD":
            return nxt, "GET", None
        return nxt, method, body

    def _read_body(self, resp: requests.Response, stream: bool, max_bytes: int, what: str) -> None:
        """Read the body now, capped, unless the caller streams a successful answer."""
        import requests

        if stream and resp.status_code < 400:
            return
        try:
            preload(resp, max_bytes if resp.status_code < 400 else MAX_ERROR_BODY, what)
        except BodyTooLarge as exc:
            if resp.status_code < 400:
                raise RegistryError(str(exc)) from None
            resp._content, resp._content_consumed = b"", True  # an oversized error answer: keep its status only
        except requests.RequestException as exc:
            raise RegistryError(f"{what}: {describe_error(exc)} ({self.base})", temporary=True) from None

    def fail(self, resp: requests.Response, what: str) -> RegistryError:
        """The error for an unexpected answer: status, the registry's diagnostic codes, and a hint for 401."""
        diags = diagnostics(resp)
        detail = f" ({'; '.join(str(d) for d in diags)})" if diags else ""
        st = resp.status_code
        if st == 401:
            how = "the credentials were rejected" if self.credentials() is not None else "a login is required"
            msg = f"{what}: HTTP 401 unauthorized, {how} ({self.login_hint}){detail}"
        elif st == 403:
            msg = f"{what}: HTTP 403 denied{detail}"
        elif st == 404:
            msg = f"{what}: not found (HTTP 404){detail}"
        else:
            msg = f"{what}: HTTP {st}{detail}"
        return RegistryError(msg, status=st, diagnostics=diags)

    def ping(self) -> None:
        """GET /v2/, authenticating as a login does; a RegistryError if the credentials are refused."""
        what = f"registry {self.host}"
        resp = self.request("GET", f"{self.base}/v2/", (), what)
        if resp.status_code != 200:
            raise self.fail(resp, what)
