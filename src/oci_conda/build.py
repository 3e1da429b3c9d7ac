"""Run the stages in order for each platform. The only module that knows the whole pipeline.

records (resolve.py: solved, or from a lock) → fetch → per package: stream its archive into layer entries
(layers/stream.py), or extract → install (staging prefix) → conda-pack → trim/pyc → layers → image(s) → a sink (OCI
archive, layout directory, registry)

The per-package path (only the packages whose layers are not remembered are laid out) is stage.py; both paths write
their layers through layer_blobs.py.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .activation import WRAPPER_PATH, Activation
from .cache import held_temp_dir
from .conda.install import install
from .conda.records import PackageRecord
from .credentials import redact_url
from .errors import OutputError
from .layer_blobs import LAYER_FORMAT, compress_layers, layer_owner
from .layers import memo as layer_memo
from .layers.pack import pack_prefix
from .layers.plan import LayerPlan, plan_layers
from .layers.pyc import compile_pyc
from .layers.trim import trim_entries
from .layers.wheels import merge_wheel_plans, wheel_layers
from .lockfile import check_base
from .oci import image as oci_image
from .oci.blobs import file_opener
from .oci.image import Image, canonical_json
from .oci.output import write_output
from .oci.registry.push import push_images
from .oci.source import open_image
from .oci.tar import LayerInfo
from .options import BuildOptions, compressor_warning
from .platforms import platform_for_subdir
from .image_labels import CREATED, merge
from .image_names import image_tags, tag_part
from .oci.registry.reference import parse_reference
from .progress import Reporter, human_size, plural
from .pypi.records import WheelRecord
from .resolve import default_session, given_epoch, has_pip, pip_wheels, platform_records
from .sbom.attach import Sbom, image_sboms, push_sboms, write_beside
from .spec import BuildSpec
from .stage import (activate_environment, dated_entries, fetch_extract, layers_by_package, package_facts,
                    package_keys, portable_records, requested_specs, store_facts)

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
            pip = f" + {plural(len(p.wheels), 'pip package')}" if p.wheels else ""
            lines.append(f"{p.subdir}: {plural(len(p.packages), 'package')}{pip}, {plural(n, 'layer')}{base}, "
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
    keys = package_keys(spec, records, subdir, opts)
    out = None
    if keys is not None:
        out = layers_by_package(spec, records, subdir, opts, reporter, session, mtime, warnings, base_layers,
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
        records=portable_records(spec, records, opts), requested=requested_specs(spec, subdir, records),
        prefix=spec.image.prefix, subdir=subdir, mtime=mtime, base_layers=base_layers,
        options={"compression": opts.compression, "layering": opts.layering, "max_layers": opts.max_layers,
                 "trim": opts.trim, "compile_pyc": opts.compile_pyc, "owner": list(layer_owner(spec, opts)),
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

    With ``keys`` (the per-package memo applies, see :func:`package_keys`) what each package's layer needs is
    remembered, so that later builds install only the packages whose layers they lack."""
    extracted = fetch_extract(records, opts, reporter, session)
    fetched_wheels = pip_wheels(spec, subdir, records, extracted, opts, reporter, session)
    if pip_out is not None:
        pip_out.extend(w.record for w in fetched_wheels)
    prefix = spec.image.prefix
    with held_temp_dir("stage-") as tmp:  # held: a later run sweeps it only after a kill -9
        staging = Path(tmp) / "prefix"
        with reporter.phase("install", f"into {prefix}"):
            installing = reporter.task("install", len(records), "packages")
            as_recorded = portable_records(spec, records, opts)
            report = install(list(zip(as_recorded, extracted)), staging, prefix, progress=lambda _r: installing.advance(1),
                             requested_specs=requested_specs(spec, subdir, records), history_time=mtime, hardlink=True,
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
                learnt = package_facts(packed.entries, packed.owner, arcroot, records, report, opts, keys)[0]
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
        out = compress_layers(plans, spec, opts, reporter, mtime)
    if keys is not None and not report.clobbered:
        store_facts(keys, learnt)
        for plan, info, _blob in out:
            if plan.packages and all(d in keys for d in plan.packages):
                layer_memo.store_layer(layer_memo.members_key([keys[d] for d in plan.packages]), info)
    return out


def build_image(spec: BuildSpec, opts: BuildOptions, reporter: Reporter) -> BuildResult:
    """The whole build; nothing appears at ``opts.output`` unless everything succeeded."""
    t_start = time.perf_counter()
    if opts.output is not None:
        _check_output(opts.output)
    layer_owner(spec, opts)  # a bad --chown / image.owner fails before the slow work
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

