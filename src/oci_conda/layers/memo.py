"""The layer memos: what layers were, looked up right after the solve, before any work.

Two tables, both verified at use (every blob's digest and size, by :mod:`oci_conda.cache_verify`: hashed only when
its stat stamp changed) and written atomically; a bad or unreadable entry is ignored and rewritten. Entries are not
synced to disk (``fsync``) before the build goes on: one that a crash loses or tears reads as a miss, and a blob is
never trusted without its check; syncing the 61 entries of a 45-package cold build took ~0.1 s of one core at its end.

**Per environment** (``layers/env``): the list of layer descriptors keyed on everything an environment's layers
depend on: the records as conda-meta states them (each package named by its sha256), the requested specs, the
prefix, the platform, the image time, the base, the layer-affecting options and the versions of everything that
turns those into bytes (oci-conda's layer format, conda-pack, the compressor). A no-op rebuild does no fetching,
extraction, installation, packing or compression at all: it checks the blobs and reuses them. Not memoised:
``--compile-pyc`` (its bytes depend on the host interpreter) and records without a sha256.

**Per package** (``layers/pkg`` and ``layers/members``): since layer format 2 a package's entries depend on that
package alone (its files are dated by its own build time, its conda-meta record names no requested spec), so
:func:`package_key` covers them: the record, the prefix, the time, the python a noarch: python package is laid out
for, the options. ``pkg`` keeps the :class:`PackageFacts` the build needs without installing the package again (its
size for the layering rule, its paths to see two packages ship one, its activation scripts); ``members`` maps the
keys of a layer's packages to the layer's descriptor. A build whose environment changed (a bump, another
environment sharing packages) then installs, packs and compresses only the packages of the layers it lacks
(``stage.layers_by_package``); the environment-wide top layer is made anew each time.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .. import __version__
from ..cache import atomic_write, cache_dir, cache_root
from ..cache_verify import drop_file, verify_file
from ..conda.records import PackageRecord
from ..oci.image import canonical_json
from ..oci.tar import LayerInfo, compressor_id
from .plan import LayerPlan

#: Bump when what a memo entry holds, or what its key covers, changes.
MEMO_FORMAT = 1


@dataclass(frozen=True)
class MemoInputs:
    """Everything an environment's layers depend on besides the package files themselves (named by sha256)."""

    records: Sequence[PackageRecord]  # as conda-meta inside the image states them, in install order
    requested: Mapping[str, str]  # name -> the spec the user wrote
    prefix: str
    subdir: str
    mtime: int
    base_layers: int
    options: Mapping[str, Any]  # the layer-affecting options: compression, layering, max_layers, trim, ...
    layer_format: int  # layer_blobs.LAYER_FORMAT


@dataclass
class MemoHit:
    """A remembered build of the environment's layers: (plan, descriptor, blob) per layer, and what it reported."""

    layers: list[tuple[LayerPlan, LayerInfo, Path]]
    warnings: list[str]
    trimmed: dict[str, Any]
    activation: dict[str, str]  # what activate.d scripts set (the image config's Env needs it)
    activation_wrapper: bool = False  # the layers hold the entrypoint wrapper (the config must name it)


@functools.cache
def _tool_version(dist: str) -> str:
    """An installed distribution's version, once per process: each lookup walks ``sys.path`` (~2 ms), and every
    package's key asks (45 lookups were ~0.08 s of one core before a cold build of 45 packages could start)."""
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "absent"


def memo_key(inputs: MemoInputs) -> str | None:
    """The memo key for ``inputs``, or None when these layers must not be memoised (see the module docstring)."""
    if inputs.options.get("compile_pyc"):
        return None
    if any(not r.sha256 for r in inputs.records):
        return None
    doc = {
        "memo": MEMO_FORMAT,
        "layer_format": inputs.layer_format,
        "oci_conda": __version__,
        "conda_pack": _tool_version("conda-pack"),
        "compressor": compressor_id(str(inputs.options.get("compression"))),
        "records": [r.to_json() for r in inputs.records],
        "requested": dict(sorted(inputs.requested.items())),
        "prefix": inputs.prefix,
        "subdir": inputs.subdir,
        "mtime": int(inputs.mtime),
        "base_layers": inputs.base_layers,
        "options": {k: inputs.options[k] for k in sorted(inputs.options)},
    }
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def _entry_path(key: str, create: bool = False) -> Path:
    """Where ``key``'s entry lives; a lookup creates nothing (a failed build leaves the cache as it was)."""
    return (cache_dir("layers", "env") if create else cache_root() / "layers" / "env") / f"{key}.json"


def _blob_path(digest: str) -> Path:
    return cache_root() / "blobs" / "sha256" / digest.split(":", 1)[1]


def lookup(key: str) -> MemoHit | None:
    """The remembered layers for ``key`` when the entry is readable and every blob it names is intact, else None."""
    path = _entry_path(key)
    try:
        doc = json.loads(path.read_bytes())
        layers = []
        for item in doc["layers"]:
            info = LayerInfo(**item["info"])
            if not info.digest.startswith("sha256:"):
                raise ValueError(info.digest)
            plan = LayerPlan(name=str(item["name"]), packages=[str(p) for p in item["packages"]])
            layers.append((plan, info, _blob_path(info.digest)))
        warnings = [str(w) for w in doc["warnings"]]
        trimmed = dict(doc["trimmed"])
        activation = {str(k): str(v) for k, v in dict(doc.get("activation", {})).items()}
        wrapper = bool(doc.get("activation_wrapper", False))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        drop_file(path)
        return None
    for _plan, info, blob in layers:
        if not verify_file(blob, sha256=info.digest.split(":", 1)[1], size=info.size):
            drop_file(blob)  # a damaged blob is rebuilt by the full path, never trusted
            return None
    return MemoHit(layers=layers, warnings=warnings, trimmed=trimmed, activation=activation,
                   activation_wrapper=wrapper)


