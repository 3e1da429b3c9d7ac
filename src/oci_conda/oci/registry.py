"""A daemonless OCI distribution-spec client: pull base images, push images (and indexes) to any registry.

Pull: ``HOST/REPO:TAG`` / ``HOST/REPO@sha256:...`` (or with ``docker://``) is a ``registry`` transport for
``layout.open_image``: the top manifest is fetched with every OCI and Docker schema-2 media type accepted,
``layout.resolve_image`` picks the platform's manifest and checks every digest, and the layers are downloaded in
parallel into the shared blob cache (verified) before the build reads them.

Push: blobs are uploaded in parallel (bounded); each is HEADed first and skipped if present, mounted from the base's
repository when the base came from the same registry, sent in one PUT when small and in PATCH chunks when large;
an interrupted chunked upload resumes where the registry says it stopped, or that blob alone starts again. Manifests
go up children first, by digest, and the top one by tag. 429, 5xx and connection failures are retried with backoff.

Transport: HTTPS, verified (``--ca-file`` for a private CA); plain HTTP for ``--insecure`` and loopback hosts
(unless ``--ca-file`` is given); proxies from the environment.

Auth: ``WWW-Authenticate`` Bearer (token per scope set, cached until it expires; anonymous or with credentials, or
an identity token) or Basic, with credentials from ``oci.auth``.
Errors are ``RegistryError`` with one line naming the registry, repository and blob; secrets never appear.
"""

from __future__ import annotations

import base64
import json
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Callable, Iterable
from urllib.parse import urljoin

import requests
from requests.adapters import HTTPAdapter

from oci_conda.errors import ImageError, OciCondaError
from oci_conda.http import DEFAULT_TIMEOUT, USER_AGENT, describe_error
from ..credentials import redact_url
from oci_conda.oci import auth as _auth
from oci_conda.oci.auth import DOCKER_HUB_NAMES
from oci_conda.oci.blobs import CHUNK, BlobStore, Opener, VerifyingReader, digest_bytes, verify_bytes
from oci_conda.oci.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    Image,
    Platform,
    config_bytes,
    index_bytes,
    manifest_bytes,
    manifest_descriptor,
    set_annotations,
)
from oci_conda.oci.layout import (
    ArchiveSource,
    BlobSource,
    ImageRef,
    LayoutDirSource,
    _select_ref,
    register_transport,
    resolve_image,
)


class RegistryError(OciCondaError):
    """A registry refused, failed or could not be reached; the message names registry, repository and blob."""


ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ANNOTATION_BASE_DIGEST = "org.opencontainers.image.base.digest"
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)
RETRY_STATUSES = (429, 500, 502, 503, 504)
MAX_MANIFEST = 4 << 20


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, default))
    except ValueError:
        return default


