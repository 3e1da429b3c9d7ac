"""``oci-conda inspect`` and ``oci-conda diff``: what an image holds, read from the image itself.

Platforms, layers (size, and the conda packages whose ``conda-meta/*.json`` each layer carries), config, and the
package list the image's ``conda-meta`` gives after all layers are applied (whiteouts honoured). Labels and
annotations are never trusted for the package list. Works on any OCI archive or layout, not just ours.
Beside conda's: the pip packages, i.e. every ``site-packages/*.dist-info`` whose ``METADATA`` no conda record lists
(what ``conda list`` shows as from PyPI).
"""

from __future__ import annotations

import gzip
import re
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, BinaryIO, Callable, Iterable, Mapping

from .errors import ImageError
from .limits import LimitError, loads_json
from .oci.blobs import digest_bytes
from .oci.image import INDEX_TYPES, MANIFEST_TYPES, MEDIA_TYPE_MANIFEST, Descriptor
from .oci.local import LocalSource, open_local
from .oci.artifact import ArtifactInfo, read_artifact
from .oci.registry.client import RegistryClient, RegistryOptions
from .oci.registry.pull import RegistrySource, get_manifest
from .oci.registry.reference import parse_reference
from .oci.registry.referrers import get_optional, list_referrers, manifest_digest
from .oci.walk import BlobSource, Node, fetch_json, fetch_verified, walk
from .sign.cosign import signature_tag

_META_RE = re.compile(r"^(?:\./)?(.*/)?conda-meta/([^/]+)\.json$")
_WH_RE = re.compile(r"^(?:\./)?(.*/)?conda-meta/\.wh\.([^/]+)\.json$")
_DIST_INFO_RE = re.compile(r"^(?:\./)?(.*?)/?(lib/python[^/]+/site-packages/[^/]+\.dist-info/METADATA)$")
MAX_META = 64 << 20


@dataclass
class LayerView:
    digest: str
    size: int
    media_type: str
    packages: list[str] = field(default_factory=list)  # name-version-build, as conda-meta names them


@dataclass
class ImageView:
    platform: str
    manifest_digest: str
    config: dict[str, Any]
    layers: list[LayerView]
    packages: dict[tuple[str, str], dict[str, Any]]  # (prefix, name) -> {name, version, build, channel, subdir, prefix}
    pip_packages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (prefix, name) -> {name, ...}
    referrers: list[dict[str, Any]] = field(default_factory=list)  # artifacts attached to this manifest (SBOMs)

    def to_json(self) -> dict[str, Any]:
        cfg = self.config
        return {
            "platform": self.platform,
            "manifest_digest": self.manifest_digest,
            "config": {k: cfg.get(k) for k in ("architecture", "os", "variant", "created", "config") if k in cfg},
            "layers": [{"digest": x.digest, "size": x.size, "media_type": x.media_type, "packages": x.packages}
                       for x in self.layers],
            "packages": [self.packages[k] for k in sorted(self.packages)],
            **({"pip_packages": [self.pip_packages[k] for k in sorted(self.pip_packages)]} if self.pip_packages
               else {}),
            "referrers": self.referrers,
        }


def _open_layer(src: BlobSource, desc: Descriptor) -> tuple[BinaryIO, IO[bytes]]:
    """(the raw blob stream, its decompressed view): close the first when done."""
    raw = src.opener(desc)()
    mt = desc.media_type
    if mt.endswith("+zstd") or mt.endswith(".zstd"):
        import zstandard

        return raw, zstandard.ZstdDecompressor().stream_reader(raw)
    if mt.endswith("gzip") or mt.endswith(".gzip") or "tar.gzip" in mt:
        return raw, gzip.GzipFile(fileobj=raw)
    return raw, raw


PipDists = dict[tuple[str, str], dict[str, Any]]  # (prefix, METADATA path in it) -> {name, version, prefix}


def _read_layer(src: BlobSource, desc: Descriptor, where: str) -> tuple[dict[tuple[str, str], dict[str, Any]],
                                                                set[tuple[str, str]], PipDists]:
    """``({(prefix, dist): conda-meta record}, {(prefix, whited-out dist)}, Python distributions)`` of one layer."""
    import email.parser

    metas: dict[tuple[str, str], dict[str, Any]] = {}
    whiteouts: set[tuple[str, str]] = set()
    dists: PipDists = {}
    raw, stream = _open_layer(src, desc)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as t:
            for m in t:
                w = _WH_RE.match(m.name)
                if w:
                    whiteouts.add(("/" + (w.group(1) or "").rstrip("/"), w.group(2)))
                    continue
                d = _DIST_INFO_RE.match(m.name)
                if d and m.isreg() and m.size <= MAX_META:
                    f = t.extractfile(m)
                    msg = email.parser.HeaderParser().parsestr(f.read().decode("utf-8", "replace")) if f else {}
                    if msg.get("Name") and msg.get("Version"):
                        prefix = "/" + d.group(1).rstrip("/")
                        dists[(prefix, d.group(2))] = {"name": str(msg["Name"]), "version": str(msg["Version"]),
                                                       "prefix": prefix}
                    continue
                g = _META_RE.match(m.name)
                if not g or not m.isreg() or m.size > MAX_META:
                    continue
                f = t.extractfile(m)
                if f is None:
                    continue
                try:
                    rec = loads_json(f.read(MAX_META + 1), f"{where}: {m.name}", cap=MAX_META)
                except (ValueError, LimitError):  # not JSON, too big or nested too deeply: not a record we list
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("name"), str):
                    metas[("/" + (g.group(1) or "").rstrip("/"), g.group(2))] = rec
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ImageError(f"{where}: layer {desc.digest} is not a readable tar ({e})") from None
    finally:
        raw.close()
    return metas, whiteouts, dists


