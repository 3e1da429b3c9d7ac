"""The names an image is written and pushed under (validated tags, the default name) and who owns its files.

A tag goes into ``index.json`` as ``org.opencontainers.image.ref.name`` and into Docker's ``manifest.json``;
``podman load``/``docker load`` refuse names outside the reference grammar (uppercase, spaces), so they are
checked here, before any work. The default name lives under ``localhost/`` so that an environment called
``python`` never becomes ``python:latest`` and shadows the official image when loaded.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .errors import SpecError
from .oci.registry.reference import ReferenceError, parse_reference

DEFAULT_REGISTRY = "localhost"


def repo_name(name: str | None) -> str:
    """A repository path component from an environment's name (lowercase, separators squeezed)."""
    repo = re.sub(r"[^a-z0-9._-]+", "-", (name or "").lower()).strip("._-")
    return re.sub(r"[._-]{2,}", "-", repo) or "oci-conda"


def default_tag(env_name: str | None) -> str:
    """``localhost/<name>:latest``: never a Docker Hub name such as ``python:latest``."""
    return f"{DEFAULT_REGISTRY}/{repo_name(env_name)}:latest"


def check_tag(tag: str, where: str) -> str:
    """``tag`` if it is a valid ``[HOST[:PORT]/]NAME[:TAG]``; else one SpecError line naming ``where``."""
    if not tag or tag != tag.strip() or any(c.isspace() for c in tag):
        raise SpecError(f"{where}: invalid image name {tag!r}: no spaces allowed ([HOST[:PORT]/]NAME[:TAG], "
                        "lowercase)")
    if "@" in tag:
        raise SpecError(f"{where}: invalid image name {tag!r}: a tag names no digest ([HOST[:PORT]/]NAME[:TAG])")
    try:
        parse_reference(tag)
    except ReferenceError as e:
        detail = str(e).split(": ", 1)[-1].replace("'library/", "'")
        raise SpecError(f"{where}: invalid image name {tag!r}: {detail}") from None
    return tag


def image_tags(given: Sequence[str], file_tag: str | None, env_name: str | None, file_where: str) -> tuple[str, ...]:
    """The names to write: every ``--tag`` (in order, without repeats), else the file's ``image.tag``, else
    :func:`default_tag`."""
    if given:
        return tuple(dict.fromkeys(check_tag(t, f"--tag {t!r}") for t in given))
    if file_tag:
        return (check_tag(file_tag, file_where),)
    return (default_tag(env_name),)


def tag_part(tag: str) -> str:
    """The tag after the last ``:`` of the last path component (``latest`` if none)."""
    last = tag.rsplit("/", 1)[-1]
    return last.rpartition(":")[2] if ":" in last else "latest"


def parse_owner(owner: str, where: str) -> tuple[int, int]:
    """``"UID:GID"`` as numbers (the tar header's ustar field holds up to 2097151); one SpecError line otherwise."""
    m = re.fullmatch(r"(\d{1,7}):(\d{1,7})", owner.strip())
    if m is None or max(int(m[1]), int(m[2])) > 0o7777777:
        raise SpecError(f"{where}: owner must be UID:GID with numbers up to {0o7777777}, got {owner!r}")
    return int(m[1]), int(m[2])