def _env_float(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


# ---------------------------------------------------------------------------------------------------------------
# references

_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
DOCKER_HUB_API = "registry-1.docker.io"
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


@dataclass(frozen=True)
class RegistryRef:
    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What goes after ``/manifests/``: the digest if pinned, else the tag (``latest`` if none)."""
        return self.digest or self.tag or "latest"

    @property
    def name(self) -> str:
        return f"{self.host}/{self.repository}"

    def __str__(self) -> str:
        return self.name + (f":{self.tag}" if self.tag else "") + (f"@{self.digest}" if self.digest else "")


def parse_reference(ref: str) -> RegistryRef:
    """``[docker://][HOST[:PORT]/]REPO[:TAG][@sha256:...]``, with Docker's rules for names without a registry:
    ``debian:12`` is ``docker.io/library/debian:12`` and ``user/app`` is ``docker.io/user/app``."""
    s = ref.strip()
    if s.startswith("docker://"):
        s = s[len("docker://"):]
    name, _, digest = s.partition("@")
    host, slash, rest = name.partition("/")
    if not slash or not ("." in host or ":" in host or host == "localhost"):
        host, rest = "docker.io", name
    if host in DOCKER_HUB_NAMES:
        host = "docker.io"
        if rest and "/" not in rest:
            rest = "library/" + rest
    if not rest:
        raise RegistryError(f"image reference {ref!r}: name the repository, as [HOST[:PORT]/]REPOSITORY[:TAG]")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, _, tag = rest.rpartition(":")
        if not _TAG_RE.match(tag):
            raise RegistryError(f"image reference {ref!r}: invalid tag {tag!r}")
    if not _REPO_RE.match(rest):
        raise RegistryError(f"image reference {ref!r}: invalid repository name {rest!r} (lowercase letters, digits, "
                            "separators . _ - and /)")
    if digest and not _DIGEST_RE.match(digest):
        raise RegistryError(f"image reference {ref!r}: invalid digest {digest!r}")
    return RegistryRef(host, rest, tag, digest or None)


# ---------------------------------------------------------------------------------------------------------------
# options and clients


@dataclass(frozen=True)
class Options:
    insecure: bool = False  # plain HTTP (loopback hosts are too, unless ca_file is given)
    ca_file: str | None = None  # a private CA bundle for HTTPS (also makes a loopback registry HTTPS)
    authfile: str | None = None  # credentials file instead of the usual search
    jobs: int = 4  # parallel blob transfers


_options = Options()
_clients: dict[tuple[str, Options], "RegistryClient"] = {}
_clients_lock = threading.Lock()
# digest -> (host, repository) of blobs read from a registry (for cross-repository mounts when pushing)
_origins: dict[str, tuple[str, str]] = {}


def configure(**changes: Any) -> Options:
    """Set the process-wide registry options (the CLI's ``--insecure``, ``--ca-file``, ``--authfile``, jobs)."""
    global _options
    _options = replace(_options, **{k: v for k, v in changes.items() if v is not None})
    return _options


def client_for(host: str, options: Options | None = None) -> "RegistryClient":
    """One client per registry and options, so tokens and connections are reused."""
    opts = options or _options
    with _clients_lock:
        c = _clients.get((host, opts))
        if c is None:
            c = _clients[(host, opts)] = RegistryClient(host, opts)
        return c


def _is_loopback(host: str) -> bool:
    h = host.rsplit(":", 1)[0] if not host.startswith("[") else host.split("]")[0] + "]"
    return h in ("localhost", "127.0.0.1", "[::1]")


def _parse_challenge(header: str) -> tuple[str, dict[str, str]]:
    scheme, _, rest = header.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'(\w+)\s*=\s*"([^"]*)"', rest)}
    return scheme.lower(), params


def _error_codes(resp: requests.Response) -> str:
    try:
        errors = resp.json().get("errors") or []
        return "; ".join(f"{e.get('code', '')}: {e.get('message', '')}".strip(": ") for e in errors if isinstance(e, dict))
    except (ValueError, AttributeError):
        return ""


@dataclass
class PushStats:
    uploaded: int = 0  # blobs sent
    mounted: int = 0  # blobs mounted from another repository
    existing: int = 0  # blobs the registry already had
    bytes_uploaded: int = 0
    restarts: int = 0  # blob uploads begun again after an interruption
    resumes: int = 0  # chunked uploads continued where they stopped
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


class _Retry(Exception):
    """Internal: the attempt failed in a retryable way."""


class RegistryClient:
    """HTTP to one registry: auth, retries, and the distribution-spec calls."""

    def __init__(self, host: str, options: Options | None = None):
        self.host = host
        self.options = options or _options
        # loopback and --insecure registries speak plain HTTP, unless a private CA is named (then it is TLS)
        plain = (self.options.insecure or _is_loopback(host)) and not self.options.ca_file
        api_host = DOCKER_HUB_API if host in DOCKER_HUB_NAMES else host  # Docker Hub's API has its own name
        self.base = f"{'http' if plain else 'https'}://{api_host}"
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
        self.retries = _env_int("OCI_CONDA_REGISTRY_RETRIES", 5)
        self.backoff = _env_float("OCI_CONDA_REGISTRY_BACKOFF", 0.5)
        self._lock = threading.Lock()
        self._token_lock = threading.Lock()
        self._creds: _auth.Credentials | None = None
        self._creds_loaded = False
        self._scheme: str | None = None  # "bearer" | "basic" once the registry challenged us
        self._challenge: dict[str, str] = {}
        self._tokens: dict[tuple[str, ...], tuple[str, float]] = {}

    # -- auth ---------------------------------------------------------------------------------------------------

    def credentials(self) -> _auth.Credentials | None:
        with self._lock:
            if not self._creds_loaded:
                self._creds = _auth.lookup(self.host, self.options.authfile)
                self._creds_loaded = True
            return self._creds

    def set_credentials(self, creds: _auth.Credentials | None) -> None:
        with self._lock:
            self._creds, self._creds_loaded = creds, True
            self._tokens.clear()

    def _basic(self) -> str | None:
        c = self.credentials()
        if c is None or not c.username:
            return None
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
        realm, service = self._challenge.get("realm", ""), self._challenge.get("service")
        if not realm.startswith(("https://", "http://")):
            raise RegistryError(f"registry {self.host}: bearer challenge without a usable realm")
        creds = self.credentials()
        what = f"registry {self.host}: token server {redact_url(realm)}"
        try:
            if creds is not None and creds.identity_token:
                form = {"grant_type": "refresh_token", "refresh_token": creds.identity_token, "client_id": "oci-conda"}
                if service:
                    form["service"] = service
                if scopes:
                    form["scope"] = " ".join(scopes)
                resp = self.session.post(realm, data=form, timeout=DEFAULT_TIMEOUT, verify=self._verify)
            else:
                params = ([("service", service)] if service else []) + [("scope", s) for s in scopes]
                auth = (creds.username, creds.password) if creds is not None and creds.username else None
                resp = self.session.get(realm, params=params, auth=auth, timeout=DEFAULT_TIMEOUT, verify=self._verify)
        except requests.RequestException as exc:
            raise RegistryError(f"{what}: {describe_error(exc)}") from None
        if resp.status_code in (401, 403):
            who = "the stored credentials" if creds is not None else "anonymous access"
            raise RegistryError(f"{what} refused {who} (HTTP {resp.status_code}) for {' '.join(scopes) or 'login'}; "
                                f"check them with: oci-conda login {self.host}")
        if resp.status_code != 200:
            raise RegistryError(f"{what}: HTTP {resp.status_code}")
        try:
            doc = resp.json()
            token = doc.get("token") or doc.get("access_token")
            expires = int(doc.get("expires_in") or 60)
        except (ValueError, AttributeError, TypeError):
            raise RegistryError(f"{what}: unreadable token response") from None
        if not isinstance(token, str) or not token:
            raise RegistryError(f"{what}: no token in the response")
        with self._lock:
            self._tokens[scopes] = (token, time.monotonic() + max(10, expires - 10))
        return f"Bearer {token}"

    def _on_401(self, resp: requests.Response, scopes: tuple[str, ...], what: str, sent: str | None) -> None:
        scheme, params = _parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if scheme == "bearer":
            self._challenge = params
            self._scheme = "bearer"
            with self._lock:  # drop the token that was refused (not one another thread has fetched since)
                tok = self._tokens.get(scopes)
                if tok is not None and sent == f"Bearer {tok[0]}":
                    del self._tokens[scopes]
        elif scheme == "basic":
            if self.credentials() is None:
                raise RegistryError(f"{what}: the registry requires a login (oci-conda login {self.host})")
            self._scheme = "basic"
        else:
            raise RegistryError(f"{what}: unsupported authentication scheme {scheme or '(none)'!r}")

    # -- HTTP ---------------------------------------------------------------------------------------------------

    def url(self, path: str) -> str:
        return f"{self.base}/v2/{path}"

    def _sleep(self, attempt: int, resp: requests.Response | None = None) -> None:
        delay = self.backoff * (2 ** attempt)
        if resp is not None and resp.headers.get("Retry-After", "").isdigit():
            delay = float(resp.headers["Retry-After"])
        time.sleep(min(delay, 30.0))

    def request(self, method: str, url: str, scopes: tuple[str, ...], what: str, *,
                headers: dict[str, str] | None = None, body: Callable[[], Any] | None = None,
                stream: bool = False, retry: bool = True, allow_redirects: bool = True) -> requests.Response:
        """One call with auth (a 401 is answered once) and, if ``retry``, backoff on 429/5xx/connection failures."""
        authed = False
        attempt = 0
        while True:
            hdrs = dict(headers or {})
            auth = self._auth_header(scopes)
            if auth:
                hdrs["Authorization"] = auth
            try:
                resp = self.session.request(method, url, headers=hdrs, data=body() if body else None, stream=stream,
                                            allow_redirects=allow_redirects, timeout=DEFAULT_TIMEOUT,
                                            verify=self._verify)
            except requests.exceptions.SSLError:
                raise RegistryError(f"{what}: TLS certificate verification failed for {self.host} "
                                    "(use --ca-file for a private CA)") from None
            except (requests.ConnectionError, requests.Timeout) as exc:
                if retry and attempt < self.retries:
                    self._sleep(attempt)
                    attempt += 1
                    continue
                raise RegistryError(f"{what}: {describe_error(exc)} ({self.base})") from None
            if resp.status_code == 401 and not authed:
                authed = True
                self._on_401(resp, scopes, what, auth)
                resp.close()
                continue
            if resp.status_code in RETRY_STATUSES and retry and attempt < self.retries:
                resp.close()
                self._sleep(attempt, resp)
                attempt += 1
                continue
            return resp

    def fail(self, resp: requests.Response, what: str) -> RegistryError:
        codes = _error_codes(resp)
        detail = f" ({codes})" if codes else ""
        st = resp.status_code
        if st == 401:
            how = "the credentials were rejected" if self.credentials() is not None else "a login is required"
            return RegistryError(f"{what}: HTTP 401 unauthorized, {how} (oci-conda login {self.host}){detail}")
        if st == 403:
            return RegistryError(f"{what}: HTTP 403 denied{detail}")
        if st == 404:
            return RegistryError(f"{what}: not found (HTTP 404){detail}")
        return RegistryError(f"{what}: HTTP {st}{detail}")

    # -- checks -------------------------------------------------------------------------------------------------

    def ping(self) -> None:
        """GET /v2/, authenticating as ``login`` does; a RegistryError if the credentials are refused."""
        what = f"registry {self.host}"
        resp = self.request("GET", f"{self.base}/v2/", (), what)
        if resp.status_code != 200:
            raise self.fail(resp, what)

    # -- pull ---------------------------------------------------------------------------------------------------

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str]:
        """The bytes and media type of a manifest or index, by tag or digest (a digest is checked)."""
        what = f"{self.host}/{repo}: manifest {reference}"
        resp = self.request("GET", self.url(f"{repo}/manifests/{reference}"), (f"repository:{repo}:pull",), what,
                            headers={"Accept": ACCEPT})
        if resp.status_code == 404:
            tags = None if "NAME_UNKNOWN" in _error_codes(resp) else self.tags(repo)
            if tags is None:
                raise RegistryError(f"registry {self.host}: repository {repo} not found")
            have = ", ".join(tags[:10]) + (", ..." if len(tags) > 10 else "") if tags else "none"
            raise RegistryError(f"registry {self.host}: repository {repo} has no image {reference} (tags: {have})")
        if resp.status_code != 200:
            raise self.fail(resp, what)
        data = resp.content
        if len(data) > MAX_MANIFEST:
            raise RegistryError(f"{what}: {len(data)} bytes is too large for a manifest")
        if reference.startswith("sha256:"):
            verify_bytes(data, reference, None, what)
        mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
        return data, mt

    def tags(self, repo: str) -> list[str] | None:
        """The repository's tags (first page), or None if the registry does not know the repository."""
        what = f"{self.host}/{repo}: tags"
        resp = self.request("GET", self.url(f"{repo}/tags/list"), (f"repository:{repo}:pull",), what)
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            return []
        try:
            return [t for t in resp.json().get("tags") or [] if isinstance(t, str)]
        except (ValueError, AttributeError):
            return []

    def get_blob_bytes(self, repo: str, desc: Descriptor) -> bytes:
        what = f"{self.host}/{repo}: blob {desc.digest}"
        resp = self.request("GET", self.url(f"{repo}/blobs/{desc.digest}"), (f"repository:{repo}:pull",), what)
        if resp.status_code != 200:
            raise self.fail(resp, what)
        return resp.content

    def download_blob(self, repo: str, desc: Descriptor, store: BlobStore) -> Path:
        """Make sure the blob is in ``store`` (downloaded and verified if not); returns its path."""
        if store.has(desc.digest):
            return store.path(desc.digest)
        what = f"{self.host}/{repo}: blob {desc.digest}"
        for attempt in range(self.retries + 1):
            resp = self.request("GET", self.url(f"{repo}/blobs/{desc.digest}"), (f"repository:{repo}:pull",), what,
                                stream=True)
            if resp.status_code != 200:
                raise self.fail(resp, what)
            try:
                resp.raw.decode_content = True
                store.add_stream(resp.raw, desc.digest, desc.size)  # type: ignore[arg-type]
                return store.path(desc.digest)
            except (requests.RequestException, OSError) as exc:
                if attempt >= self.retries:
                    raise RegistryError(f"{what}: download failed ({describe_error(exc)})") from None
                self._sleep(attempt)
            except ImageError as exc:
                raise RegistryError(f"{what}: {exc}") from None
            finally:
                resp.close()
        raise AssertionError("unreachable")

    # -- push ---------------------------------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str, scopes: tuple[str, ...]) -> bool:
        what = f"{self.host}/{repo}: blob {digest}"
        resp = self.request("HEAD", self.url(f"{repo}/blobs/{digest}"), scopes, what)
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self.fail(resp, what)

    def _location(self, resp: requests.Response, what: str) -> str:
        loc = resp.headers.get("Location")
        if not loc:
            raise RegistryError(f"{what}: the registry gave no upload location (HTTP {resp.status_code})")
        return urljoin(resp.url, loc)

    def _start_upload(self, repo: str, scopes: tuple[str, ...], what: str, mount: tuple[str, str] | None = None
                      ) -> str | None:
        """A new upload session's URL, or None if ``mount`` (digest, from repository) succeeded."""
        url = self.url(f"{repo}/blobs/uploads/")
        if mount is not None:
            url += f"?mount={mount[0]}&from={mount[1]}"
        resp = self.request("POST", url, scopes, what, headers={"Content-Length": "0"})
        if mount is not None and resp.status_code == 201:
            return None
        if resp.status_code != 202:
            raise self.fail(resp, what)
        return self._location(resp, what)

    @staticmethod
    def _with_digest(location: str, digest: str) -> str:
        return location + ("&" if "?" in location else "?") + f"digest={digest}"

    def _finish(self, resp: requests.Response, digest: str, what: str) -> None:
        if resp.status_code != 201:
            raise self.fail(resp, what)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"{what}: the registry stored it as {got}")

    def upload_blob(self, repo: str, desc: Descriptor, data: bytes | Opener, *, mount_from: str | None = None,
                    stats: PushStats | None = None, monolithic_max: int | None = None,
                    chunk_size: int | None = None) -> str:
        """Upload one blob unless the registry has it; returns "existing", "mounted" or "uploaded"."""
        stats = stats or PushStats()
        monolithic_max = monolithic_max or _env_int("OCI_CONDA_UPLOAD_MONOLITHIC_MAX", 16 << 20)
        chunk_size = chunk_size or _env_int("OCI_CONDA_UPLOAD_CHUNK_SIZE", 8 << 20)
        what = f"{self.host}/{repo}: blob {desc.digest}"
        scopes: tuple[str, ...] = (f"repository:{repo}:pull,push",)
        if mount_from and mount_from != repo:
            scopes += (f"repository:{mount_from}:pull",)
        if self.blob_exists(repo, desc.digest, scopes):
            stats.add(existing=1)
            return "existing"
        mount = (desc.digest, mount_from) if mount_from and mount_from != repo else None
        location = self._start_upload(repo, scopes, what, mount)
        if location is None:
            stats.add(mounted=1)
            return "mounted"
        if isinstance(data, bytes) or desc.size <= monolithic_max:
            if isinstance(data, bytes):
                body = data
            else:
                with data() as f:
                    body = f.read()
            verify_bytes(body, desc.digest, desc.size, what)
            self._put_monolithic(repo, location, body, desc, scopes, what, stats)
        else:
            self._put_chunked(repo, location, data, desc, scopes, what, stats, chunk_size)
        stats.add(uploaded=1)
        return "uploaded"

    def _put_monolithic(self, repo: str, location: str, body: bytes, desc: Descriptor, scopes: tuple[str, ...],
                        what: str, stats: PushStats) -> None:
        for attempt in range(self.retries + 1):
            try:
                resp = self.request("PUT", self._with_digest(location, desc.digest), scopes, what, retry=False,
                                    headers={"Content-Type": "application/octet-stream",
                                             "Content-Length": str(len(body))}, body=lambda: body)
            except RegistryError:
                if attempt >= self.retries:
                    raise
                resp = None
            if resp is not None and resp.status_code not in RETRY_STATUSES:
                stats.add(bytes_uploaded=len(body))
                self._finish(resp, desc.digest, what)
                return
            # the PUT may have landed before the connection broke; if not, the session may be gone: start again
            self._sleep(attempt, resp)
            if self.blob_exists(repo, desc.digest, scopes):
                stats.add(bytes_uploaded=len(body))
                return
            stats.add(restarts=1)
            location = self._restart(repo, scopes, what)
        raise RegistryError(f"{what}: upload failed after {self.retries + 1} attempts")

    def _restart(self, repo: str, scopes: tuple[str, ...], what: str) -> str:
        loc = self._start_upload(repo, scopes, what)
        assert loc is not None
        return loc

    def _upload_status(self, location: str, scopes: tuple[str, ...], what: str) -> tuple[str, int] | None:
        """(location, bytes the registry holds) of an interrupted upload, or None if it is gone."""
        try:
            resp = self.request("GET", location, scopes, what)
        except RegistryError:
            return None
        if resp.status_code != 204:
            return None
        rng = resp.headers.get("Range", "")
        m = re.match(r"^(?:bytes=)?0-(\d+)$", rng)
        held = int(m.group(1)) + 1 if m else 0
        return urljoin(resp.url, resp.headers.get("Location") or location), held

    def _put_chunked(self, repo: str, location: str, opener: Opener, desc: Descriptor, scopes: tuple[str, ...],
                     what: str, stats: PushStats, chunk_size: int) -> None:
        offset = 0
        failures = 0
        reader: BinaryIO | None = None

        def reopen(at: int) -> BinaryIO:
            f = VerifyingReader(opener(), desc.digest, desc.size, what)
            left = at
            while left > 0:  # read through the verifier so the whole blob is still checked
                got = f.read(min(CHUNK, left))
                if not got:
                    raise RegistryError(f"{what}: the local blob is shorter than {desc.size} bytes")
                left -= len(got)
            return f  # type: ignore[return-value]

        try:
            reader = reopen(0)
            pending = b""
            while True:
                if not pending and offset < desc.size:
                    pending = reader.read(chunk_size)
                if not pending:
                    break
                start = offset
                try:
                    resp = self.request("PATCH", location, scopes, what, retry=False, body=lambda: pending, headers={
                        "Content-Type": "application/octet-stream", "Content-Length": str(len(pending)),
                        "Content-Range": f"{start}-{start + len(pending) - 1}"})
                    ok = resp.status_code == 202
                    if not ok and resp.status_code not in RETRY_STATUSES and resp.status_code not in (400, 404, 416):
                        raise self.fail(resp, what)
                except RegistryError:
                    if failures >= self.retries:
                        raise
                    ok, resp = False, None
                if ok:
                    assert resp is not None
                    location = self._location(resp, what)
                    offset += len(pending)
                    stats.add(bytes_uploaded=len(pending))
                    pending = b""
                    continue
                # interrupted: ask how far the registry got; resume there, or begin this blob again
                failures += 1
                if failures > self.retries:
                    raise self.fail(resp, what) if resp is not None else RegistryError(f"{what}: upload failed")
                self._sleep(failures - 1, resp)
                status = self._upload_status(location, scopes, what)
                reader.close()
                if status is not None:
                    location, offset = status
                    stats.add(resumes=1)
                else:
                    location, offset = self._restart(repo, scopes, what), 0
                    stats.add(restarts=1)
                reader = reopen(offset)
                pending = b""
            tail = reader.read(1)
            if tail:
                raise RegistryError(f"{what}: the local blob is longer than {desc.size} bytes")
        except ImageError as exc:
            raise RegistryError(f"{what}: {exc}") from None
        finally:
            if reader is not None:
                reader.close()
        try:
            resp = self.request("PUT", self._with_digest(location, desc.digest), scopes, what,
                                headers={"Content-Length": "0"})
        except RegistryError:
            if self.blob_exists(repo, desc.digest, scopes):  # it landed before the connection broke
                return
            raise
        if resp.status_code != 201 and resp.status_code != 400 and self.blob_exists(repo, desc.digest, scopes):
            return
        self._finish(resp, desc.digest, what)

    def put_manifest(self, repo: str, reference: str, data: bytes, media_type: str) -> str:
        digest = digest_bytes(data)
        what = f"{self.host}/{repo}: manifest {reference}"
        resp = self.request("PUT", self.url(f"{repo}/manifests/{reference}"), (f"repository:{repo}:pull,push",), what,
                            headers={"Content-Type": media_type}, body=lambda: data)
        if resp.status_code != 201:
            raise self.fail(resp, what)
        got = resp.headers.get("Docker-Content-Digest")
        if got and got != digest:
            raise RegistryError(f"{what}: the registry stored it as {got}, not {digest}")
        return digest


