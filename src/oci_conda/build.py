"""Run the stages in order for each platform. The only module that knows the whole pipeline.

records (resolve.py: solved, or from a lock) → fetch → per package: stream its archive into layer entries
(layers/stream.py), or extract → install (staging prefix) → conda-pack → trim/pyc → layers → image(s) → a sink (OCI
archive, layout directory, registry)
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tarfile
import threading
import time
from concurrent.futures import Future, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping

from . import __version__
from .activation import ACTIVATE_DIR, STATE_FILE, WRAPPER_PATH, Activation, evaluate, wrapper_script
from .cache import SPOOL_DIR, atomic_path, atomic_write, cache_dir, held_temp_dir
from .cache_verify import Digests, drop_file, record_file, verify_file
from .conda.channel import resolve_channels
from .conda.fetch import fetch_packages
from .conda.install import InstallReport, install, python_version_of
from .conda.matchspec import MatchSpec
from .conda.package import extract_package
from .conda.records import PackageRecord
from .credentials import redact_url
from .errors import OutputError
from .layers import memo as layer_memo
from .layers.pack import pack_prefix, path_parents
from .layers.plan import LayerPlan, assign_layers, check_hardlinks, plan_layers
from .layers.pyc import compile_pyc
from .layers.stream import StreamedPackage, stream_package
from .layers.trim import TrimReport, trim_entries
from .layers.wheels import extraction_key, merge_wheel_plans, wheel_layers
from .lockfile import check_base
from .oci import image as oci_image
from .oci.blobs import file_opener
from .oci.image import Image, canonical_json
from .oci.output import write_output
from .oci.registry.push import push_images
from .oci.source import open_image
from .oci.tar import GZIP_WORKERS, LayerInfo, TarEntry, entry_bytes, write_layer
from .options import BuildOptions, compressor_warning
from .parallel import LargestFirst, process_pool, workers
from .platforms import platform_for_subdir
from .image_labels import CREATED, merge
from .image_names import image_tags, parse_owner, tag_part
from .oci.registry.reference import parse_reference
from .progress import Reporter, human_size
from .pypi.records import WheelRecord
from .resolve import default_session, given_epoch, has_pip, package_epoch, pip_wheels, platform_records
from .sbom.attach import Sbom, image_sboms, push_sboms, write_beside
from .spec import BuildSpec

if TYPE_CHECKING:
    import requests


@dataclass
class PlatformResult:
    subdir: str
    manifest_digest: str
    packages: list[PackageRecord]
    layers: list[dict[str, Any]]
    warnings: list[str] = field(default_factory=list)
    trimmed: dict[str, Any] = field(default_factory=dict)  # rule -> {files, bytes}
    wheels: list[WheelRecord] = field(default_factory=list)  # the pip section's wheels, as installed
    base_layers: list[dict[str, Any]] = field(default_factory=list)  # {digest, size, diff_id} of the base image
    activation: dict[str, str] = field(default_factory=dict)  # variables activate.d scripts set (now in Env)


@dataclass
class BuildResult:
    output: Path | None
    digest: str  # what the output's index.json points at: the manifest (one platform) or the image index
    platforms: list[PlatformResult]
    timings: dict[str, float]
    output_size: int
    pushed: dict[str, Any] | None = None  # registry.PushResult.to_json() with --push
    sboms: list[dict[str, Any]] = field(default_factory=list)  # --sbom: each document attached (and its file)

    @property
    def manifest_digest(self) -> str:
        return self.platforms[0].manifest_digest

    def to_json(self) -> dict[str, Any]:
        return {
            "output": str(self.output) if self.output is not None else None,
            "push": self.pushed,
            "sboms": self.sboms,
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
                    **({"pip_packages": [{"name": w.name, "version": w.version, "filename": w.filename,
                                          "url": redact_url(w.url), "sha256": w.sha256, "size": w.size}
                                         for w in p.wheels]} if p.wheels else {}),
                    "base_layers": p.base_layers,
                    "activation": p.activation,
                }
                for p in self.platforms
            ],
        }

    def summary_lines(self) -> list[str]:
        """The human summary (stderr): per platform its layers, base ones first; then what was written/pushed."""
        lines = []
        if len(self.platforms) > 1:
            lines.append(f"image index {self.digest} ({len(self.platforms)} platforms)")
        for p in self.platforms:
            n = len(p.base_layers) + len(p.layers)
            base = f" ({len(p.base_layers)} from the base)" if p.base_layers else ""
            pip = f" + {_plural(len(p.wheels), 'pip package')}" if p.wheels else ""
            lines.append(f"{p.subdir}: {_plural(len(p.packages), 'package')}{pip}, {_plural(n, 'layer')}{base}, "
                         f"manifest {p.manifest_digest}")
            if p.activation:
                lines.append(f"    activation: {', '.join(f'{k}={v}' for k, v in p.activation.items())}")
            if p.trimmed:
                saved = ", ".join(f"{rule} {human_size(v['bytes'])} ({v['files']} files)" for rule, v in p.trimmed.items())
                lines.append(f"    trimmed: {saved}")
            for layer in p.base_layers:
                lines.append(f"    layer {layer['digest'][:19]}  {human_size(layer['size']):>10} compressed  "
                             f"{'':>10}      base image")
            for layer in p.layers:
                lines.append(f"    layer {layer['digest'][:19]}  {human_size(layer['size']):>10} compressed  "
                             f"{human_size(layer['uncompressed_size']):>10} tar  {layer['source']}")
            env_c = sum(layer["size"] for layer in p.layers)
            env_u = sum(layer["uncompressed_size"] for layer in p.layers)
            base_c = sum(layer["size"] for layer in p.base_layers)
            lines.append(f"    environment {human_size(env_c)} compressed, {human_size(env_u)} uncompressed"
                         + (f"; base {human_size(base_c)} compressed" if p.base_layers else ""))
        phases = "  ".join(f"{k} {v:.2f}s" for k, v in self.timings.items())
        if self.pushed is not None:
            b = self.pushed["blobs"]
            lines.append(f"pushed {self.pushed['ref']}@{self.pushed['digest']} ({b['uploaded']} blobs uploaded, "
                         f"{b['mounted']} mounted, {b['existing']} already there)")
        for s in self.sboms:
            lines.append(f"sbom {s['format']} ({s['platform']}): {human_size(s['size'])}, attached as "
                         f"{s['artifact'][:19]}" + (f", {s['file']}" if s.get("file") else ""))
        where = f"wrote {self.output} ({human_size(self.output_size)})" if self.output is not None else "built"
        lines.append(f"{where}; {phases}")
        return lines

    def result_line(self) -> str:
        """What scripts read on stdout: ``REGISTRY/REPO:TAG@sha256:...`` when pushed, else ``OUT@sha256:...``."""
        if self.pushed is not None:
            return f"{self.pushed['ref']}@{self.pushed['digest']}"
        return f"{self.output}@{self.digest}"


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


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
                base_layers: int, report_trim: dict[str, Any],
                pip_out: list[WheelRecord] | None = None, base: Image | None = None,
                activated: list[Activation] | None = None) -> list[tuple[LayerPlan, LayerInfo, Path]]:
    """Fetch, extract, install and pack the solution, then the pip section's wheels (``pip_out`` learns them);
    write the layers as blobs in the cache.

    The layer memo is consulted first: the same inputs as a previous build reuse its layers without any work. A pip
    section is resolved against an index that changes, so its environments are never taken from the memo."""
    key = None if has_pip(spec, subdir, opts) else _memo_key(spec, records, subdir, opts, mtime, base_layers, base)
    if key is not None:
        hit = layer_memo.lookup(key)
        if hit is not None:
            with reporter.phase("layers", "unchanged (memo)"):
                warnings.extend(hit.warnings)
                report_trim.update(hit.trimmed)
                if activated is not None:
                    activated.append(Activation(env=dict(hit.activation), wrapper=hit.activation_wrapper))
                return hit.layers
    first_warning = len(warnings)
    acts: list[Activation] = []
    keys = _package_keys(spec, records, subdir, opts)
    out = None
    if keys is not None:
        out = _env_layers_by_package(spec, records, subdir, opts, reporter, session, mtime, warnings, base_layers,
                                     report_trim, keys, base, acts if activated is not None else None)
    if out is None:
        out = _env_layers_built(spec, records, subdir, opts, reporter, session, mtime, warnings, base_layers,
                                report_trim, pip_out, base, acts if activated is not None else None, keys)
    if activated is not None:
        activated.extend(acts)
    if key is not None:
        layer_memo.store(key, out, warnings[first_warning:], report_trim, acts[0].env if acts else {},
                         bool(acts and acts[0].wrapper))
    return out


def _memo_key(spec: BuildSpec, records: list[PackageRecord], subdir: str, opts: BuildOptions, mtime: int,
              base_layers: int, base: Image | None) -> str | None:
    """What the environment's layers depend on (layers/memo.py), from the same inputs _env_layers_built uses.

    Activation reads the base image (its PATH, whether it has a shell) and the owner changes every header, so both
    are part of the key."""
    return layer_memo.memo_key(layer_memo.MemoInputs(
        records=_portable_records(spec, records, opts), requested=_requested(spec, subdir, records),
        prefix=spec.image.prefix, subdir=subdir, mtime=mtime, base_layers=base_layers,
        options={"compression": opts.compression, "layering": opts.layering, "max_layers": opts.max_layers,
                 "trim": opts.trim, "compile_pyc": opts.compile_pyc, "owner": list(_owner(spec, opts)),
                 "activate": spec.image.activate,
                 "base": None if base is None else
                 [la.descriptor.digest for la in base.layers] + [hashlib.sha256(canonical_json(base.config)).hexdigest()]},
        layer_format=LAYER_FORMAT))


def _env_layers_built(spec: BuildSpec, records: list[PackageRecord], subdir: str, opts: BuildOptions,
                      reporter: Reporter, session: requests.Session, mtime: int, warnings: list[str],
                      base_layers: int, report_trim: dict[str, Any],
                      pip_out: list[WheelRecord] | None = None, base: Image | None = None,
                      activated: list[Activation] | None = None, keys: dict[str, str] | None = None
                      ) -> list[tuple[LayerPlan, LayerInfo, Path]]:
    """The full path: fetch, extract, install, pack, trim, compile, pip wheels, plan and compress.

    With ``keys`` (the per-package memo applies, see :func:`_package_keys`) what each package's layer needs is
    remembered, so that later builds install only the packages whose layers they lack."""
    extracted = _fetch_extract(records, opts, reporter, session)
    fetched_wheels = pip_wheels(spec, subdir, records, extracted, opts, reporter, session)
    if pip_out is not None:
        pip_out.extend(w.record for w in fetched_wheels)
    prefix = spec.image.prefix
    with held_temp_dir("stage-") as tmp:  # held: a later run sweeps it only after a kill -9
        staging = Path(tmp) / "prefix"
        with reporter.phase("install", f"into {prefix}"):
            installing = reporter.task("install", len(records), "packages")
            as_recorded = _portable_records(spec, records, opts)
            report = install(list(zip(as_recorded, extracted)), staging, prefix, progress=lambda _r: installing.advance(1),
                             requested_specs=_requested(spec, subdir, records), history_time=mtime, hardlink=True,
                             specs_in_records=opts.layering == "single", record_plain=True)
            warnings.extend(report.warnings)
            if report.post_link_scripts:
                warnings.append("post-link scripts not run: " + ", ".join(sorted(report.post_link_scripts)))
        with reporter.phase("pack"):
            packed = pack_prefix(staging, prefix, report.sources, report.standing)
            warnings.extend(packed.warnings)
            arcroot = prefix.strip("/")
            for path, dist in report.clobbered.items():  # the winner owns a path two packages ship
                packed.owner[f"{arcroot}/{path}"] = dist
            entries, trimmed = trim_entries(packed.entries, arcroot, opts.trim)
            if trimmed.removed:
                report_trim.update(trimmed.to_json())
            learnt: dict[str, layer_memo.PackageFacts] = {}
            if keys is not None and not report.clobbered:
                learnt = _package_facts(packed.entries, packed.owner, arcroot, records, report, opts, keys)[0]
            if opts.compile_pyc:
                entries, _ = compile_pyc(entries, packed.owner, arcroot, records, Path(tmp) / "pyc", warnings,
                                         jobs=opts.jobs)
            if base is not None and activated is not None:
                act, wrapper = activate_environment(entries, spec, base, warnings)
                entries = entries + wrapper
                activated.append(act)
            wheel_plans = []
            if fetched_wheels:
                with reporter.phase("pip-install", f"{len(fetched_wheels)} wheel(s) into {prefix}"):
                    wheel_plans = wheel_layers(fetched_wheels, prefix=prefix, staging=Path(tmp) / "wheels",
                                               conda_records=records, conda_paths=(e.path for e in entries),
                                               compile=opts.compile_pyc, warnings=warnings, jobs=opts.jobs).plans
            entries = dated_entries(entries, packed.owner, records, given_epoch(opts.lock))
            plans = plan_layers(entries, packed.owner, records, opts.layering, opts.max_layers,
                                base_layers + min(len(wheel_plans), 1))
            if wheel_plans:
                plans = merge_wheel_plans(plans, wheel_plans, opts.layering, opts.max_layers, base_layers)
        out = _compress(plans, spec, opts, reporter, mtime)
    if keys is not None and not report.clobbered:
        _store_facts(keys, learnt)
        for plan, info, _blob in out:
            if plan.packages and all(d in keys for d in plan.packages):
                layer_memo.store_layer(layer_memo.members_key([keys[d] for d in plan.packages]), info)
    return out


def _store_facts(keys: Mapping[str, str], facts: Mapping[str, layer_memo.PackageFacts]) -> None:
    """Remember what was learnt of each package, once its layers are written (a refused build stores nothing)."""
    for d, f in facts.items():
        layer_memo.store_package(keys[d], f)


def _fetch(records: list[PackageRecord], opts: BuildOptions, reporter: Reporter, session: requests.Session,
           arrived: Callable[[PackageRecord, Path], None] | None = None) -> dict[str, Path]:
    """Download (or find in the cache, verified) ``records``' package files: url -> file. ``arrived``: called with
    each file as soon as it is verified."""
    with reporter.phase("fetch", _plural(len(records), "package")):
        download = reporter.task("download", len({r.url for r in records}), "packages",
                                 sizes={r.url: r.size for r in records})
        return fetch_packages(records, session, jobs=opts.jobs, offline=opts.offline,
                              progress=lambda rec, done, total: download.file(rec.url, done, total), arrived=arrived)


def _fetch_extract(records: list[PackageRecord], opts: BuildOptions, reporter: Reporter,
                   session: requests.Session, files: Mapping[str, Path] | None = None) -> list[Path]:
    """Download (or find in the cache, verified) and extract ``records``: their extracted directories, in order.
    ``files``: package files fetched already."""
    files = {**(files or {}), **_fetch([r for r in records if r.url not in (files or {})], opts, reporter, session)}
    extract_root = cache_dir("extracted")
    with reporter.phase("extract"):
        unpacked = reporter.task("extract", len(records), "packages")
        # in worker processes: on 2 cores a cold build of 45 packages (140 MiB) took 0.85x the time it took with
        # threads, one of 10 packages (8 MiB) 0.96x
        with process_pool(opts.jobs, len(records), "extract") as pool:
            futures = [pool.submit(extract_package, files[r.url], extract_root, extraction_key(r), label=r.fn)
                       for r in records]
            for _done in as_completed(futures):
                unpacked.advance(1)
            return [f.result() for f in futures]


def _compress(plans: list[LayerPlan], spec: BuildSpec, opts: BuildOptions, reporter: Reporter, mtime: int,
              keys: Mapping[int, str] | None = None) -> list[tuple[LayerPlan, LayerInfo, Path]]:
    """Write each planned layer as a blob (a layer with the same content as an earlier one is not compressed
    again), in parallel; the result is in plan order. ``keys``: id(plan) -> what the plan's content is known to
    depend on (the per-package memo's members key), for plans whose entries are not named by their content."""
    owner = _owner(spec, opts)
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


def _package_keys(spec: BuildSpec, records: list[PackageRecord], subdir: str, opts: BuildOptions
                  ) -> dict[str, str] | None:
    """dist name -> the key of that package's layer content (layers/memo.py), or None when this environment's
    package layers are not a function of each package alone: a pip section (wheels land between packages),
    ``--compile-pyc`` (host interpreter), ``--trim aggressive`` (drops a ``.pyc`` when another package has its
    source), ``--layering single``, a ``conda`` package (conda-pack's top-layer scripts depend on it), or a record
    without a sha256."""
    if opts.layering != "packages" or opts.compile_pyc or opts.trim not in ("none", "safe") \
            or has_pip(spec, subdir, opts):
        return None
    if any(not r.sha256 for r in records) or any(r.name == "conda" for r in records):
        return None
    python = next((r for r in records if r.name == "python"), None)
    clamp = given_epoch(opts.lock)
    options: dict[str, str | list[int]] = {"compression": opts.compression, "trim": opts.trim,
                                           "owner": list(_owner(spec, opts))}
    keys = {}
    for r, portable in zip(records, _portable_records(spec, records, opts)):
        py = [python.version, python.sha256 or ""] if python is not None and r.noarch == "python" else None
        keys[r.dist_name] = layer_memo.package_key(portable, prefix=spec.image.prefix, epoch=package_epoch(r, clamp),
                                                   python=py, options=options, layer_format=LAYER_FORMAT)
    return keys


def _by_package(entries: list[TarEntry], owner: dict[str, str], dists: Iterable[str]
                ) -> tuple[dict[str, list[TarEntry]], list[TarEntry]]:
    """Entries per owning package (for ``dists``), and the rest (environment-wide files)."""
    by: dict[str, list[TarEntry]] = {d: [] for d in dists}
    rest: list[TarEntry] = []
    for e in entries:
        d = owner.get(e.path)
        (by[d] if d in by else rest).append(e)
    return by, rest


def _package_facts(entries: list[TarEntry], owner: dict[str, str], arcroot: str, records: list[PackageRecord],
                   report: InstallReport, opts: BuildOptions, keys: dict[str, str]
                   ) -> tuple[dict[str, layer_memo.PackageFacts], dict[str, list[TarEntry]], list[TarEntry]]:
    """Each installed package's facts (layers/memo.py) from its packed, untrimmed entries, each package's trimmed
    entries and the environment-wide (untrimmed) entries.

    A package whose record does not say noarch: python but whose metadata does is not remembered: its key lacks
    the python it was laid out for."""
    root = arcroot + "/"
    by, rest = _by_package(entries, owner, (r.dist_name for r in records))
    facts: dict[str, layer_memo.PackageFacts] = {}
    kept_by: dict[str, list[TarEntry]] = {}
    post: dict[str, list[str]] = {}
    for path in report.post_link_scripts:
        d = owner.get(root + path)
        if d is not None:
            post.setdefault(d, []).append(path)
    for r in records:
        d = r.dist_name
        if d not in keys or (d in report.noarch_python and r.noarch != "python"):
            continue
        kept, trimmed = trim_entries(by[d], arcroot, opts.trim)
        kept_by[d] = kept
        scripts = {}
        for e in kept:
            rel = e.path[len(root):]
            if e.kind == "file" and rel.startswith(ACTIVATE_DIR):
                scripts[rel] = entry_bytes(e)
        facts[d] = layer_memo.PackageFacts(
            size=sum(e.size for e in kept if e.kind == "file"),
            paths=tuple(sorted(e.path[len(root):] for e in by[d] if e.kind != "dir")),
            scripts=scripts, post_link=tuple(sorted(post.get(d, ()))),
            trimmed={rule: (n, b) for rule, (n, b) in trimmed.removed.items()},
            site_packages=report.site_packages if r.name == "python" else None)
    return facts, kept_by, rest


def _env_layers_by_package(spec: BuildSpec, records: list[PackageRecord], subdir: str, opts: BuildOptions,
                           reporter: Reporter, session: requests.Session, mtime: int, warnings: list[str],
                           base_layers: int, report_trim: dict[str, Any], keys: dict[str, str],
                           base: Image | None, activated: list[Activation] | None
                           ) -> list[tuple[LayerPlan, LayerInfo, Path]] | None:
    """The per-package path: only the packages whose layers are not remembered are fetched and laid out (streamed
    from their archives, or extracted, installed with the whole environment's history and python, and packed);
    every other layer is a remembered blob. A first build remembers nothing and lays out every package. None when
    the full path must run instead (packages that ship the same path, or one beneath another's link).

    The bytes are those of the full path: a package's layer depends on its key alone (``dated_entries``, per-package
    trim rules, records without requested specs), and the top layer (history, conda-pack's scripts, activation) is
    made from the whole environment as the full path makes it."""
    facts = {d: layer_memo.lookup_package(k) for d, k in keys.items()}
    known_paths: dict[str, str] = {}
    for d, f in facts.items():
        for p in f.paths if f is not None else ():
            if known_paths.setdefault(p, d) != d:
                return None  # two packages ship one path: which copy wins needs the full install
    todo = {d for d, f in facts.items() if f is None}
    for _round in range(3):  # a second round when a changed package joins a group layer whose others are remembered
        subset = [r for r in records if r.dist_name in todo]
        # in the cache, not $TMPDIR: the packages' payload is spooled there (as large as the environment)
        with held_temp_dir("stage-", cache_dir(SPOOL_DIR)) as tmp:
            staged = _stage_subset(spec, records, subset, subdir, opts, reporter, session, mtime, keys, facts,
                                   Path(tmp))
            if staged is None:
                return None
            todo |= set(staged.facts)
            facts.update(staged.facts)
            sizes = {d: f.size for d, f in facts.items() if f is not None}
            if len(sizes) != len(records) or not _independent(facts):
                return None
            plans = assign_layers(records, sizes, opts.layering, opts.max_layers, base_layers)
            by, _ = _by_package(staged.entries, staged.owner, todo)
            missing: set[str] = set()
            ready: list[tuple[LayerPlan, tuple[LayerInfo, Path] | None]] = []
            for plan in plans:
                hit = layer_memo.lookup_layer(layer_memo.members_key([keys[d] for d in plan.packages]))
                if hit is None:
                    missing |= set(plan.packages) - todo
                    plan.entries = [e for d in plan.packages for e in by[d]] if set(plan.packages) <= todo else []
                ready.append((plan, hit))
            if missing:
                todo |= missing
                continue
            post = sorted(p for f in facts.values() if f is not None for p in f.post_link)
            if post:
                warnings.append("post-link scripts not run: " + ", ".join(post))
            warnings.extend(staged.warnings)
            out = _assemble(spec, opts, reporter, mtime, warnings, report_trim, keys, facts, ready, staged, base,
                            activated)
            _store_facts(keys, {d: f for d, f in facts.items() if f is not None and d in todo})
            return out
    return None


def _independent(facts: Mapping[str, layer_memo.PackageFacts | None]) -> bool:
    """No path is shipped by two packages or lies beneath another package's path (a link to a directory): each
    package's layer is then what it would be in any environment."""
    paths = sorted((p, d) for d, f in facts.items() if f is not None for p in f.paths)
    for (a, da), (b, db) in zip(paths, paths[1:]):
        if a == b and da != db:
            return False
    names = {p for p, _ in paths}
    return not any(parent in names for p in names for parent in path_parents(p))


@dataclass
class _Staged:
    """Some packages installed and packed for the per-package path: their entries (trimmed, dated), who owns
    each path, their facts, the environment-wide entries (trimmed) and what trimming them removed."""

    entries: list[TarEntry]
    owner: dict[str, str]
    facts: dict[str, layer_memo.PackageFacts]
    top: list[TarEntry]
    top_trimmed: dict[str, list[int]]
    warnings: list[str]


def _stage_subset(spec: BuildSpec, records: list[PackageRecord], subset: list[PackageRecord], subdir: str,
                  opts: BuildOptions, reporter: Reporter, session: requests.Session, mtime: int,
                  keys: dict[str, str], facts: dict[str, layer_memo.PackageFacts | None], tmp: Path
                  ) -> _Staged | None:
    """Lay ``subset`` out for the per-package path: each plain package streamed from its archive
    (layers/stream.py), the others extracted, installed and packed (:func:`_install_subset`, which also makes the
    environment-wide files). None when the full path must run instead.

    A noarch: python package that does not stream is installed with its python (the reference path places it by
    the python it finds), so that python is installed, not streamed."""
    arcroot = spec.image.prefix.strip("/")
    portable = dict(zip((r.dist_name for r in records), _portable_records(spec, records, opts)))
    python = next((r for r in records if r.name == "python"), None)
    files, streamed = _fetch_stream(subset, portable, spec.image.prefix, python, facts, opts, reporter, session, tmp)
    rest = [r for r in subset if r.dist_name not in streamed]
    if python is not None and any(r.noarch == "python" for r in rest) and python not in rest:
        streamed.pop(python.dist_name, None)
        rest = [r for r in records if r in rest or r is python]
    done = [r for r in subset if r.dist_name in streamed]
    owner = {e.path: s.dist for s in streamed.values() for e in s.entries}
    if len(owner) != sum(len(s.entries) for s in streamed.values()):
        return None  # two packages ship one path: which copy wins needs the full install
    report = InstallReport(post_link_scripts=[p for s in streamed.values() for p in s.post_link],
                           noarch_python={s.dist for s in streamed.values() if s.noarch_python},
                           site_packages=next((s.site_packages for s in streamed.values() if s.site_packages), None))
    new, kept, _ = _package_facts([e for s in streamed.values() for e in s.entries], owner, arcroot, done, report,
                                      opts, keys)
    if len(new) != len(done):
        return None
    installed = _install_subset(spec, records, rest, subdir, opts, reporter, session, mtime, keys, {**facts, **new},
                                tmp, files)
    if installed is None:
        return None
    entries = dated_entries([e for d in sorted(kept) for e in kept[d]], owner, done, given_epoch(opts.lock))
    return dataclasses.replace(installed, entries=installed.entries + entries, owner={**installed.owner, **owner},
                               facts={**installed.facts, **new})


def _fetch_stream(subset: list[PackageRecord], portable: Mapping[str, PackageRecord], prefix: str,
                  python: PackageRecord | None, facts: Mapping[str, layer_memo.PackageFacts | None],
                  opts: BuildOptions, reporter: Reporter, session: requests.Session, tmp: Path
                  ) -> tuple[dict[str, Path], dict[str, StreamedPackage]]:
    """Fetch ``subset`` and stream its plain packages into layer entries, each as soon as its file is verified, in
    worker processes (tar parsing, hashing and prefix rewriting hold the GIL): the files (url -> file) and the
    streamed packages (dist name -> entries and facts). A noarch: python package is placed by the python package's
    site-packages: remembered, or known once python itself has streamed (if it did not, neither do they)."""
    if not subset:
        return {}, {}
    version = python_version_of(portable.values())
    spool = tmp / "spool"
    spool.mkdir()
    number = {r.dist_name: i for i, r in enumerate(subset)}
    known = facts.get(python.dist_name) if python is not None and python not in subset else None
    site = known.site_packages if known is not None else None
    started: dict[str, Future[StreamedPackage | None]] = {}
    lock = threading.Lock()
    out: dict[str, StreamedPackage] = {}
    with process_pool(opts.jobs, len(subset), "stream") as pool:
        queue = LargestFirst(pool, workers(opts.jobs, len(subset), cpu_bound=True))

        def start(r: PackageRecord, path: Path, where: str | None) -> None:
            fut = queue.submit(path.stat().st_size, stream_package, path, portable[r.dist_name], prefix,
                               spool / str(number[r.dist_name]), version, where)
            with lock:
                started[r.dist_name] = fut

        def arrived(r: PackageRecord, path: Path) -> None:
            if r.noarch != "python" or site is not None:
                start(r, path, site)

        try:
            files = _fetch(subset, opts, reporter, session, arrived)
            with reporter.phase("stream", _plural(len(subset), "package")):
                streaming = reporter.task("stream", len(subset), "packages")
                for r in subset:
                    if r.dist_name in started:
                        got = started[r.dist_name].result()
                        streaming.advance(1)
                        if got is not None:
                            out[r.dist_name] = got
                late = [r for r in subset if r.dist_name not in started]
                if late and python is not None and python.dist_name in out:
                    for r in late:
                        start(r, files[r.url], out[python.dist_name].site_packages)
                    for r in late:
                        got = started[r.dist_name].result()
                        streaming.advance(1)
                        if got is not None:
                            out[r.dist_name] = got
        finally:
            queue.close(cancel=True)  # nothing is queued after a normal end; after a failure nothing more starts
    return files, out


def _install_subset(spec: BuildSpec, records: list[PackageRecord], subset: list[PackageRecord], subdir: str,
                    opts: BuildOptions, reporter: Reporter, session: requests.Session, mtime: int,
                    keys: dict[str, str], facts: dict[str, layer_memo.PackageFacts | None], tmp: Path,
                    files: Mapping[str, Path] | None = None) -> _Staged | None:
    """Fetch, extract, install and pack ``subset`` as part of the whole environment ``records`` (its history, its
    python and that python's site-packages), in ``tmp``. None when the full path must run instead: a path
    another package also ships, or a package that is noarch: python without its record saying so."""
    prefix = spec.image.prefix
    arcroot = prefix.strip("/")
    extracted = _fetch_extract(subset, opts, reporter, session, files) if subset else []
    portable = dict(zip((r.dist_name for r in records), _portable_records(spec, records, opts)))
    python = next((r for r in records if r.name == "python"), None)
    known_python = facts.get(python.dist_name) if python is not None else None
    staging = tmp / "prefix"
    with reporter.phase("install", f"{_plural(len(subset), 'package')} of {len(records)} into {prefix}"):
        installing = reporter.task("install", len(subset), "packages")
        report = install(list(zip((portable[r.dist_name] for r in subset), extracted)), staging, prefix,
                         progress=lambda _r: installing.advance(1), requested_specs=_requested(spec, subdir, records),
                         history_time=mtime, hardlink=True, specs_in_records=False,
                         environment=[portable[r.dist_name] for r in records],
                         site_packages=known_python.site_packages if known_python is not None else None,
                         record_plain=True)
    if report.clobbered or any(r.dist_name in report.noarch_python and r.noarch != "python" for r in subset):
        return None
    with reporter.phase("pack"):
        packed = pack_prefix(staging, prefix, report.sources, report.standing)
        names = {r.dist_name for r in subset}
        others = {p for d, f in facts.items() if f is not None and d not in names for p in f.paths}
        root = arcroot + "/"
        if any(e.kind != "dir" and packed.owner.get(e.path) in names and e.path[len(root):] in others
               for e in packed.entries):
            return None
        new, kept, rest = _package_facts(packed.entries, packed.owner, arcroot, subset, report, opts, keys)
        if len(new) != len(subset):
            return None
        top, top_trimmed = trim_entries(rest, arcroot, opts.trim)
        entries = [e for d in sorted(kept) for e in kept[d]]
        entries = dated_entries(entries, packed.owner, subset, given_epoch(opts.lock))
    return _Staged(entries=entries, owner=packed.owner, facts=new,
                   top=top, top_trimmed=top_trimmed.removed, warnings=list(packed.warnings))


def _assemble(spec: BuildSpec, opts: BuildOptions, reporter: Reporter, mtime: int, warnings: list[str],
              report_trim: dict[str, Any], keys: dict[str, str],
              facts: dict[str, layer_memo.PackageFacts | None],
              ready: list[tuple[LayerPlan, tuple[LayerInfo, Path] | None]], staged: _Staged, base: Image | None,
              activated: list[Activation] | None) -> list[tuple[LayerPlan, LayerInfo, Path]]:
    """The per-package path's layers in the full path's order: remembered package layers as they are, the others
    compressed now, then the top layer (history, conda-pack's scripts, the activation wrapper)."""
    known = [f for f in facts.values() if f is not None]
    trimmed = TrimReport()
    for removed in [*(f.trimmed for f in known), {k: tuple(v) for k, v in staged.top_trimmed.items()}]:
        for rule, (n, b) in removed.items():
            was = trimmed.removed.get(rule, [0, 0])
            trimmed.removed[rule] = [was[0] + n, was[1] + b]
    if trimmed.removed:
        report_trim.update(trimmed.to_json())
    top = staged.top
    if base is not None and activated is not None:
        scripts = {k: v for f in known for k, v in f.scripts.items()}
        act, wrapper = activate_environment(top, spec, base, warnings, scripts)
        top = top + wrapper
        activated.append(act)
    plans = [plan for plan, _ in ready]
    if top:
        plans.append(LayerPlan(name="environment files", entries=top))
    todo = [plan for plan, hit in ready if hit is None] + plans[len(ready):]
    check_hardlinks(todo)
    known = {id(plan): layer_memo.members_key([keys[d] for d in plan.packages]) for plan in todo if plan.packages}
    built = {id(plan): (info, blob) for plan, info, blob in _compress(todo, spec, opts, reporter, mtime, known)}
    for plan in todo:
        if plan.packages:
            layer_memo.store_layer(layer_memo.members_key([keys[d] for d in plan.packages]), built[id(plan)][0])
    remembered = {id(plan): hit for plan, hit in ready if hit is not None}
    return [(plan, *(built[id(plan)] if id(plan) in built else remembered[id(plan)])) for plan in plans]


LAYER_FORMAT = 2  # bump when the bytes a layer's entries turn into change (tar writer, compression settings)


def dated_entries(entries: list[TarEntry], owner: dict[str, str], records: list[PackageRecord],
                  clamp: int | None) -> list[TarEntry]:
    """Each package's entries dated by that package's own time (``resolve.package_epoch``); environment-wide files
    keep the image time. A package's layer is then the same bytes in every environment that has it, whatever
    else changed (layer format 2; format 1 dated every file with the environment's newest package)."""
    when = {r.dist_name: package_epoch(r, clamp) for r in records}
    out = []
    for e in entries:
        dist = owner.get(e.path)
        out.append(dataclasses.replace(e, mtime=when[dist]) if dist in when else e)
    return out


def _owner(spec: BuildSpec, opts: BuildOptions) -> tuple[int, int]:
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


def build_image(spec: BuildSpec, opts: BuildOptions, reporter: Reporter) -> BuildResult:
    """The whole build; nothing appears at ``opts.output`` unless everything succeeded."""
    t_start = time.perf_counter()
    if opts.output is not None:
        _check_output(opts.output)
    _owner(spec, opts)  # a bad --chown / image.owner fails before the slow work
    session = default_session(opts)
    images = []
    mtimes: list[int] = []
    results: list[PlatformResult] = []
    epochs: list[int] = []
    for subdir in opts.platforms:
        records, mtime = platform_records(spec, subdir, opts, reporter, session)
        warnings: list[str] = []
        platform = platform_for_subdir(subdir)
        with reporter.phase("base", spec.image.base):
            img = open_image(spec.image.base, platform, dataclasses.replace(opts.registry, jobs=opts.jobs))
        if opts.lock is not None:
            check_base(opts.lock, subdir, img)
            other_compressor = compressor_warning(opts)
            if other_compressor is not None:
                warnings.append(other_compressor)
        trimmed: dict[str, Any] = {}
        base_layers = [{"digest": la.descriptor.digest, "size": la.descriptor.size, "diff_id": la.diff_id}
                       for la in img.layers]
        activated: list[Activation] = []
        wheels: list[WheelRecord] = []
        layers = _env_layers(spec, records, subdir, opts, reporter, session, mtime, warnings, len(img.layers),
                             trimmed, wheels, base=img, activated=activated)
        with reporter.phase("image"):
            for plan, info, blob in layers:
                img = oci_image.append_layer(
                    img, oci_image.Descriptor(info.media_type, info.digest, info.size), info.diff_id,
                    file_opener(blob),
                    history={"created": _rfc3339(mtime), "created_by": f"oci-conda: {plan.name}",
                             "comment": " ".join(plan.packages[:50])},
                )
            pspec = with_created(spec, mtime) if opts.created_label else spec
            img = oci_image.set_config(img, **_config_changes(pspec, img, mtime, activated[0] if activated else None))
        mtimes.append(mtime)
        images.append(img)
        epochs.append(mtime)
        for w in warnings:
            reporter.warn(w)
        results.append(PlatformResult(subdir=subdir, manifest_digest="", packages=records, warnings=warnings,
                                      layers=[{"digest": info.digest, "size": info.size, "diff_id": info.diff_id,
                                               "uncompressed_size": info.uncompressed_size, "source": plan.name,
                                               "packages": plan.packages}
                                              for plan, info, _ in layers], trimmed=trimmed, wheels=wheels,
                                      base_layers=base_layers,
                                      activation=activated[0].env if activated else {}))
    annotations = dict(spec.image.annotations)
    if opts.created_label and mtimes:
        annotations[CREATED] = _rfc3339(max(mtimes))
    digest, manifest_digests, pushed = "", [], None
    tags = opts.tags or image_tags((), spec.image.tag, spec.name, f"{spec.path}: image.tag")
    sboms: list[Sbom] = []
    if opts.sbom:
        with reporter.phase("sbom", ",".join(opts.sbom)):
            sboms = image_sboms(images, epochs, opts.push or tags[0], opts.sbom, annotations)
    if opts.output is not None:
        with reporter.phase("write", str(opts.output)):
            written = write_output(opts.output, images, tag=list(tags), annotations=annotations,
                                   attached=[s.artifact for s in sboms])
        digest, manifest_digests = written.digest, written.manifest_digests
    if opts.push:
        with reporter.phase("push", opts.push):
            registry = dataclasses.replace(opts.registry, jobs=opts.jobs)
            refs = push_refs(opts.push, opts.tags)
            pushed = push_images(images, refs[0], annotations=annotations, options=registry)
            for ref in refs[1:]:  # every blob is there now: each further tag is a manifest PUT
                push_images(images, ref, annotations=annotations, options=registry)
        digest, manifest_digests = digest or pushed.digest, manifest_digests or pushed.manifests
        if sboms:
            with reporter.phase("attach", opts.push):
                push_sboms(sboms, opts.push, dataclasses.replace(opts.registry, jobs=opts.jobs))
    files = write_beside(opts.output, sboms) if opts.output is not None and sboms else [None] * len(sboms)
    for res, mdigest in zip(results, manifest_digests):
        res.manifest_digest = mdigest
    reporter.timings["total"] = time.perf_counter() - t_start
    size = _tree_size(opts.output) if opts.output is not None else 0
    return BuildResult(output=opts.output, digest=digest, platforms=results, timings=dict(reporter.timings),
                       output_size=size, pushed=pushed.to_json() if pushed is not None else None,
                       sboms=[{**s.to_json(), "file": str(f) if f else None} for s, f in zip(sboms, files)])


def _config_changes(spec: BuildSpec, img: Image, mtime: int, activated: Activation | None = None
                    ) -> dict[str, Any]:
    """The config the environment sets: Env in the order PATH/CONDA_PREFIX, what activation sets, the file's
    ``variables``, ``image.env``; the activation wrapper (``image.activate: script``) before any entrypoint."""
    prefix = spec.image.prefix
    env = [f"PATH={prefix}/bin", f"CONDA_PREFIX={prefix}"]
    if spec.name:
        env.append(f"CONDA_DEFAULT_ENV={spec.name}")
    if activated is not None:
        env += [f"{k}={v}" for k, v in activated.env.items()]
    env += [f"{k}={v}" for k, v in spec.variables]
    env += [f"{k}={v}" for k, v in spec.image.env]
    labels = dict(spec.image.labels)
    entrypoint = list(spec.image.entrypoint) if spec.image.entrypoint is not None else None
    if activated is not None and activated.wrapper:
        inner = entrypoint if entrypoint is not None else list(img.config.get("config", {}).get("Entrypoint") or [])
        entrypoint = [f"{prefix}/{WRAPPER_PATH}", *inner]
    return {
        "env": env,
        "entrypoint": entrypoint,
        "cmd": list(spec.image.cmd) if spec.image.cmd is not None else None,
        "workdir": spec.image.workdir,
        "user": spec.image.user,
        "labels": labels or None,
        "created": _rfc3339(mtime),
    }


def with_created(spec: BuildSpec, mtime: int) -> BuildSpec:
    """``spec`` with the ``org.opencontainers.image.created`` label (the build time, as the config's ``created``)."""
    image = dataclasses.replace(spec.image, labels=merge(spec.image.labels, ((CREATED, _rfc3339(mtime)),)))
    return dataclasses.replace(spec, image=image)


def activate_environment(entries: list[TarEntry], spec: BuildSpec, base: Image, warnings: list[str],
                         known: Mapping[str, bytes] | None = None) -> tuple[Activation, list[TarEntry]]:
    """What the environment's ``etc/conda/activate.d/*.sh`` (and ``conda-meta/state``) set, evaluated statically;
    with ``image.activate: script`` and a shell in the base, the wrapper that sources the other scripts at start.

    ``known``: scripts of packages that are not among ``entries`` (the layer memo remembered them)."""
    arcroot = spec.image.prefix.strip("/") + "/"
    scripts: dict[str, bytes] = dict(known or {})
    state: bytes | None = None
    for e in entries:
        if e.kind != "file" or not e.path.startswith(arcroot):
            continue
        rel = e.path[len(arcroot):]
        if rel.startswith(ACTIVATE_DIR) or rel == STATE_FILE:
            data = entry_bytes(e)
            if rel == STATE_FILE:
                state = data
            else:
                scripts[rel] = data
    base_env = dict(item.split("=", 1) for item in base.config.get("config", {}).get("Env") or [] if "=" in item)
    act = evaluate(scripts, spec.image.prefix, base_env, state)
    wrapper: list[TarEntry] = []
    if act.dynamic_scripts:
        if spec.image.activate == "script" and has_shell(base):
            data = wrapper_script(spec.image.prefix, act.dynamic_scripts)
            wrapper.append(TarEntry(arcroot + WRAPPER_PATH, "file", 0o755, size=len(data), data=data))
            act.wrapper = True
        else:
            why = ("the base image has no /bin/sh" if spec.image.activate == "script" else
                   "set image.activate: script to source them at start (needs /bin/sh in the base)")
            warnings.append("activation scripts not applied (they are not static): "
                            f"{', '.join(act.dynamic_scripts)}; {why}")
    return act, wrapper


def has_shell(img: Image) -> bool:
    """Whether the image's layers provide ``/bin/sh`` (a file or a link; ``/bin`` may link to ``usr/bin``)."""
    import zstandard

    names: set[str] = set()
    for layer in img.layers:
        with layer.opener() as raw:
            stream = raw
            if layer.descriptor.media_type.endswith("+zstd"):
                stream = zstandard.ZstdDecompressor().stream_reader(raw)
            with tarfile.open(fileobj=stream, mode="r|*") as tf:
                for m in tf:
                    names.add(m.name.lstrip("./").lstrip("/"))
    return bool({"bin/sh", "usr/bin/sh"} & names)


def push_refs(push: str, tags: tuple[str, ...]) -> list[str]:
    """Where ``--push`` goes: its own reference (unless it names no tag and ``--tag`` gives some), then the same
    repository under the tag part of every ``--tag``."""
    ref = parse_reference(push)
    refs = [push] if ref.tag or ref.digest or not tags else []
    for t in tags:
        other = f"{ref.name}:{tag_part(t)}"
        if tag_part(t) != ref.tag and other not in refs:
            refs.append(other)
    return refs


def _rfc3339(epoch: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

