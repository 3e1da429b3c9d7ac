"""Channel specs as written in environment.yml, turned into canonical URLs (and URLs that carry credentials).

A channel has two URLs: ``url`` is canonical and credential-free (it goes into records, lockfiles, SBOMs and
messages), ``auth_url`` is what we actually request (it may carry ``/t/<token>`` or ``user:pass@``).
Which strings are paths follows conda: a spec starting with ``/``, ``.`` or ``~`` is a local path; anything with a
``scheme://`` is a URL; everything else (``conda-forge``, ``pytorch/label/nightly``) is a name under the channel alias.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from urllib.parse import unquote, urlsplit

from ..errors import ChannelError
from ..credentials import redact_url, split_credentials

DEFAULT_CHANNEL_ALIAS = "https://conda.anaconda.org"
#: What ``defaults`` stands for on a non-Windows platform (conda's ``DEFAULT_CHANNELS_UNIX``).
DEFAULTS_CHANNELS: tuple[tuple[str, str], ...] = (
    ("pkgs/main", "https://repo.anaconda.com/pkgs/main"),
    ("pkgs/r", "https://repo.anaconda.com/pkgs/r"),
)
CHANNEL_ALIAS_ENV = "OCI_CONDA_CHANNEL_ALIAS"

KNOWN_SUBDIRS = frozenset({
    "noarch", "linux-32", "linux-64", "linux-aarch64", "linux-armv6l", "linux-armv7l", "linux-ppc64",
    "linux-ppc64le", "linux-riscv64", "linux-s390x", "osx-64", "osx-arm64", "win-32", "win-64", "win-arm64",
    "emscripten-wasm32", "wasi-wasm32", "zos-z", "freebsd-64",
})

_SCHEME_RE = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")
_NAME_RE = re.compile(r"^[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*$")


@dataclass(frozen=True)
class Channel:
    """A resolved channel; ``url`` never carries credentials, ``auth_url`` may."""

    name: str
    url: str
    auth_url: str = field(repr=False)  # may hold a token: keep it out of reprs and logs

    def subdir_url(self, subdir: str, *, auth: bool = False) -> str:
        """URL of one platform directory; credential-free unless ``auth`` (use that one only for requests)."""
        return f"{self.auth_url if auth else self.url}/{subdir}"

    @property
    def is_local(self) -> bool:
        return self.url.startswith("file://")

    @property
    def path(self) -> Path | None:
        """The directory of a ``file://`` channel, else None."""
        return file_url_to_path(self.url) if self.is_local else None

    def __str__(self) -> str:
        return self.name


def file_url_to_path(url: str) -> Path:
    """``file:///a/b%20c`` -> ``/a/b c`` (also accepts ``file://localhost/...``)."""
    parts = urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ChannelError(f"file URL with a remote host is not supported: {redact_url(url)}")
    # decoded once, as Path.as_uri() encoded it: a directory named ``a%41`` is ``a%2541`` in its URL, and
    # decoding twice (what url2pathname(unquote(...)) did) made that ``aA``
    return Path(unquote(parts.path))


def _strip_subdir(url: str) -> str:
    """``.../chan/linux-64`` -> ``.../chan``: people paste platform URLs; conda accepts them too."""
    head, _, last = url.rstrip("/").rpartition("/")
    return head if last in KNOWN_SUBDIRS and head and not head.endswith(":/") else url


def _alias(channel_alias: str | None) -> str:
    alias = channel_alias or os.environ.get(CHANNEL_ALIAS_ENV) or DEFAULT_CHANNEL_ALIAS
    alias = alias.strip().rstrip("/")
    m = _SCHEME_RE.match(alias)
    if not m or m.group(1).lower() not in ("http", "https"):
        raise ChannelError(f"channel alias must be an http(s) URL: {redact_url(alias)}")
    return alias


def _local_channel(path: Path, spec: str) -> Channel:
    path = path.expanduser()
    if not path.is_dir():
        what = "is not a directory" if path.exists() else "does not exist"
        raise ChannelError(f"channel path {path} {what} (channel {spec!r})")
    resolved = path.resolve()
    if resolved.name in KNOWN_SUBDIRS and resolved.parent != resolved:
        resolved = resolved.parent
    url = resolved.as_uri()
    return Channel(name=url, url=url, auth_url=url)


def resolve_channel(spec: str, base_dir: Path, channel_alias: str | None = None) -> Channel:
    """One channel from a name, URL or path; relative paths are relative to ``base_dir`` (the env file's dir).

    ``channel_alias`` defaults to ``$OCI_CONDA_CHANNEL_ALIAS`` or :data:`DEFAULT_CHANNEL_ALIAS`. ``defaults``
    stands for several channels, so it is only accepted by :func:`resolve_channels`.
    """
    spec = str(spec).strip()
    if not spec:
        raise ChannelError("empty channel name")
    if spec in ("defaults", "nodefaults"):
        raise ChannelError(f"{spec!r} is not a single channel (internal: use resolve_channels)")
    m = _SCHEME_RE.match(spec)
    if m:
        scheme = m.group(1).lower()
        if scheme == "file":
            return _local_channel(file_url_to_path(spec), spec)
        if scheme not in ("http", "https"):
            raise ChannelError(f"unsupported channel URL scheme {scheme!r}: {redact_url(spec)}")
        canonical, auth = split_credentials(_strip_subdir(spec))
        if not urlsplit(canonical).hostname:
            raise ChannelError(f"channel URL has no host: {redact_url(spec)}")
        alias_canon, alias_auth = split_credentials(_alias(channel_alias))
        name = canonical
        if canonical.startswith(alias_canon + "/"):
            name = canonical[len(alias_canon) + 1:]
            if auth == canonical and alias_auth != alias_canon:  # a bare URL under the alias gets its token
                auth = f"{alias_auth}/{name}"
        return Channel(name=name, url=canonical, auth_url=auth)
    if spec.startswith(("/", ".", "~")) or re.match(r"^[A-Za-z]:[\\/]", spec):
        p = Path(spec).expanduser()
        return _local_channel(p if p.is_absolute() else Path(base_dir) / p, spec)
    name = spec.strip("/")
    if not _NAME_RE.match(name):
        raise ChannelError(f"invalid channel name {spec!r}")
    alias_canon, alias_auth = split_credentials(_alias(channel_alias))
    return Channel(name=name, url=f"{alias_canon}/{name}", auth_url=f"{alias_auth}/{name}")


def resolve_channels(specs: Sequence[str], base_dir: Path, channel_alias: str | None = None) -> list[Channel]:
    """All channels in priority order: ``defaults`` expands to its channels, ``nodefaults`` is dropped, repeats
    are removed (first one wins)."""
    out: list[Channel] = []
    seen: set[str] = set()
    for spec in specs:
        s = str(spec).strip()
        if s == "nodefaults":
            continue
        if s == "defaults":
            chans = [Channel(name=n, url=u, auth_url=u) for n, u in DEFAULTS_CHANNELS]
        else:
            chans = [resolve_channel(s, base_dir, channel_alias)]
        for c in chans:
            if c.url not in seen:
                seen.add(c.url)
                out.append(c)
    return out


def channel_label(url: str) -> str:
    """A channel as messages show it: ``conda-forge`` for ``https://host/conda-forge``, a ``file://`` URL whole
    (its path is its name), ``@`` (the virtual-package pseudo channel) as "the system". The one label rule."""
    if url == "@":
        return "the system (virtual package)"
    if url.startswith("file://"):
        return url
    rest = url.split("://", 1)[-1]
    parts = rest.split("/", 1)
    return parts[1] if len(parts) == 2 and parts[1] else rest