def _manifests(src: BlobSource, tops: Iterable[Descriptor], where: str) -> list[Node]:
    """Every image manifest reachable from ``tops`` (through nested indexes), each once; artifacts are left out."""
    out: list[Node] = []
    seen: set[str] = set()
    for top in tops:
        if top.media_type not in MANIFEST_TYPES + INDEX_TYPES or top.artifact_type:
            continue
        for node in walk(src, top, where):
            if not node.is_index and node.descriptor.digest not in seen:
                seen.add(node.descriptor.digest)
                out.append(node)
    return out


def inspect_image(path: str | Path) -> list[ImageView]:
    """The images of a local archive, layout, ``dir:`` or ``docker-archive:``, with what is attached to them."""
    where = str(path)
    src = open_local(where)  # a str may name its transport (oci:, oci-archive:, dir:, docker-archive:)
    tops = [Descriptor.from_json(m, where) for m in src.index().get("manifests") or []]
    views = _views(src, tops, where)
    attached = local_referrers(src, where)
    for v in views:
        v.referrers = attached.get(v.manifest_digest, [])
    return views


def inspect_registry(reference: str, options: RegistryOptions,
                     subjects: Mapping[str, Mapping[str, Any]] | None = None) -> list[ImageView]:
    """The image(s) a registry reference names, read like a local one (layers go through the blob cache), with the
    referrers the registry lists for each manifest (``subjects``: what :func:`registry_attachments` found)."""
    r = parse_reference(reference)
    client = RegistryClient(r.host, options)
    data, mt = get_manifest(client, r.repository, r.reference)
    desc = Descriptor(mt or MEDIA_TYPE_MANIFEST, digest_bytes(data), len(data))
    views = _views(RegistrySource(client, r.repository, {desc.digest: data}), [desc], str(r))
    if subjects is None:
        subjects = registry_attachments(reference, options)["subjects"]
    for v in views:
        v.referrers = subjects.get(v.manifest_digest, {}).get("referrers", [])
    return views


def _views(src: BlobSource, tops: Iterable[Descriptor], where: str) -> list[ImageView]:
    views = []
    for node in _manifests(src, tops, where):
        d, man = node.descriptor, node.doc
        cdesc = Descriptor.from_json(man.get("config"), where)
        config = fetch_json(src, cdesc, f"{where}: config")
        plat = "/".join(x for x in (config.get("os"), config.get("architecture"), config.get("variant")) if x)
        layers = []
        packages: dict[tuple[str, str], dict[str, Any]] = {}  # (prefix, name) -> package
        key_of: dict[tuple[str, str], tuple[str, str]] = {}  # (prefix, dist) -> (prefix, name)
        dists: PipDists = {}
        owned: set[tuple[str, str]] = set()  # (prefix, path) a conda record lists
        for raw in man.get("layers") or []:
            ld = Descriptor.from_json(raw, where)
            metas, whiteouts, layer_dists = _read_layer(src, ld, where)
            dists.update(layer_dists)
            for (prefix, _dist), rec in metas.items():
                files = rec.get("files")
                if isinstance(files, list):
                    owned.update((prefix, f) for f in files if isinstance(f, str) and f.endswith(".dist-info/METADATA"))
            for wh in whiteouts:
                k = key_of.pop(wh, None)
                if k is not None:
                    packages.pop(k, None)
            for (prefix, dist), rec in sorted(metas.items()):
                k = (prefix, rec["name"])
                old = packages.get(k)
                if old is not None:
                    key_of.pop((prefix, f"{old['name']}-{old['version']}-{old['build']}"), None)
                packages[k] = {"name": rec["name"], "version": str(rec.get("version", "")),
                               "build": str(rec.get("build", "")), "channel": rec.get("channel"),
                               "subdir": rec.get("subdir"), "prefix": prefix}
                key_of[(prefix, dist)] = k
            layers.append(LayerView(ld.digest, ld.size, ld.media_type, sorted(d for _p, d in metas)))
        pip = {(k[0], v["name"].lower()): v for k, v in sorted(dists.items()) if k not in owned}
        views.append(ImageView(plat, d.digest, config, layers, packages, pip))
    if not views:
        raise ImageError(f"{where}: holds no image manifest")
    return views


