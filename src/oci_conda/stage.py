"""The per-package path to an environment's layers: a package's layer depends on that package alone.

When :func:`package_keys` says this environment's package layers are each a function of one package,
:func:`layers_by_package` reuses every layer the memo (layers/memo.py) remembers and lays out only the other
packages: fetched, then streamed from their archives (layers/stream.py), or extracted, installed with the whole
environment's history and python, and packed; then compressed (layer_blobs.py). The bytes are those of build.py's
full path, which this module's shared helpers (below) also serve.
"""

from __future__ import annotations

import dataclasses
import tarfile
import threading
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .activation import ACTIVATE_DIR, STATE_FILE, WRAPPER_PATH, Activation, evaluate, wrapper_script
from .cache import SPOOL_DIR, cache_dir, held_temp_dir
from .conda.channel import resolve_channels
from .conda.fetch import fetch_packages
from .conda.install import InstallReport, install, python_version_of
from .conda.matchspec import MatchSpec
from .conda.package import extract_package
from .conda.records import PackageRecord
from .layer_blobs import LAYER_FORMAT, compress_layers, layer_owner
from .layers import memo as layer_memo
from .layers.pack import pack_prefix, path_parents
from .layers.plan import LayerPlan, assign_layers, check_hardlinks
from .layers.stream import StreamedPackage, stream_package
from .layers.trim import TrimReport, trim_entries
from .layers.wheels import extraction_key
from .oci.image import Image
from .oci.tar import LayerInfo, TarEntry, entry_bytes
from .options import BuildOptions
from .parallel import LargestFirst, process_pool, workers
from .progress import Reporter, plural
from .resolve import given_epoch, has_pip, package_epoch
from .spec import BuildSpec

if TYPE_CHECKING:
    import requests


def package_keys(spec: BuildSpec, records: list[PackageRecord], subdir: str, opts: BuildOptions
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
                                           "owner": list(layer_owner(spec, opts))}
    keys = {}
    for r, portable in zip(records, portable_records(spec, records, opts)):
        py = [python.version, python.sha256 or ""] if python is not None and r.noarch == "python" else None
        keys[r.dist_name] = layer_memo.package_key(portable, prefix=spec.image.prefix, epoch=package_epoch(r, clamp),
                                                   python=py, options=options, layer_format=LAYER_FORMAT)
    return keys


def layers_by_package(spec: BuildSpec, records: list[PackageRecord], subdir: str, opts: BuildOptions,
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
            store_facts(keys, {d: f for d, f in facts.items() if f is not None and d in todo})
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
    portable = dict(zip((r.dist_name for r in records), portable_records(spec, records, opts)))
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
    new, kept, _ = package_facts([e for s in streamed.values() for e in s.entries], owner, arcroot, done, report,
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
            with reporter.phase("stream", plural(len(subset), "package")):
                streaming = reporter.task("stream", len(subset), "packages")

                def collect(rs: list[PackageRecord]) -> None:
                    for r in rs:
                        got = started[r.dist_name].result()
                        streaming.advance(1)
                        if got is not None:
                            out[r.dist_name] = got

                collect([r for r in subset if r.dist_name in started])
                late = [r for r in subset if r.dist_name not in started]
                if late and python is not None and python.dist_name in out:
                    for r in late:
                        start(r, files[r.url], out[python.dist_name].site_packages)
                    collect(late)
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
    extracted = fetch_extract(subset, opts, reporter, session, files) if subset else []
    portable = dict(zip((r.dist_name for r in records), portable_records(spec, records, opts)))
    python = next((r for r in records if r.name == "python"), None)
    known_python = facts.get(python.dist_name) if python is not None else None
    staging = tmp / "prefix"
    with reporter.phase("install", f"{plural(len(subset), 'package')} of {len(records)} into {prefix}"):
        installing = reporter.task("install", len(subset), "packages")
        report = install(list(zip((portable[r.dist_name] for r in subset), extracted)), staging, prefix,
                         progress=lambda _r: installing.advance(1),
                         requested_specs=requested_specs(spec, subdir, records),
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
        new, kept, rest = package_facts(packed.entries, packed.owner, arcroot, subset, report, opts, keys)
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
    built = {id(plan): (info, blob) for plan, info, blob in compress_layers(todo, spec, opts, reporter, mtime, known)}
    for plan in todo:
        if plan.packages:
            layer_memo.store_layer(layer_memo.members_key([keys[d] for d in plan.packages]), built[id(plan)][0])
    remembered = {id(plan): hit for plan, hit in ready if hit is not None}
    return [(plan, *(built[id(plan)] if id(plan) in built else remembered[id(plan)])) for plan in plans]


def _by_package(entries: list[TarEntry], owner: dict[str, str], dists: Iterable[str]
                ) -> tuple[dict[str, list[TarEntry]], list[TarEntry]]:
    """Entries per owning package (for ``dists``), and the rest (environment-wide files)."""
    by: dict[str, list[TarEntry]] = {d: [] for d in dists}
    rest: list[TarEntry] = []
    for e in entries:
        d = owner.get(e.path)
        (by[d] if d in by else rest).append(e)
    return by, rest


# ---------------------------------------------------------------------------------------------------------------
# shared with build.py's full path, which imports them from here (imports point down, never back up): both paths must
# lay a package out identically (the same records, dates, facts and activation), so they use one copy of each step


def package_facts(entries: list[TarEntry], owner: dict[str, str], arcroot: str, records: list[PackageRecord],
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


def store_facts(keys: Mapping[str, str], facts: Mapping[str, layer_memo.PackageFacts]) -> None:
    """Remember what was learnt of each package, once its layers are written (a refused build stores nothing)."""
    for d, f in facts.items():
        layer_memo.store_package(keys[d], f)


def dated_entries(entries: list[TarEntry], owner: dict[str, str], records: list[PackageRecord],
                  clamp: int | None) -> list[TarEntry]:
    """Each package's entries dated by that package's own time (``resolve.package_epoch``); environment-wide files
    keep the image time. A package's layer is then the same bytes in every environment that has it, whatever
    else changed (layer format 2; format 1 dated every file with the environment's newest package)."""
    when = {r.dist_name: package_epoch(r, clamp) for r in records}
    out = []
    for e in entries:
        dist = owner.get(e.path)
        out.append(e.with_mtime(when[dist]) if dist in when else e)
    return out


def _fetch(records: list[PackageRecord], opts: BuildOptions, reporter: Reporter, session: requests.Session,
           arrived: Callable[[PackageRecord, Path], None] | None = None) -> dict[str, Path]:
    """Download (or find in the cache, verified) ``records``' package files: url -> file. ``arrived``: called with
    each file as soon as it is verified."""
    with reporter.phase("fetch", plural(len(records), "package")):
        download = reporter.task("download", len({r.url for r in records}), "packages",
                                 sizes={r.url: r.size for r in records})
        return fetch_packages(records, session, jobs=opts.jobs, offline=opts.offline,
                              progress=lambda rec, done, total: download.file(rec.url, done, total), arrived=arrived)


def fetch_extract(records: list[PackageRecord], opts: BuildOptions, reporter: Reporter,
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


def portable_records(spec: BuildSpec, records: list[PackageRecord], opts: BuildOptions) -> list[PackageRecord]:
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


def requested_specs(spec: BuildSpec, subdir: str, records: list[PackageRecord]) -> dict[str, str]:
    """name -> the spec the user wrote for it (conda-meta ``requested_spec`` and history)."""
    names = {r.name for r in records}
    out = {}
    for s in spec.specs_for(subdir):
        name = MatchSpec(s).name
        if name in names:
            out[name] = s
    return out


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