def store(key: str, layers: Sequence[tuple[LayerPlan, LayerInfo, Path]], warnings: Sequence[str],
          trimmed: Mapping[str, Any], activation: Mapping[str, str] | None = None,
          activation_wrapper: bool = False) -> None:
    """Remember the layers just built for ``key`` (atomically: a concurrent reader sees the old entry or the new)."""
    doc = {
        "layers": [{"name": plan.name, "packages": list(plan.packages), "info": dataclasses.asdict(info)}
                   for plan, info, _blob in layers],
        "warnings": list(warnings),
        "trimmed": dict(trimmed),
        "activation": dict(activation or {}),
        "activation_wrapper": activation_wrapper,
    }
    with atomic_write(_entry_path(key, create=True), fsync=False) as f:
        f.write(canonical_json(doc))


# ---------------------------------------------------------------------------------------------------------------
# the per-package memo: what a package's layer is, looked up before the package is even fetched

#: Bump when a package entry's fields, or what a package key covers, change.
PACKAGE_MEMO_FORMAT = 1


@dataclass(frozen=True)
class PackageFacts:
    """What the build needs to know of an installed package without installing it again: its size (the layering
    rule ranks by it), the paths it ships (two packages shipping one path need the full install), the activation
    scripts it ships (the image's ``Env`` is evaluated from all of them), its skipped post-link scripts, what
    ``--trim`` took from it, and for python where noarch: python packages go."""

    size: int
    paths: tuple[str, ...]  # prefix-relative, files and links (directories may be shared)
    scripts: Mapping[str, bytes]  # prefix-relative etc/conda/activate.d/* -> content
    post_link: tuple[str, ...]
    trimmed: Mapping[str, tuple[int, int]]  # rule -> (files, bytes)
    site_packages: str | None = None


def package_key(record: PackageRecord, *, prefix: str, epoch: int, python: Sequence[str] | None,
                options: Mapping[str, str | list[int]], layer_format: int) -> str:
    """The key of one package's layer content: the package (its record as conda-meta states it, which names its
    sha256), the prefix, its files' time, the python it is laid out for (noarch: python only), the layer-affecting
    options and the versions of everything that turns those into bytes."""
    doc = {
        "memo": PACKAGE_MEMO_FORMAT,
        "layer_format": layer_format,
        "oci_conda": __version__,
        "conda_pack": _tool_version("conda-pack"),
        "compressor": compressor_id(str(options.get("compression"))),
        "record": record.to_json(),
        "prefix": prefix,
        "epoch": int(epoch),
        "python": list(python) if python is not None else None,
        "options": {k: options[k] for k in sorted(options)},
    }
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def _package_path(key: str, create: bool = False) -> Path:
    return (cache_dir("layers", "pkg") if create else cache_root() / "layers" / "pkg") / f"{key}.json"


def lookup_package(key: str) -> PackageFacts | None:
    """The facts stored for ``key``, or None (a damaged entry is dropped)."""
    path = _package_path(key)
    try:
        doc = json.loads(path.read_bytes())
        return PackageFacts(
            size=int(doc["size"]), paths=tuple(str(p) for p in doc["paths"]),
            scripts={str(k): bytes.fromhex(str(v)) for k, v in dict(doc["scripts"]).items()},
            post_link=tuple(str(p) for p in doc["post_link"]),
            trimmed={str(k): (int(v[0]), int(v[1])) for k, v in dict(doc["trimmed"]).items()},
            site_packages=None if doc.get("site_packages") is None else str(doc["site_packages"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError, KeyError, IndexError, AttributeError):
        drop_file(path)
        return None


def store_package(key: str, facts: PackageFacts) -> None:
    """Remember ``facts`` under ``key`` (atomically)."""
    doc = {"size": facts.size, "paths": list(facts.paths), "scripts": {k: v.hex() for k, v in facts.scripts.items()},
           "post_link": list(facts.post_link), "trimmed": {k: list(v) for k, v in facts.trimmed.items()},
           "site_packages": facts.site_packages}
    with atomic_write(_package_path(key, create=True), fsync=False) as f:
        f.write(canonical_json(doc))


def members_key(package_keys: Sequence[str]) -> str:
    """The key of a layer holding these packages (in this order): each key covers everything its package's
    entries depend on, so the list covers the layer."""
    return hashlib.sha256(canonical_json({"memo": PACKAGE_MEMO_FORMAT, "members": list(package_keys)})).hexdigest()


def _layer_path(key: str, create: bool = False) -> Path:
    return (cache_dir("layers", "members") if create else cache_root() / "layers" / "members") / f"{key}.json"


def lookup_layer(key: str) -> tuple[LayerInfo, Path] | None:
    """The layer remembered for ``key`` when its blob is intact (verified), else None."""
    path = _layer_path(key)
    try:
        info = LayerInfo(**json.loads(path.read_bytes()))
        if not info.digest.startswith("sha256:"):
            raise ValueError(info.digest)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError):
        drop_file(path)
        return None
    blob = _blob_path(info.digest)
    if not verify_file(blob, sha256=info.digest.split(":", 1)[1], size=info.size):
        drop_file(blob)
        return None
    return info, blob


def store_layer(key: str, info: LayerInfo) -> None:
    """Remember that the layer of ``key`` is ``info`` (its blob is in the blob store)."""
    with atomic_write(_layer_path(key, create=True), fsync=False) as f:
        f.write(canonical_json(dataclasses.asdict(info)))