# ---------------------------------------------------------------------------------------------------------------
# pull: the "registry" transport


class RegistrySource:
    """``BlobSource`` over a registry repository; layers land in the shared blob cache."""

    def __init__(self, client: RegistryClient, repo: str, known: dict[str, bytes] | None = None,
                 store: BlobStore | None = None):
        self.client = client
        self.repo = repo
        self.known = dict(known or {})
        self.store = store or BlobStore.default()
        self.layers: list[Descriptor] = []

    def fetch(self, desc: Descriptor) -> bytes:
        if desc.digest in self.known:
            return self.known[desc.digest]
        if desc.media_type in MANIFEST_TYPES + INDEX_TYPES:
            return self.client.get_manifest(self.repo, desc.digest)[0]
        if self.store.has(desc.digest):
            return self.store.read(desc.digest, desc.size)
        return self.client.get_blob_bytes(self.repo, desc)

    def opener(self, desc: Descriptor) -> Opener:
        self.layers.append(desc)
        _origins[desc.digest] = (self.client.host, self.repo)
        store, client, repo = self.store, self.client, self.repo

        def _open() -> BinaryIO:
            client.download_blob(repo, desc, store)
            return store.opener(desc.digest, desc.size)()

        return _open

    def prefetch(self, jobs: int) -> None:
        missing = [d for d in self.layers if not self.store.has(d.digest)]
        if not missing:
            return
        with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(missing)))) as pool:
            for f in [pool.submit(self.client.download_blob, self.repo, d, self.store) for d in missing]:
                f.result()


