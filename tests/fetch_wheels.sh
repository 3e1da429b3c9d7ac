#!/usr/bin/env bash
# Download the real wheels the pypi tests serve from their 127.0.0.1 index, once (CI set-up; rerun is a no-op).
# A pure tree (requests and its dependencies) and a manylinux binary (markupsafe) for the host CPython, from the
# default package index, into $OCI_CONDA_WHEELHOUSE (default ~/.cache/oci-conda-test-wheels).
set -euo pipefail
dest="${OCI_CONDA_WHEELHOUSE:-$HOME/.cache/oci-conda-test-wheels}"
py="${PYTHON:-python3}"
mkdir -p "$dest"
# Isolated from the host's pip configuration (extra indexes, constraints, find-links): the default index only.
PIP_CONFIG_FILE=/dev/null "$py" -m pip download --isolated --disable-pip-version-check -q \
    --only-binary=:all: --dest "$dest" \
    "requests==2.32.3" "markupsafe==3.0.2"
# The same binary for aarch64, so a linux-aarch64 target has its own wheel to pick.
pyver="$("$py" -c 'import sys; print("%d%d" % sys.version_info[:2])')"
PIP_CONFIG_FILE=/dev/null "$py" -m pip download --isolated --disable-pip-version-check -q \
    --only-binary=:all: --no-deps --platform manylinux2014_aarch64 --python-version "$pyver" \
    --implementation cp --dest "$dest" "markupsafe==3.0.2"
ls "$dest"
