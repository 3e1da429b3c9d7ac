"""oci-conda's registry settings: the ``--insecure`` / ``--ca-file`` / ``--authfile`` / ``--jobs`` flags and the
``OCI_CONDA_REGISTRY_*`` / ``OCI_CONDA_UPLOAD_*`` environment, turned into the explicit
:class:`~oci_conda.oci.registry.client.RegistryOptions` that ``oci/`` is handed (it reads no environment itself).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import replace

from .oci.registry.client import RegistryOptions

RETRIES_ENV = "OCI_CONDA_REGISTRY_RETRIES"
BACKOFF_ENV = "OCI_CONDA_REGISTRY_BACKOFF"
MONOLITHIC_MAX_ENV = "OCI_CONDA_UPLOAD_MONOLITHIC_MAX"
CHUNK_SIZE_ENV = "OCI_CONDA_UPLOAD_CHUNK_SIZE"
LOGIN_HINT = "oci-conda login {host}"


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    try:
        return int(env.get(name, default))
    except ValueError:
        return default


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    try:
        return float(env.get(name, default))
    except ValueError:
        return default


def registry_options(insecure: bool = False, ca_file: str | None = None, authfile: str | None = None,
                     jobs: int | None = None, env: Mapping[str, str] | None = None) -> RegistryOptions:
    """The options for this process: flags as given, tuning knobs from ``env`` (default: the environment)."""
    env = os.environ if env is None else env
    d = RegistryOptions()
    opts = replace(d, insecure=bool(insecure), ca_file=ca_file or None, authfile=authfile or None,
                   retries=_int(env, RETRIES_ENV, d.retries), backoff=_float(env, BACKOFF_ENV, d.backoff),
                   monolithic_max=_int(env, MONOLITHIC_MAX_ENV, d.monolithic_max),
                   chunk_size=_int(env, CHUNK_SIZE_ENV, d.chunk_size), login_hint=LOGIN_HINT)
    return replace(opts, jobs=jobs) if jobs else opts