def pull_image(ref: str | RegistryRef, platform: Platform, options: Options | None = None,
               store: BlobStore | None = None) -> Image:
    """The image ``ref`` names for ``platform``, its layers downloaded (in parallel, verified) into the cache."""
    r = ref if isinstance(ref, RegistryRef) else parse_reference(ref)
    client = client_for(r.host, options)
    data, mt = client.get_manifest(r.repository, r.reference)
    desc = Descriptor(mt or MEDIA_TYPE_MANIFEST, digest_bytes(data), len(data))
    if r.digest and desc.digest != r.digest:
        raise RegistryError(f"{r}: the registry returned a manifest with digest {desc.digest}")
    source = RegistrySource(client, r.repository, {desc.digest: data}, store)
    image = resolve_image(source, desc, platform, f"base image {r}")
    source.prefetch((options or _options).jobs)
    name = f"{r.name}:{r.tag}" if r.tag else f"{r.name}@{desc.digest}"
    annotations = {ANNOTATION_BASE_NAME: name,
                   ANNOTATION_BASE_DIGEST: image.annotations.get(ANNOTATION_BASE_DIGEST, desc.digest)}
    return set_annotations(image, annotations)


def _open_registry(ref: ImageRef, platform: Platform) -> Image:
    return pull_image(ref.path, platform)


