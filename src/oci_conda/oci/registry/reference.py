"""Registry image references: ``[docker://][HOST[:PORT]/]REPO[:TAG][@sha256:...]`` with Docker's naming rules."""

from __future__ import annotations

import re
from dataclasses import dataclass

from oci_conda.errors import ImageError

# Docker Hub answers to several names; docker itself stores its credentials under https://index.docker.io/v1/.
DOCKER_HUB_NAMES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
DOCKER_HUB_API = "registry-1.docker.io"
_REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*$")
_TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
_DIGEST_RE = re.compile(r"^sha256:[a-f0-9]{64}$")


class ReferenceError(ImageError):
    """An image reference that does not parse."""


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
        raise ReferenceError(f"image reference {ref!r}: name the repository, as [HOST[:PORT]/]REPOSITORY[:TAG]")
    tag = None
    last = rest.rsplit("/", 1)[-1]
    if ":" in last:
        rest, _, tag = rest.rpartition(":")
        if not _TAG_RE.match(tag):
            raise ReferenceError(f"image reference {ref!r}: invalid tag {tag!r}")
    if not _REPO_RE.match(rest):
        raise ReferenceError(f"image reference {ref!r}: invalid repository name {rest!r} (lowercase letters, digits, "
                            "separators . _ - and /)")
    if digest and not _DIGEST_RE.match(digest):
        raise ReferenceError(f"image reference {ref!r}: invalid digest {digest!r}")
    return RegistryRef(host, rest, tag, digest or None)


# ---------------------------------------------------------------------------------------------------------------
