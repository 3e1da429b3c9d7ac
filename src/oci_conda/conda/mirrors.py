"""Channel mirrors with fallback: ``OCI_CONDA_MIRRORS`` maps a channel URL to mirrors tried first, in order.

    OCI_CONDA_MIRRORS="https://conda.example.org/conda-forge=https://mirror-a/cf,https://mirror-b/cf"

(entries separated by whitespace or ``;``). Requests for that channel (repodata, shards, package files) go to the
first mirror; a mirror that cannot be reached or answers 4xx/5xx (other than 304) is skipped for the next one, and
the channel itself is the last resort. Records, lockfiles and images keep the channel's own URL, so a lock made
through a mirror builds anywhere. A channel's credentials (``/t/TOKEN``, ``user:pass@``) are never sent to a
mirror; a mirror URL may carry its own. Offline sessions are left alone.
"""

from __future__ import annotations

import base64
import os
import re
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from urllib3.util.retry import Retry

from ..errors import ChannelError
from ..http import RETRY_STATUSES, is_offline
from ..credentials import redact_url, split_credentials

MIRRORS_ENV = "OCI_CONDA_MIRRORS"


def parse_mirrors(text: str) -> dict[str, list[str]]:
    """``{canonical channel URL: [mirror URL (as given, may carry credentials), ...]}``."""
    out: dict[str, list[str]] = {}
    for entry in re.split(r"[\s;]+", text.strip()):
        if not entry:
            continue
        chan, sep, mirrors = entry.partition("=")
        if not sep or not chan.startswith(("http://", "https://")):
            raise ChannelError(f"{MIRRORS_ENV}: expected CHANNEL_URL=MIRROR_URL[,MIRROR_URL...], got "
                               f"{redact_url(entry)!r}")
        ms = [m.rstrip("/") for m in mirrors.split(",") if m.strip()]
        for m in ms:
            if not m.startswith(("http://", "https://")):
                raise ChannelError(f"{MIRRORS_ENV}: mirror must be an http(s) URL: {redact_url(m)}")
        out[split_credentials(chan)[0]] = ms
    return out


def _basic_auth(url: str) -> tuple[str, str | None]:
    """``(url without user:pass@, Authorization header or None)``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    cred, host = parts.netloc.rsplit("@", 1)
    user, _, pw = cred.partition(":")
    token = base64.b64encode(f"{unquote(user)}:{unquote(pw)}".encode()).decode()
    return urlunsplit((parts.scheme, host, parts.path, parts.query, parts.fragment)), f"Basic {token}"


class MirrorAdapter(BaseAdapter):
    """Sends a request for a mirrored channel to each mirror in turn, then to the channel (``fallback`` adapter)."""

    def __init__(self, mirrors: Mapping[str, list[str]], fallback: BaseAdapter):
        super().__init__()
        self.mirrors = dict(mirrors)
        self.fallback = fallback
        retry = Retry(total=1, connect=1, read=1, status=1, other=0, backoff_factor=0.1,
                      status_forcelist=RETRY_STATUSES, allowed_methods=frozenset({"GET", "HEAD"}),
                      raise_on_status=False)
        self.inner = HTTPAdapter(pool_connections=8, pool_maxsize=32, max_retries=retry)

    def _match(self, url: str) -> tuple[str, str] | None:
        canon = split_credentials(url)[0]
        for chan, _ in sorted(self.mirrors.items(), key=lambda kv: -len(kv[0])):
            if canon == chan or canon.startswith(chan + "/"):
                return chan, canon[len(chan):]
        return None

    def send(self, request: requests.PreparedRequest, *args: Any, **kwargs: Any) -> requests.Response:
        m = self._match(request.url or "")
        if m is None:
            return self.fallback.send(request, *args, **kwargs)
        chan, rest = m
        for mirror in self.mirrors[chan]:
            url, auth = _basic_auth(mirror + rest)
            req = request.copy()
            req.url = url
            req.headers.pop("Authorization", None)  # the channel's credentials are not the mirror's
            if auth:
                req.headers["Authorization"] = auth
            try:
                r = self.inner.send(req, *args, **kwargs)
            except requests.RequestException:
                continue
            if r.status_code < 400:
                return r
            r.close()
        return self.fallback.send(request, *args, **kwargs)

    def close(self) -> None:
        self.inner.close()
        self.fallback.close()


def with_mirrors(session: requests.Session, env: Mapping[str, str] | None = None) -> requests.Session:
    """``session`` with the mirrors of ``$OCI_CONDA_MIRRORS`` mounted (unchanged when unset or offline)."""
    env = os.environ if env is None else env
    text = env.get(MIRRORS_ENV, "")
    if not text.strip() or is_offline(session):
        return session
    mirrors = parse_mirrors(text)
    hosts = {}
    for chan in mirrors:
        p = urlsplit(chan)
        prefix = f"{p.scheme}://"
        hosts[prefix] = session.get_adapter(chan)
    for prefix, fallback in hosts.items():
        if not isinstance(fallback, MirrorAdapter):
            session.mount(prefix, MirrorAdapter(mirrors, fallback))
    return session
