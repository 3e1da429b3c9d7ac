"""The command line against a registry, shared by the registry test modules: the environment a CLI run gets (private
cache and docker config, pinned time, fast retries) and the hello image built once per module."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from conftest import REPO
from realenv import oci_conda

HELLO_ENV = REPO / "examples" / "hello" / "environment.yml"


def cli_env(work: Path, **extra: str) -> dict:
    """The caller's environment without its registry credentials, a private cache and docker config under ``work``,
    SOURCE_DATE_EPOCH pinned and short registry back-off and retries; ``extra`` last."""
    env = {k: v for k, v in os.environ.items() if k not in ("REGISTRY_AUTH_FILE", "XDG_RUNTIME_DIR", "DOCKER_CONFIG")}
    env.update(OCI_CONDA_CACHE=str(work / "cache"), DOCKER_CONFIG=str(work / "docker"), SOURCE_DATE_EPOCH="1700000000",
               OCI_CONDA_REGISTRY_BACKOFF="0.05", OCI_CONDA_REGISTRY_RETRIES="2")
    env.update(extra)
    return env


@pytest.fixture(scope="module")
def hello(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The README's hello example built once per module: its work dir, archive and ``--json`` summary."""
    work = tmp_path_factory.mktemp("hello")
    out = work / "hello.tar"
    res = oci_conda("build", str(HELLO_ENV), "-o", str(out), "--json", env=cli_env(work))
    return {"work": work, "out": out, "summary": json.loads(res.stdout)}
