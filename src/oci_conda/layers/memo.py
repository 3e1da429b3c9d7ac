"""The layer memo: what an environment's layers were, looked up right after the solve, before any work.

A build's layers are a function of its inputs: the records as conda-meta states them (each package named by its
sha256), the requested specs, the prefix, the platform, the layer time, the base's layer count and the layer-affecting
options, plus the versions of everything that turns those into bytes (oci-conda's layer format, conda-pack, the
compressor). The memo keys the list of layer descriptors on exactly that, so a warm build or a no-op rebuild does no
fetching, extraction, installation, packing or compression at all: it checks the blobs and reuses them.

Why a key over the whole environment rather than one per package: some of a layer's bytes depend on the whole
environment (``conda-meta/history`` and conda-pack's files in the top layer, which packages share a group layer when
there are more packages than the layer budget, which copy of a path two packages ship wins). Only the whole set of
inputs provably determines them; a build whose inputs changed in any way takes the full path, where an unchanged
package is not extracted again (extracted packages are cached by digest) and an unchanged layer is not compressed
again (layer blobs are remembered by their content).

Not memoised: ``--compile-pyc`` (its bytes depend on the host interpreter found at build time) and records without a
sha256 (nothing names their content).

Entries are verified at use (every blob's digest and size, by :mod:`oci_conda.cache_verify`: hashed only when its
stat stamp changed) and written atomically; a bad or unreadable entry is ignored and rewritten by the full path.
"""

from __future__ import annotations

import dataclasses
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
    layer_format: int  # build.py's LAYER_FORMAT


@dataclass
class MemoHit:
    """A remembered build of the environment's layers: (plan, descriptor, blob) per layer, and what it reported."""

    layers: list[tuple[LayerPlan, LayerInfo, Path]]
    warnings: list[str]
    trimmed: dict[str, Any]
    activation: dict[str, str]  # what activate.d scripts set (the image config's Env needs it)
    activation_wrapper: bool = False  # the layers hold the entrypoint wrapper (the config must name it)


def _tool_version(dist: str) -> str:
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
    with atomic_write(_entry_path(key, create=True)) as f:
        f.write(canonical_json(doc))
