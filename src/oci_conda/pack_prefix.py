"""``oci-conda pack PREFIX``: an environment someone already has (made by conda, mamba or pixi, pip extras included)
into an image, without solving or downloading anything.

conda-pack decides which files make up the environment and rewrites its prefix to the image's (``layers/pack.py``);
its own checks refuse editable installs and managed files deleted or overwritten since install. Before that, every
conda-managed file whose content no longer matches the sha256 its ``conda-meta`` record holds is refused too
(conda-pack would silently ship the package's original copy). The packages' files are layered as a build layers them
(``layers/plan.py``: a layer per package from ``conda-meta/``, in dependency order), and what no package owns (pip
extras, ``conda-meta/history`` and ``state``, files added by hand) goes into the top layer. The image ``Env`` gets
what ``conda activate`` would set: static ``activate.d`` scripts and ``conda-meta/state`` ``env_vars``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from .activation import STATE_FILE, activation_scripts, evaluate
from .cache import atomic_path, cache_dir
from .conda.order import dependency_order
from .conda.records import PackageRecord
from .errors import InstallError, OutputError, SpecError
from .layers.pack import pack_existing
from .layers.plan import LayerPlan, plan_layers
from .oci import image as oci_image
from .oci.blobs import file_opener
from .oci.output import write_output
from .oci.registry.client import RegistryOptions
from .oci.source import open_image
from .oci.tar import LayerInfo, write_layer
from .platforms import platform_for_subdir
from .progress import Reporter
from .resolve import source_date_epoch

__all__ = ["PackOptions", "PackResult", "pack_environment", "read_prefix_records", "changed_files"]

_RECORD_KEYS = ("name", "version", "build", "build_number", "subdir", "channel", "url", "fn", "sha256", "md5", "size",
                "depends", "constrains", "track_features", "timestamp", "noarch", "license", "features")


@dataclass(frozen=True)
class PackOptions:
    """What ``pack`` takes: where the environment is, where it goes in the image, and the image around it."""

    source: Path
    output: Path
    prefix: str = "/opt/conda"
    base: str = "scratch"
    tag: str | None = None
    compression: str = "gzip"
    max_layers: int = 16
    registry: RegistryOptions = field(default_factory=RegistryOptions)


@dataclass
class PackResult:
    output: Path
    digest: str
    packages: list[PackageRecord]
    layers: list[dict[str, Any]]
    warnings: list[str]

    def to_json(self) -> dict[str, Any]:
        return {"output": str(self.output), "digest": self.digest, "warnings": self.warnings, "layers": self.layers,
                "packages": [{"name": r.name, "version": r.version, "build": r.build} for r in self.packages]}


def _meta_docs(prefix: Path) -> list[tuple[Path, dict[str, Any]]]:
    meta = prefix / "conda-meta"
    if not prefix.is_dir():
        raise SpecError(f"{prefix}: no such environment directory")
    if not meta.is_dir():
        raise SpecError(f"{prefix}: not a conda environment (no conda-meta/)")
    out = []
    for p in sorted(meta.glob("*.json")):
        try:
            doc = json.loads(p.read_bytes())
        except (OSError, ValueError) as e:
            raise SpecError(f"{p}: unreadable package record ({e})") from None
        if not isinstance(doc, dict) or not all(isinstance(doc.get(k), str) for k in ("name", "version", "build")):
            raise SpecError(f"{p}: not a conda package record (name, version, build)")
        out.append((p, doc))
    if not out:
        raise SpecError(f"{prefix}: conda-meta/ lists no packages")
    return out


def read_prefix_records(prefix: Path) -> list[PackageRecord]:
    """The packages ``conda-meta/*.json`` records, in dependency order."""
    recs = []
    for p, doc in _meta_docs(prefix):
        d = {k: doc.get(k) for k in _RECORD_KEYS if doc.get(k) is not None}
        d.setdefault("build_number", 0)
        d.setdefault("subdir", "noarch")
        d.setdefault("channel", "")
        d.setdefault("url", "")
        d.setdefault("fn", p.stem)
        try:
            recs.append(PackageRecord.from_json(d))
        except (TypeError, ValueError) as e:
            raise SpecError(f"{p}: bad package record ({e})") from None
    return dependency_order(recs)


def changed_files(prefix: Path) -> list[tuple[str, str]]:
    """``[(prefix-relative path, package)]`` of conda-managed files whose content differs from what ``conda-meta``
    recorded at install (``sha256_in_prefix``, else ``sha256`` for files installed as shipped)."""
    out = []
    for p, doc in _meta_docs(prefix):
        paths = (doc.get("paths_data") or {}).get("paths") or []
        for entry in paths if isinstance(paths, list) else []:
            if not isinstance(entry, dict) or entry.get("path_type", "hardlink") not in ("hardlink", "file"):
                continue
            rel = entry.get("_path")
            want = entry.get("sha256_in_prefix") or (None if entry.get("prefix_placeholder") else entry.get("sha256"))
            if not isinstance(rel, str) or not isinstance(want, str):
                continue
            f = prefix / rel
            if f.is_symlink() or not f.is_file():
                continue  # missing files are conda-pack's to report
            with open(f, "rb") as fh:
                got = hashlib.file_digest(fh, "sha256").hexdigest()
            if got != want.lower():
                out.append((rel, p.stem))
    return out


def _layer_blob(plan: LayerPlan, compression: str, mtime: int) -> tuple[LayerInfo, Path]:
    """Write one layer into the blob cache, named by its digest."""
    blobs = cache_dir("blobs", "sha256")
    with atomic_path(directory=blobs) as staged:
        with open(staged.tmp, "wb") as f:
            info = write_layer(plan.entries, f, compression, mtime)
        blob = staged.target = blobs / info.digest.split(":", 1)[1]
    return info, blob


def _subdir(records: Sequence[PackageRecord], prefix: Path) -> str:
    subdirs = sorted({r.subdir for r in records if r.subdir and r.subdir != "noarch"})
    if len(subdirs) > 1:
        raise SpecError(f"{prefix}: packages of several platforms ({', '.join(subdirs)})")
    return subdirs[0] if subdirs else "linux-64"


def _env_name(prefix: Path) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", prefix.resolve().name.lower()).strip("._-") or "env"


def _activation_env(prefix: Path, dest: str) -> tuple[dict[str, str], list[str]]:
    """What ``conda activate`` sets (static activate.d scripts, then ``conda-meta/state`` env_vars)."""
    root = prefix / "etc" / "conda" / "activate.d"
    rels = [f"etc/conda/activate.d/{p.name}" for p in sorted(root.glob("*.sh"))] if root.is_dir() else []
    scripts = {rel: (prefix / rel).read_bytes() for rel in activation_scripts(rels)}
    state = prefix / STATE_FILE
    act = evaluate(scripts, dest, {"PATH": f"{dest}/bin"}, state.read_bytes() if state.is_file() else None)
    warn = [f"activation script not evaluated (sets variables at run time only): {s}" for s in act.dynamic_scripts]
    return act.env, warn


def pack_environment(opts: PackOptions, reporter: Reporter) -> PackResult:
    """The whole ``pack``: check, conda-pack, layer, and write ``opts.output`` (nothing appears on failure)."""
    prefix = opts.source.expanduser().absolute()
    dest = "/" + opts.prefix.strip("/")
    if dest == "/":
        raise SpecError("--prefix must not be /")
    out = opts.output.absolute()
    if out.is_dir() and out.name.endswith(".tar"):
        raise OutputError(f"{out}: is a directory")
    records = read_prefix_records(prefix)
    with reporter.phase("check", f"{len(records)} packages in {prefix}"):
        changed = changed_files(prefix)
        if changed:
            rel, dist = changed[0]
            more = f" (and {len(changed) - 1} more)" if len(changed) > 1 else ""
            raise InstallError(f"{prefix}: {rel} of {dist} changed after install{more}; conda-pack would ship the "
                               "package's original: reinstall the package, or keep the change in a file no package owns")
    warnings: list[str] = []
    with reporter.phase("pack", f"into {dest}"):
        packed = pack_existing(prefix, dest)
        warnings.extend(packed.warnings)
        plans = plan_layers(packed.entries, packed.owner, records, "packages", opts.max_layers)
    subdir = _subdir(records, prefix)
    platform = platform_for_subdir(subdir)
    mtime = source_date_epoch(records)
    with reporter.phase("base", opts.base):
        img = open_image(opts.base, platform, opts.registry)
    with reporter.phase("compress", opts.compression):
        layers = [(plan, *_layer_blob(plan, opts.compression, mtime)) for plan in plans]
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(mtime))
    for plan, info, blob in layers:
        img = oci_image.append_layer(img, oci_image.Descriptor(info.media_type, info.digest, info.size), info.diff_id,
                                     file_opener(blob), history={"created": created,
                                                                 "created_by": f"oci-conda pack: {plan.name}",
                                                                 "comment": " ".join(plan.packages[:50])})
    act_env, act_warn = _activation_env(prefix, dest)
    warnings.extend(act_warn)
    name = _env_name(prefix)
    env = {"PATH": f"{dest}/bin", "CONDA_PREFIX": dest, "CONDA_DEFAULT_ENV": name, **act_env}
    img = oci_image.set_config(img, env=[f"{k}={v}" for k, v in env.items()], created=created)
    with reporter.phase("write", str(out)):
        written = write_output(out, [img], tag=opts.tag or f"{name}:latest")
    for w in warnings:
        reporter.warn(w)
    return PackResult(output=out, digest=written.digest, packages=records, warnings=warnings,
                      layers=[{"digest": info.digest, "size": info.size, "source": plan.name,
                               "packages": plan.packages} for plan, info, _ in layers])


def pack_options(source: Path, output: Path, **kw: Any) -> PackOptions:
    """:class:`PackOptions` with ``None`` values left at their defaults (for the command line)."""
    return dataclasses.replace(PackOptions(source, output), **{k: v for k, v in kw.items() if v is not None})
