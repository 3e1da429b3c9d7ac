"""Labels, annotations and Env entries from the command line, and the standard OCI provenance keys.

``--label K=V``, ``--annotation K=V``, ``--env K=V`` add to (and override) the file's ``image.labels``,
``image.annotations`` and ``image.env``. ``org.opencontainers.image.source/revision/version`` come from
``--source``/``--revision``/``--image-version`` or, with ``--oci-labels``, from the CI's variables (GitHub Actions,
GitLab CI and a generic ``SOURCE_URL``/``SOURCE_REVISION``); ``created`` is the build time (``SOURCE_DATE_EPOCH`` or
the newest package's timestamp), so the bytes stay reproducible. Nothing is added unless asked: the same inputs must
give the same digest on a laptop and in CI.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from .errors import SpecError

SOURCE = "org.opencontainers.image.source"
REVISION = "org.opencontainers.image.revision"
VERSION = "org.opencontainers.image.version"
CREATED = "org.opencontainers.image.created"
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def parse_pairs(items: Sequence[str] | None, flag: str, env_names: bool = False) -> tuple[tuple[str, str], ...]:
    """``K=V`` arguments of a repeatable flag, in order (a later key wins); one SpecError line for a bad one."""
    out: dict[str, str] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key or key != key.strip() or (env_names and not _ENV_NAME.fullmatch(key)):
            what = "a variable name" if env_names else "a non-empty key"
            raise SpecError(f"{flag} {item!r}: expected KEY=VALUE with {what}")
        out[key] = value
    return tuple(out.items())


def merge(base: Sequence[tuple[str, str]], extra: Sequence[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
    """``base`` with ``extra`` on top (same key: extra's value, in base's position; new keys after)."""
    out = dict(base)
    out.update(extra)
    return tuple(out.items())


def provenance(env: Mapping[str, str], from_ci: bool, source: str | None = None, revision: str | None = None,
               version: str | None = None) -> dict[str, str]:
    """source/revision/version: the options given, else (``from_ci``) the CI's variables."""
    if from_ci:
        gh_repo = env.get("GITHUB_REPOSITORY")
        ci_source = (f"{env.get('GITHUB_SERVER_URL', '').rstrip('/')}/{gh_repo}" if gh_repo and env.get("GITHUB_SERVER_URL")
                     else env.get("CI_PROJECT_URL") or env.get("SOURCE_URL"))
        ci_revision = env.get("GITHUB_SHA") or env.get("CI_COMMIT_SHA") or env.get("SOURCE_REVISION")
        ci_version = env.get("CI_COMMIT_TAG") or (env.get("GITHUB_REF_NAME") if env.get("GITHUB_REF_TYPE") == "tag"
                                                  else None)
        source, revision, version = source or ci_source, revision or ci_revision, version or ci_version
    out = {}
    for key, value in ((SOURCE, source), (REVISION, revision), (VERSION, version)):
        if value:
            out[key] = value
    return out
