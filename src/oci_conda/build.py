"""Run the stages in order for each platform. The only module that knows the whole pipeline.

records (resolve.py: solved, or from a lock) → fetch → extract → install (staging prefix) → conda-pack → trim/pyc →
layers → image(s) → a sink (OCI archive, layout directory, registry)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from . import __version__
from .cache import atomic_path, atomic_write, cache_dir, held_temp_dir
from .cache_verify import drop_file, verify_file
from .conda.channel import resolve_channels
from .conda.fetch import fetch_packages
from .conda.install import install
from .conda.matchspec import MatchSpec
from .conda.package import extract_package
from .conda.records import PackageRecord
from .credentials import redact_url
from .errors import OutputError
from .layers.pack import pack_prefix
from .layers.plan import LayerPlan, plan_layers
from .layers.pyc import compile_pyc
from .layers.trim import trim_entries
from .lockfile import check_base
from .oci import image as oci_image
from .oci.blobs import file_opener
from .oci.image import Image, canonical_json
from .oci.output import write_output
from .oci.registry.push import push_images
from .oci.source import open_image
from .oci.tar import LayerInfo, write_layer
from .options import BuildOptions
from .parallel import thread_pool
from .platforms import platform_for_subdir
from .progress import Reporter, human_size
from .resolve import default_session, platform_records
from .spec import BuildSpec


@dataclass
class PlatformResult:
    subdir: str
    manifest_digest: str
    packages: list[PackageRecord]
    layers: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    trimmed: dict[str, Any] = field(default_factory=dict)  # rule -> {files, bytes}


@dataclass
class BuildResult:
    output: Path | None
    digest: str  # what the output's index.json points at: the manifest (one platform) or the image index
    platforms: list[PlatformResult]
    timings: dict[str, float]
    output_size: int
    pushed: dict[str, Any] | None = None  # registry.PushResult.to_json() with --push

    @property
    def manifest_digest(self) -> str:
        return self.platforms[0].manifest_digest

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output) if self.output is not None else None,
            "push": self.pushed,
            "digest": self.digest,
            "manifest_digest": self.manifest_digest,
            "output_size": self.output_size,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "platforms": [
                {
                    "platform": p.subdir,
                    "manifest_digest": p.manifest_digest,
                    "layers": p.layers,
                    "packages": [
                        {"name": r.name, "version": r.version, "build": r.build, "channel": redact_url(r.channel),
                         "subdir": r.subdir, "sha256": r.sha256}
                        for r in p.packages
                    ],
                    "warnings": p.warnings,
                    "trimmed": p.trimmed,
                }
                for p in self.platforms
            ],
        }

    def summary_lines(self) -> list[str]:
        lines = []
        for p in self.platforms:
            lines.append(f"{p.subdir}: {len(p.packages)} packages, {len(p.layers)} layers, manifest {p.manifest_digest}")
            if p.trimmed:
                saved = ", ".join(f"{rule} {human_size(v['bytes'])} ({v['files']} files)" for rule, v in p.trimmed.items())
                lines.append(f"    trimmed: {saved}")
            for layer in p.layers:
                lines.append(f"    layer {layer['digest'][:19]}  {human_size(layer['size']):>10} compressed  "
                             f"{human_size(layer['uncompressed_size']):>10} tar  {layer['source']}")
        phases = "  ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        if self.pushed is not None:
            b = self.pushed["blobs"]
            lines.append(f"pushed {self.pushed['ref']}@{self.pushed['digest']} ({b['uploaded']} blobs uploaded, "
                         f"{b['mounted']} mounted, {b['existing']} already there)")
        where = f"wrote {self.output} ({human_size(self.output_size)})" if self.output is not None else "built"
        lines.append(f"{where}; {phases}")
        return lines


def _check_output(path: Path) -> None:
    """Fail before the slow work if the output cannot be written."""
    parent = path.resolve().parent
    if not parent.is_dir():
        raise OutputError(f"{path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise OutputError(f"{path}: directory {parent} is not writable")
    if path.exists() and path.is_dir() and str(path).endswith(".tar"):
        raise OutputError(f"{path}: is a directory")


def _env_layers(spec: BuildSpec, records: list[PackageRecord], subdir: str, opts: BuildOptions,
                reporter: Reporter, session: requests.Session, mtime: int, warnings: list[str],
                base_layers: int, report_trim: dict[str, Any]) -> list[tuple[LayerPlan, LayerInfo, Path]]:
    """Fetch, extract, install and pack the solution; write its layers as blobs in the cache."""
    with reporter.phase("fetch", f"{len(records)} packages"):
        total = sum(r.size or 0 for r in records)
        reporter.start(total, "download")
        files = fetch_packages(records, session, jobs=opts.jobs, offline=opts.offline,
                               progress=lambda rec, n, _t: reporter.advance(n))
    extract_root = cache_dir("extracted")
    with reporter.phase("extract"):
        def one(r: PackageRecord) -> Path:
            return extract_package(files[r.url], extract_root, _cache_key(r), label=r.fn)

        with thread_pool(opts.jobs, len(records), "extract", cpu_bound=True) as pool:
            extracted = list(pool.map(one, records))
    prefix = spec.image.prefix
    with held_temp_dir("stage-") as tmp:  # held: a later run sweeps it only after a kill -9
        staging = Path(tmp) / "prefix"
        with reporter.phase("install", f"into {prefix}"):
            reporter.start(len(records), "install")
            as_recorded = _portable_records(spec, records, opts)
            report = install(list(zip(as_recorded, extracted)), staging, prefix, progress=lambda _r: reporter.advance(1),
                             requested_specs=_requested(spec, subdir, records), history_time=mtime, hardlink=True,
                             specs_in_records=opts.layering == "single")
            warnings.extend(report.warnings)
            if report.post_link_scripts:
                warnings.append("post-link scripts not run: " + ", ".join(sorted(report.post_link_scripts)))
        with reporter.phase("pack"):
            dirs = {r.dist_name: d for r, d in zip(records, extracted)}
            packed = pack_prefix(staging, prefix, {p: dirs[dist] for p, dist in report.clobbered.items()})
            warnings.extend(packed.warnings)
            arcroot = prefix.strip("/")
            for path, dist in report.clobbered.items():  # the winner owns a path two packages ship
                packed.owner[f"{arcroot}/{path}"] = dist
            entries, trimmed = trim_entries(packed.entries, arcroot, opts.trim)
            if trimmed.removed:
                report_trim.update(trimmed.to_json())
            if opts.compile_pyc:
                entries, _ = compile_pyc(entries, packed.owner, arcroot, records, Path(tmp) / "pyc", warnings,
                                         jobs=opts.jobs)
            plans = plan_layers(entries, packed.owner, records, opts.layering, opts.max_layers, base_layers)
        with reporter.phase("compress", opts.compression):
            reporter.start(sum(p.size for p in plans), "compress")
            out = []
            for plan in plans:
                info, blob = _write_layer_cached(plan, opts.compression, mtime, extract_root)
                reporter.advance(plan.size)
                out.append((plan, info, blob))
    return out


LAYER_FORMAT = 1  # bump when the bytes a layer's entries turn into change (tar writer, compression settings)


def _layer_key(plan: LayerPlan, compression: str, mtime: int, extract_root: Path) -> str:
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
        else:
            content = ""
        items.append([e.path, e.kind, e.mode, e.size, e.linkname, content])
    doc = {"format": LAYER_FORMAT, "version": __version__, "compression": compression, "mtime": mtime,
           "entries": items}
    return hashlib.sha256(canonical_json(doc)).hexdigest()


def _write_layer_cached(plan: LayerPlan, compression: str, mtime: int, extract_root: Path) -> tuple[LayerInfo, Path]:
    """An unchanged layer is never rebuilt or recompressed: its descriptor is remembered under its content key."""
    blobs = cache_dir("blobs", "sha256")
    key = _layer_key(plan, compression, mtime, extract_root)
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
            info = write_layer(plan.entries, f, compression, mtime)
        blob = staged.target = blobs / info.digest.split(":", 1)[1]
    with atomic_write(memo) as f:
        f.write(canonical_json(dataclasses.asdict(info)))
    return info, blob


def _portable_records(spec: BuildSpec, records: list[PackageRecord], opts: BuildOptions) -> list[PackageRecord]:
    """Records as conda-meta inside the image states them.

    A channel the environment file names by a relative path (``./channel``) is recorded with that spelling, not as
    ``file:///where/the/checkout/happens/to/be``: the same inputs must give the same bytes in any directory.
    """
    relative = {}
    for c in spec.channels:
        if c.startswith(".") and "://" not in c:
            url = resolve_channels([c], spec.base_dir, channel_alias=opts.channel_alias)[0].url
            relative[url] = c.rstrip("/")
    if not relative:
        return records
    out = []
    for r in records:
        spelled = relative.get(r.channel)
        if spelled is not None:
            r = dataclasses.replace(r, channel=spelled, url=spelled + r.url[len(r.channel):])
        out.append(r)
    return out


def _requested(spec: BuildSpec, subdir: str, records: list[PackageRecord]) -> dict[str, str]:
    """name -> the spec the user wrote for it (conda-meta ``requested_spec`` and history)."""
    names = {r.name for r in records}
    out = {}
    for s in spec.specs_for(subdir):
        name = MatchSpec(s).name
        if name in names:
            out[name] = s
    return out


def _cache_key(r: PackageRecord) -> str:
    return f"{r.sha256 or r.md5 or r.fn}-{r.dist_name}"


def build_image(spec: BuildSpec, opts: BuildOptions, reporter: Reporter) -> BuildResult:
    """The whole build; nothing appears at ``opts.output`` unless everything succeeded."""
    t_start = time.perf_counter()
    if opts.output is not None:
        _check_output(opts.output)
    session = default_session(opts)
    images = []
    results: list[PlatformResult] = []
    for subdir in opts.platforms:
        records, mtime = platform_records(spec, subdir, opts, reporter, session)
        warnings: list[str] = []
        platform = platform_for_subdir(subdir)
        with reporter.phase("base", spec.image.base):
            img = open_image(spec.image.base, platform, dataclasses.replace(opts.registry, jobs=opts.jobs))
        if opts.lock is not None:
            check_base(opts.lock, subdir, img)
        trimmed: dict[str, Any] = {}
        layers = _env_layers(spec, records, subdir, opts, reporter, session, mtime, warnings, len(img.layers),
                             trimmed)
        with reporter.phase("image"):
            for plan, info, blob in layers:
                img = oci_image.append_layer(
                    img, oci_image.Descriptor(info.media_type, info.digest, info.size), info.diff_id,
                    file_opener(blob),
                    history={"created": _rfc3339(mtime), "created_by": f"oci-conda: {plan.name}",
                             "comment": " ".join(plan.packages[:50])},
                )
            img = oci_image.set_config(img, **_config_changes(spec, img, mtime))
        images.append(img)
        for w in warnings:
            reporter.warn(w)
        results.append(PlatformResult(subdir=subdir, manifest_digest="", packages=records, warnings=warnings,
                                      layers=[{"digest": info.digest, "size": info.size, "diff_id": info.diff_id,
                                               "uncompressed_size": info.uncompressed_size, "source": plan.name,
                                               "packages": plan.packages}
                                              for plan, info, _ in layers], trimmed=trimmed))
    annotations = dict(spec.image.annotations)
    digest, manifest_digests, pushed = "", [], None
    if opts.output is not None:
        with reporter.phase("write", str(opts.output)):
            tag = spec.image.tag or f"{_repo_name(spec.name)}:latest"
            written = write_output(opts.output, images, tag=tag, annotations=annotations)
        digest, manifest_digests = written.digest, written.manifest_digests
    if opts.push:
        with reporter.phase("push", opts.push):
            pushed = push_images(images, opts.push, annotations=annotations,
                                 options=dataclasses.replace(opts.registry, jobs=opts.jobs))
        digest, manifest_digests = digest or pushed.digest, manifest_digests or pushed.manifests
    for res, mdigest in zip(results, manifest_digests):
        res.manifest_digest = mdigest
    reporter.timings["total"] = time.perf_counter() - t_start
    size = _tree_size(opts.output) if opts.output is not None else 0
    return BuildResult(output=opts.output, digest=digest, platforms=results, timings=dict(reporter.timings),
                       output_size=size, pushed=pushed.to_json() if pushed is not None else None)


def _config_changes(spec: BuildSpec, img: Image, mtime: int) -> dict[str, Any]:
    prefix = spec.image.prefix
    env = [f"PATH={prefix}/bin", f"CONDA_PREFIX={prefix}"]
    if spec.name:
        env.append(f"CONDA_DEFAULT_ENV={spec.name}")
    env += [f"{k}={v}" for k, v in spec.variables]
    env += [f"{k}={v}" for k, v in spec.image.env]
    labels = dict(spec.image.labels)
    return {
        "env": env,
        "entrypoint": list(spec.image.entrypoint) if spec.image.entrypoint is not None else None,
        "cmd": list(spec.image.cmd) if spec.image.cmd is not None else None,
        "workdir": spec.image.workdir,
        "user": spec.image.user,
        "labels": labels or None,
        "created": _rfc3339(mtime),
    }


def _repo_name(name: str | None) -> str:
    """A default image name from the environment's name, made valid as a repository name."""

    repo = re.sub(r"[^a-z0-9._-]+", "-", (name or "").lower()).strip("._-")
    return repo or "oci-conda"


def _rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