def referrer_entry(desc: Descriptor, info: ArtifactInfo) -> dict[str, Any]:
    """How inspect shows one attached artifact."""
    return {"artifact_type": desc.artifact_type or info.artifact_type, "digest": desc.digest,
            "size": sum(x.size for x in info.layers), "annotations": info.annotations}


def local_referrers(src: LocalSource, where: str) -> dict[str, list[dict[str, Any]]]:
    """Subject digest -> the artifacts index.json lists about it (entries with an ``artifactType``)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for raw in src.index().get("manifests") or []:
        desc = Descriptor.from_json(raw, where)
        if not desc.artifact_type:
            continue
        info = read_artifact(fetch_verified(src, desc, f"{where}: artifact"), f"{where}: artifact {desc.digest}")
        if info.subject is not None:
            out.setdefault(info.subject.digest, []).append(referrer_entry(desc, info))
    return out


def registry_attachments(reference: str, options: RegistryOptions) -> dict[str, Any]:
    """What a registry holds about the image ``reference`` names: its referrers (API or fallback tag) and whether
    a cosign ``.sig`` tag exists. Per platform manifest too, when the reference names an index."""
    r = parse_reference(reference)
    client = RegistryClient(r.host, options)
    digest, data, mt = manifest_digest(client, r.repository, r.reference)
    subjects = [digest]
    if mt in INDEX_TYPES or b'"manifests"' in data:
        subjects += [Descriptor.from_json(m, str(r)).digest for m in loads_json(data, str(r)).get("manifests") or []]
    out: dict[str, Any] = {"ref": str(r), "digest": digest, "subjects": {}}
    for subject in subjects:
        found = list_referrers(client, r.repository, subject)
        entries = []
        for desc in found.descriptors:
            got = get_optional(client, r.repository, desc.digest)
            if got is not None:
                entries.append(referrer_entry(desc, read_artifact(got[0], f"{r}: {desc.digest}")))
        sig = get_optional(client, r.repository, signature_tag(subject))
        out["subjects"][subject] = {"referrers": entries, "listed_by": found.via,
                                    "cosign_signatures": len(loads_json(sig[0], str(r)).get("layers") or []) if sig else 0}
    return out


def diff_images(a: str | Path, b: str | Path,
                open_views: Callable[[str], list[ImageView]] = inspect_image) -> dict[str, Any]:
    """Per platform both images have: packages added/removed/changed, layers shared, bytes only in one side.
    ``open_views`` reads each side (local by default; the CLI passes one that also reads registries)."""
    va = {v.platform: v for v in open_views(str(a))}
    vb = {v.platform: v for v in open_views(str(b))}
    out: dict[str, Any] = {"a": str(a), "b": str(b), "platforms": {},
                           "only_in_a": sorted(set(va) - set(vb)), "only_in_b": sorted(set(vb) - set(va))}
    for plat in sorted(set(va) & set(vb)):
        x, y = va[plat], vb[plat]
        added = sorted(set(y.packages) - set(x.packages))
        removed = sorted(set(x.packages) - set(y.packages))
        changed = []
        for k in sorted(set(x.packages) & set(y.packages)):
            p, q = x.packages[k], y.packages[k]
            if (p["version"], p["build"]) != (q["version"], q["build"]):
                changed.append({"name": k[1], "prefix": k[0], "from": f"{p['version']}-{p['build']}",
                                "to": f"{q['version']}-{q['build']}"})
        pip_diff = _pip_diff(x, y)
        la = {layer.digest: layer.size for layer in x.layers}
        lb = {layer.digest: layer.size for layer in y.layers}
        shared = [layer.digest for layer in y.layers if layer.digest in la]
        out["platforms"][plat] = {
            "added": [_brief(y.packages[k]) for k in added],
            "removed": [_brief(x.packages[k]) for k in removed],
            "changed": changed,
            "layers_shared": shared,
            "shared_bytes": sum(lb[d] for d in shared),
            "bytes_only_in_a": sum(s for d, s in la.items() if d not in lb),
            "bytes_only_in_b": sum(s for d, s in lb.items() if d not in la),
            "config_changed": x.config != y.config,
            **pip_diff,
        }
    return out


def _brief(p: dict[str, Any]) -> dict[str, Any]:
    return {"name": p["name"], "version": p["version"], "build": p["build"], "prefix": p["prefix"]}


def _pip_diff(x: ImageView, y: ImageView) -> dict[str, Any]:
    """pip packages added, removed and changed (only present when either image has any)."""
    if not x.pip_packages and not y.pip_packages:
        return {}
    a, b = x.pip_packages, y.pip_packages
    return {
        "pip_added": [b[k] for k in sorted(set(b) - set(a))],
        "pip_removed": [a[k] for k in sorted(set(a) - set(b))],
        "pip_changed": [{"name": b[k]["name"], "prefix": k[0], "from": a[k]["version"], "to": b[k]["version"]}
                        for k in sorted(set(a) & set(b)) if a[k]["version"] != b[k]["version"]],
    }