register_transport("registry", _open_registry)


# ---------------------------------------------------------------------------------------------------------------
# push


@dataclass
class PushResult:
    ref: str
    digest: str  # what the tag points at (a manifest or an index)
    manifests: list[str]
    stats: PushStats

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {"ref": self.ref, "digest": self.digest, "manifests": self.manifests,
                "blobs": {"uploaded": s.uploaded, "mounted": s.mounted, "existing": s.existing,
                          "bytes_uploaded": s.bytes_uploaded, "restarts": s.restarts, "resumes": s.resumes}}


class _MemorySource:
    """A ``BlobSource`` over images built in memory: their configs and manifests as bytes, layers by opener."""

    def __init__(self) -> None:
        self.small: dict[str, bytes] = {}
        self.layers: dict[str, Opener] = {}

    def fetch(self, desc: Descriptor) -> bytes:
        if desc.digest in self.small:
            return self.small[desc.digest]
        with self.layers[desc.digest]() as f:
            return f.read()

    def opener(self, desc: Descriptor) -> Opener:
        if desc.digest in self.small:
            data = self.small[desc.digest]
            from io import BytesIO

            return lambda: BytesIO(data)  # type: ignore[return-value]
        return self.layers[desc.digest]


def _walk(source: BlobSource, desc: Descriptor, what: str, manifests: list[tuple[Descriptor, bytes]],
          blobs: dict[str, tuple[Descriptor, bytes | Opener]], depth: int = 0) -> None:
    """Collect an index's or manifest's children (post-order) and its blobs."""
    if depth > 8:
        raise ImageError(f"{what}: image indexes nested too deeply")
    data = verify_bytes(source.fetch(desc), desc.digest, desc.size, what)
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise ImageError(f"{what}: manifest {desc.digest} is not valid JSON") from None
    mt = doc.get("mediaType") or desc.media_type
    if mt not in MANIFEST_TYPES + INDEX_TYPES:
        mt = MEDIA_TYPE_INDEX if "manifests" in doc else MEDIA_TYPE_MANIFEST
    if mt in INDEX_TYPES:
        for i, m in enumerate(doc.get("manifests") or []):
            child = Descriptor.from_json(m, f"{what}: index entry {i}")
            if child.media_type in MANIFEST_TYPES + INDEX_TYPES:
                _walk(source, child, what, manifests, blobs, depth + 1)
            else:  # an artifact: push it as a blob
                blobs.setdefault(child.digest, (child, source.opener(child)))
    else:
        cfg = Descriptor.from_json(doc.get("config"), f"{what}: config")
        blobs.setdefault(cfg.digest, (cfg, verify_bytes(source.fetch(cfg), cfg.digest, cfg.size, f"{what}: config")))
        for i, raw in enumerate(doc.get("layers") or []):
            layer = Descriptor.from_json(raw, f"{what}: layer {i}")
            if "nondistributable" in layer.media_type or "foreign" in layer.media_type:
                continue
            blobs.setdefault(layer.digest, (layer, source.opener(layer)))
    manifests.append((Descriptor(mt, desc.digest, desc.size, desc.annotations, desc.platform), data))


