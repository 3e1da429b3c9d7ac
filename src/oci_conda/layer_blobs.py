"""Planned layers → compressed blobs in the cache, each content compressed once, ever.

Both of build.py's ways to an environment's layers end here: the full path (every package installed and packed) and
the per-package path (stage.py: only the packages whose layers are not remembered). A layer's blob and descriptor are
kept under a key of what its bytes depend on, so an unchanged layer is reused, never rebuilt or recompressed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from concurrent.futures import as_completed
from pathlib import Path
from typing import Any

from . import __version__
from .cache import atomic_path, atomic_write, cache_dir
from .cache_verify import Digests, drop_file, record_file, verify_file
from .image_names import parse_owner
from .layers.plan import LayerPlan
from .oci.image import canonical_json
from .oci.tar import GZIP_WORKERS, LayerInfo, write_layer
from .options import BuildOptions
from .parallel import process_pool, workers
from .progress import Reporter
from .spec import BuildSpec

LAYER_FORMAT = 2  # bump when the bytes a layer's entries turn into change (tar writer, compression settings)


def layer_owner(spec: BuildSpec, opts: BuildOptions) -> tuple[int, int]:
    """Who owns the environment's files: ``--chown``, else ``image.owner``, else root."""
    if opts.owner is not None:
        return parse_owner(opts.owner, "--chown")
    if spec.image.owner is not None:
        return parse_owner(spec.image.owner, f"{spec.path}: image.owner")
    return (0, 0)


def _layer_key(plan: LayerPlan, compression: str, mtime: int, extract_root: Path,
               owner: tuple[int, int] = (0, 0)) -> str:
    """What a layer's bytes depend on, cheaply: files from an extracted package are named by that package's digest
    (the directory is content-addressed and immutable), other content is hashed."""
    root = str(extract_root) + os.sep
    items = []
    for e in plan.entries:
        if e.data is not None:
            content = "sha256:" + hashlib.sha256(e.data).hexdigest()
        elif e.source is not None and e.source.startswith(root):
            content = "pkg:" + e.source[len(root):]
        elif e.source is not None:
            with open(e.source, "rb") as f:
                content = "sha256:" + hashlib.file_digest(f, "sha256").hexdigest()
        elif e.opener is not None:
            raise ValueError(f"{e.path}: streamed content has no content key")  # the caller passes one
        else:
            content = ""
        items.append([e.path, e.kind, e.mode, e.size, e.linkname, content, e.mtime])
    doc: dict[str, Any] = {"format": LAYER_FORMAT, "version": __version__, "compression": compression, "mtime": mtime,
                           "entries": items}
    if owner != (0, 0):
        doc["owner"] = list(owner)
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def _write_layer_cached(plan: LayerPlan, compression: str, mtime: int, extract_root: Path,
                        gzip_workers: int | None = None, owner: tuple[int, int] = (0, 0),
                        prefix: str = "", known: str | None = None) -> tuple[LayerInfo, Path]:
    """An unchanged layer is never rebuilt or recompressed: its descriptor is remembered under its content key
    (which includes the owner of the prefix's files), or under ``known``, a key the caller knows covers it."""
    blobs = cache_dir("blobs", "sha256")
    key = _layer_key(plan, compression, mtime, extract_root, owner) if known is None else \
        hashlib.sha256(f"known:{LAYER_FORMAT}:{known}".encode()).hexdigest()
    memo = cache_dir("layers") / f"{key}.json"
    try:
        info = LayerInfo(**json.loads(memo.read_bytes()))
        blob = blobs / info.digest.split(":", 1)[1]
        if verify_file(blob, sha256=info.digest.split(":", 1)[1], size=info.size):  # stamp, else a full hash
            return info, blob
        drop_file(blob)  # damaged: rebuilt below, never shipped
    except (OSError, ValueError, TypeError, AttributeError):
        pass
    with atomic_path(directory=blobs) as staged:  # named after its digest, known once written
        with open(staged.tmp, "wb") as f:
            info = write_layer(plan.entries, f, compression, mtime, workers=gzip_workers, owner=owner,
                               owner_under=prefix)
        blob = staged.target = blobs / info.digest.split(":", 1)[1]
    with contextlib.suppress(OSError):  # its digest was computed as it was written: the archive need not hash it again
        record_file(blob, Digests(info.digest.split(":", 1)[1], None, info.size))
    with atomic_write(memo, fsync=False) as f:  # unsynced, as layers/memo.py's entries: a lost one is a miss
        f.write(canonical_json(dataclasses.asdict(info)))
    return info, blob


def compress_layers(plans: list[LayerPlan], spec: BuildSpec, opts: BuildOptions, reporter: Reporter, mtime: int,
                    keys: Mapping[int, str] | None = None) -> list[tuple[LayerPlan, LayerInfo, Path]]:
    """Write each planned layer as a blob (a layer with the same content as an earlier one is not compressed
    again), in parallel; the result is in plan order. ``keys``: id(plan) -> what the plan's content is known to
    depend on (the per-package memo's members key), for plans whose entries are not named by their content."""
    owner = layer_owner(spec, opts)
    extract_root = cache_dir("extracted")
    with reporter.phase("compress", opts.compression):
        compressing = reporter.task("compress", len(plans), "layers", bytes_total=sum(p.size for p in plans))
        # layers in worker processes (writing tar headers and reading small files hold the GIL), each deflating its
        # blocks on threads under the same bound
        per_layer = workers(opts.jobs, GZIP_WORKERS, cpu_bound=True)
        out = []
        with process_pool(opts.jobs, len(plans), "compress") as pool:
            todo = sorted(plans, key=lambda p: -p.size)
            futures = {pool.submit(_write_layer_cached, plan, opts.compression,
                                   max((e.mtime for e in plan.entries if e.mtime is not None), default=mtime),
                                   extract_root, per_layer, owner, spec.image.prefix, (keys or {}).get(id(plan))): plan
                       for plan in todo}
            for fut in as_completed(futures):
                plan = futures[fut]
                info, blob = fut.result()
                compressing.advance(1, plan.size)
                out.append((plan, info, blob))
    order = {id(p): i for i, p in enumerate(plans)}
    out.sort(key=lambda t: order[id(t[0])])
    return out
