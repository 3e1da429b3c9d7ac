"""Channel mirrors: ``OCI_CONDA_MIRRORS`` maps a channel to the places tried before it, in order.

    OCI_CONDA_MIRRORS="conda-forge=http://mirror-a/cf,file:///srv/cf https://conda.example.org/x=https://m/x"

(entries separated by whitespace or ``;``). The channel is a name (under the channel alias, as in environment.yml)
or a URL; a mirror is an ``http(s)://`` URL (it may carry its own credentials) or a ``file://`` directory. Nothing
here talks to the network: :class:`Mirrors` answers "where may this channel URL be read, in order" — the gateway
opens a subdir at each location in turn and ``fetch.py`` downloads a package from each in turn; the channel itself
is the last resort. Records, lockfiles and images keep the channel's own URL, so a lock made through a mirror builds
anywhere. A channel's credentials (``/t/TOKEN``, ``user:pass@``) are never part of a mirror location: only the path
*below* the channel (credentials stripped) is appended to a mirror.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from ..credentials import redact_url, split_credentials
from ..errors import ChannelError
from .channel import resolve_channel

MIRRORS_ENV = "OCI_CONDA_MIRRORS"

__all__ = ["MIRRORS_ENV", "Mirrors", "parse_mirrors", "mirrors_from_env"]


def _mirror_url(text: str) -> str:
    """One mirror as written -> the location we use (``file://`` URLs resolved to an absolute directory URL)."""
    m = text.strip().rstrip("/")
    if m.startswith(("http://", "https://")):
        return m
    if m.startswith("file://"):
        try:
            return resolve_channel(m, Path.cwd()).url  # checks the directory exists, normalises the path
        except ChannelError as e:
            raise ChannelError(f"{MIRRORS_ENV}: {e}") from None
    raise ChannelError(f"{MIRRORS_ENV}: mirror must be an http(s) or file:// URL: {redact_url(m)}")


def parse_mirrors(text: str, channel_alias: str | None = None) -> dict[str, list[str]]:
    """``{canonical channel URL: [mirror location, ...]}``; a channel *name* is resolved under the channel alias."""
    out: dict[str, list[str]] = {}
    for entry in re.split(r"[\s;]+", text.strip()):
        if not entry:
            continue
        chan, sep, mirrors = entry.partition("=")
        if not sep or not chan.strip() or not mirrors.strip():
            raise ChannelError(f"{MIRRORS_ENV}: expected CHANNEL=MIRROR[,MIRROR...] (CHANNEL a name or URL), got "
                               f"{redact_url(entry)!r}")
        if chan.startswith(("file://", "/", ".", "~")):
            raise ChannelError(f"{MIRRORS_ENV}: a local channel needs no mirror: {chan!r}")
        try:
            canonical = resolve_channel(chan, Path.cwd(), channel_alias).url
        except ChannelError as e:
            raise ChannelError(f"{MIRRORS_ENV}: {e}") from None
        out[canonical] = [_mirror_url(m) for m in mirrors.split(",") if m.strip()]
    return out


@dataclass(frozen=True)
class Mirrors:
    """Per canonical channel URL, the mirror locations tried before it (empty: no mirrors)."""

    table: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: mirrors found unreachable in this process: skipped from then on (the channel itself never is)
    down: set[str] = field(default_factory=set, compare=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)

    def __bool__(self) -> bool:
        return bool(self.table)

    def _match(self, url: str) -> tuple[str, str] | None:
        """``(channel, path below it)`` for a URL under a mirrored channel (credentials ignored), else None."""
        if not self.table or not url.startswith(("http://", "https://")):
            return None
        canon = split_credentials(url)[0]
        for chan in sorted(self.table, key=len, reverse=True):
            if canon == chan or canon.startswith(chan + "/"):
                return chan, canon[len(chan):]
        return None

    def for_channel(self, channel_url: str) -> tuple[str, ...]:
        """The mirror locations of one channel (its canonical URL), in the order they are tried."""
        m = self._match(channel_url)
        return self.table[m[0]] if m is not None and not m[1] else ()

    def locations(self, url: str) -> list[str]:
        """Where ``url`` (a file under a channel, possibly with the channel's credentials) may be read: each
        mirror's copy, then ``url`` itself. Mirror copies never carry the channel's credentials."""
        m = self._match(url)
        if m is None:
            return [url]
        chan, rest = m
        with self._lock:
            return [mirror + rest for mirror in self.table[chan] if mirror not in self.down] + [url]

    def unreachable(self, url: str) -> None:
        """Remember that the mirror ``url`` lies under could not be reached (a connection, not an HTTP answer)."""
        with self._lock:
            for mirrors in self.table.values():
                for mirror in mirrors:
                    if url == mirror or url.startswith(mirror + "/"):
                        self.down.add(mirror)


def mirrors_from_env(env: Mapping[str, str] | None = None, channel_alias: str | None = None) -> Mirrors:
    """The mirrors of ``$OCI_CONDA_MIRRORS`` (none when unset); a bad setting is a one-line :class:`ChannelError`."""
    env = os.environ if env is None else env
    text = env.get(MIRRORS_ENV, "")
    if not text.strip():
        return Mirrors()
    return Mirrors({k: tuple(v) for k, v in parse_mirrors(text, channel_alias).items()})