def push_source(source: BlobSource, top: Descriptor, ref: str | RegistryRef, options: Options | None = None,
                what: str = "image") -> PushResult:
    """Push the index or manifest ``top`` (read from ``source``) and everything it references to ``ref``."""
    r = ref if isinstance(ref, RegistryRef) else parse_reference(ref)
    opts = options or _options
    client = client_for(r.host, opts)
    manifests: list[tuple[Descriptor, bytes]] = []
    blobs: dict[str, tuple[Descriptor, bytes | Opener]] = {}
    _walk(source, top, what, manifests, blobs)
    stats = PushStats()

    def one(item: tuple[Descriptor, bytes | Opener]) -> str:
        desc, data = item
        origin = _origins.get(desc.digest)
        mount_from = origin[1] if origin is not None and origin[0] == r.host else None
        return client.upload_blob(r.repository, desc, data, mount_from=mount_from, stats=stats)

    # biggest first, so the long uploads start early
    items = sorted(blobs.values(), key=lambda it: -it[0].size)
    with ThreadPoolExecutor(max_workers=max(1, min(opts.jobs, len(items) or 1))) as pool:
        futures = [pool.submit(one, it) for it in items]
        for f in futures:
            f.result()
    for desc, data in manifests[:-1]:
        client.put_manifest(r.repository, desc.digest, data, desc.media_type)
    top_desc, top_data = manifests[-1]
    if r.digest and r.digest != top_desc.digest:
        raise RegistryError(f"{r}: the image's digest is {top_desc.digest}, not the one named")
    tag = r.tag or (None if r.digest else "latest")
    digest = client.put_manifest(r.repository, tag or top_desc.digest, top_data, top_desc.media_type)
    out = f"{r.name}:{tag}" if tag else f"{r.name}@{digest}"
    return PushResult(out, digest, [d.digest for d, _ in manifests if d.media_type in MANIFEST_TYPES], stats)


def push_images(images: Iterable[Image], ref: str | RegistryRef, annotations: dict[str, str] | None = None,
                options: Options | None = None) -> PushResult:
    """Push built images under one tag: one image as a manifest, several (one per platform) as an index."""
    images = list(images)
    if not images:
        raise ImageError("no images to push")
    if annotations:
        images = [set_annotations(img, annotations) for img in images]
    source = _MemorySource()
    descs = []
    for img in images:
        cfg = config_bytes(img)
        source.small[digest_bytes(cfg)] = cfg
        man = manifest_bytes(img)
        source.small[digest_bytes(man)] = man
        for layer in img.layers:
            source.layers.setdefault(layer.descriptor.digest, layer.opener)
        descs.append(manifest_descriptor(img))
    if len(descs) == 1:
        top = Descriptor(MEDIA_TYPE_MANIFEST, descs[0].digest, descs[0].size)
    else:
        plats = [str(d.platform) for d in descs]
        if len(set(plats)) != len(plats):
            raise ImageError("two images for the same platform")
        idx = index_bytes(descs, annotations)
        source.small[digest_bytes(idx)] = idx
        top = Descriptor(MEDIA_TYPE_INDEX, digest_bytes(idx), len(idx))
    return push_source(source, top, ref, options)


def push_path(path: str, ref: str | RegistryRef, options: Options | None = None) -> PushResult:
    """Push an OCI archive (``IMAGE.tar``) or layout directory; ``PATH:NAME`` picks one of several images."""
    p, name = Path(path), None
    for prefix in ("oci-archive:", "oci:"):
        if path.startswith(prefix):
            path = path[len(prefix):]
            p = Path(path)
    if not p.exists() and ":" in path:
        head, _, name = path.rpartition(":")
        p = Path(head)
    if p.is_dir():
        if not (p / "oci-layout").is_file():
            raise ImageError(f"{p} is not an OCI layout directory (no oci-layout file)")
        source: Any = LayoutDirSource(p)
        what = f"OCI layout {p}"
    elif p.is_file():
        source = ArchiveSource(p)
        what = f"OCI archive {p}"
    else:
        raise ImageError(f"{p}: no such OCI archive or layout directory")
    top = _select_ref(source.index(), name, what)
    return push_source(source, top, ref, options, what)


def login(host: str, username: str, password: str, options: Options | None = None) -> Path:
    """Check the credentials against ``host`` and store them (``docker login`` format); returns the file written."""
    if "/" in host or not host:
        raise RegistryError(f"login: {host!r} is not a registry host (HOST[:PORT])")
    opts = options or _options
    creds = _auth.Credentials(username, password)
    client = RegistryClient(host, opts)
    client.set_credentials(creds)
    client.ping()
    return _auth.store(host, creds, opts.authfile)
