"""Where images come from and go to: ``scratch``, OCI layout directories and OCI archives (tar of a layout).

Reading: a *transport* turns a reference into an ``Image``; every transport only has to provide a ``BlobSource``
(fetch a small blob, open a big one) and the entry point, and ``resolve_image`` does the rest (index -> platform
manifest -> config -> layers, Docker schema 2 accepted, every digest checked). A registry transport plugs in with
``register_transport``.

Writing: ``write_oci_dir`` / ``write_oci_archive`` lay out ``oci-layout``, ``index.json`` and ``blobs/sha256``;
the archive also carries Docker's ``manifest.json`` and ``repositories`` so ``docker load`` / ``podman load`` take it.
Both appear atomically (temp path, then rename) or not at all.
"""

from __future__ import annotations

import contextlib
import fcntl
import importlib
import json
import os
import platform as _host
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Callable, Protocol

from oci_conda.errors import ImageError, OutputError
from oci_conda.oci.blobs import CHUNK, BlobStore, Opener, VerifyingReader, check_digest, digest_bytes, verify_bytes
from oci_conda.oci.image import (
    ANNOTATION_REF_NAME,
    DOCKER_CONFIG,
    DOCKER_TO_OCI_LAYER,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    Image,
    Layer,
    Platform,
    canonical_json,
    config_bytes,
    empty_image,
    index_bytes,
    manifest_bytes,
)
from oci_conda.oci.tar import TarEntry, write_layer

OCI_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
MAX_JSON_BLOB = 16 << 20  # manifests, indexes and configs are small; refuse absurd ones before reading them


# ---------------------------------------------------------------------------------------------------------------
# references


@dataclass(frozen=True)
class ImageRef:
    """A parsed base-image reference: ``transport`` names the reader, ``path`` and ``ref`` are its arguments."""

    transport: str
    path: str = ""
    ref: str | None = None

    def __str__(self) -> str:
        if self.transport == "scratch":
            return "scratch"
        tail = f":{self.ref}" if self.ref else ""
        return f"{self.transport}:{self.path}{tail}"


def _split_path_ref(rest: str) -> tuple[str, str | None]:
    # PATH[:REF]; a path that exists as written wins, otherwise the first ':' separates (as skopeo does)
    if not rest:
        return "", None
    if os.path.exists(rest) or ":" not in rest:
        return rest, None
    path, _, ref = rest.partition(":")
    return path, ref or None


def parse_image_ref(ref: str) -> ImageRef:
    """``scratch`` | ``oci-archive:PATH[:REF]`` | ``oci:DIR[:REF]`` | anything a registered transport accepts."""
    ref = ref.strip()
    if ref == "scratch":
        return ImageRef("scratch")
    for transport in ("oci-archive", "oci"):
        if ref.startswith(transport + ":"):
            path, name = _split_path_ref(ref[len(transport) + 1 :])
            if not path:
                raise ImageError(f"base image {ref!r}: missing path after '{transport}:'")
            return ImageRef(transport, path, name)
    _load_plugins()
    transport, sep, rest = ref.partition("://")
    if sep and transport in _TRANSPORTS:
        return ImageRef(transport, rest)
    if "registry" in _TRANSPORTS:
        return ImageRef("registry", ref[len("docker://") :] if ref.startswith("docker://") else ref)
    raise ImageError(
        f"base image {ref!r}: registry bases are not supported yet; use scratch, oci-archive:PATH[:REF] or oci:DIR[:REF]"
    )


# ---------------------------------------------------------------------------------------------------------------
# reading


class BlobSource(Protocol):
    """What a transport provides: small blobs as bytes (unverified; the caller checks), big ones as openers.

    A registry transport implements this over HTTP, resolves its tag to the top manifest's bytes, and calls
    ``resolve_image(source, Descriptor(media_type, digest_bytes(data), len(data)), platform, what)``.
    """

    def fetch(self, desc: Descriptor) -> bytes: ...

    def opener(self, desc: Descriptor) -> Opener: ...


def _load_json(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ImageError(f"{what}: not valid JSON ({exc})") from None
    if not isinstance(doc, dict):
        raise ImageError(f"{what}: not a JSON object")
    return doc


def _fetch_json(source: BlobSource, desc: Descriptor, what: str) -> dict[str, Any]:
    if desc.size > MAX_JSON_BLOB:
        raise ImageError(f"{what}: {desc.size} bytes is too large for a manifest or config")
    data = verify_bytes(source.fetch(desc), desc.digest, desc.size, what)
    return _load_json(data, what)


def _media_type(doc: dict[str, Any], desc: Descriptor) -> str:
    mt = doc.get("mediaType") or desc.media_type
    if mt not in MANIFEST_TYPES + INDEX_TYPES:
        # an OCI manifest may omit mediaType; tell index from manifest by shape
        mt = MEDIA_TYPE_INDEX if "manifests" in doc else MEDIA_TYPE_MANIFEST if "layers" in doc else mt
    return mt


def select_manifest(descriptors: list[Descriptor], platform: Platform, what: str) -> Descriptor:
    """The index entry for ``platform``: an exact variant match first, then one without a variant."""
    candidates = [d for d in descriptors if d.platform is not None and platform.matches(d.platform)]
    exact = [d for d in candidates if d.platform is not None and d.platform.variant == platform.variant]
    chosen = (exact or candidates)[:1]
    if not chosen:
        have = ", ".join(sorted({str(d.platform) for d in descriptors if d.platform})) or "none declared"
        raise ImageError(f"{what} has no image for platform {platform} (it has: {have})")
    return chosen[0]


def resolve_image(source: BlobSource, desc: Descriptor, platform: Platform, what: str) -> Image:
    """Follow ``desc`` (an index or a manifest) down to the image for ``platform``; all digests are checked."""
    for _ in range(8):  # indexes may nest; a few levels is plenty
        doc = _fetch_json(source, desc, what)
        mt = _media_type(doc, desc)
        if mt in INDEX_TYPES:
            entries = [Descriptor.from_json(m, f"{what}: index entry") for m in doc.get("manifests") or []]
            desc = select_manifest([e for e in entries if e.media_type in MANIFEST_TYPES + INDEX_TYPES], platform, what)
            continue
        if mt not in MANIFEST_TYPES:
            raise ImageError(f"{what}: unsupported manifest media type {mt!r}")
        return _image_from_manifest(source, doc, desc, platform, what)
    raise ImageError(f"{what}: image indexes nested too deeply")


def _image_from_manifest(
    source: BlobSource, manifest: dict[str, Any], desc: Descriptor, platform: Platform, what: str
) -> Image:
    cdesc = Descriptor.from_json(manifest.get("config"), f"{what}: config descriptor")
    if cdesc.media_type not in (MEDIA_TYPE_CONFIG, DOCKER_CONFIG):
        raise ImageError(f"{what}: not a container image (config media type {cdesc.media_type!r})")
    config = _fetch_json(source, cdesc, f"{what}: config")
    got = Platform(config.get("os", ""), config.get("architecture", ""), config.get("variant") or None)
    if not platform.matches(got):
        raise ImageError(f"{what} is a {got} image, not {platform}")
    diff_ids = (config.get("rootfs") or {}).get("diff_ids")
    raw_layers = manifest.get("layers")
    if not isinstance(raw_layers, list) or not isinstance(diff_ids, list) or len(diff_ids) != len(raw_layers):
        raise ImageError(f"{what}: the config's rootfs.diff_ids do not match the manifest's layers")
    layers = []
    for i, (raw, diff_id) in enumerate(zip(raw_layers, diff_ids)):
        ldesc = Descriptor.from_json(raw, f"{what}: layer {i}")
        check_digest(diff_id)
        mt = DOCKER_TO_OCI_LAYER.get(ldesc.media_type, ldesc.media_type)
        if mt not in LAYER_TYPES and not mt.startswith("application/vnd.oci.image.layer.nondistributable."):
            raise ImageError(f"{what}: layer {i} has unsupported media type {ldesc.media_type!r}")
        ldesc = Descriptor(mt, ldesc.digest, ldesc.size, ldesc.annotations)
        layers.append(Layer(ldesc, diff_id, source.opener(ldesc)))
    manifest_digest = desc.digest
    return Image(config, tuple(layers), {"org.opencontainers.image.base.digest": manifest_digest})


def _select_ref(index: dict[str, Any], ref: str | None, what: str) -> Descriptor:
    entries = [Descriptor.from_json(m, f"{what}: index.json entry") for m in index.get("manifests") or []]
    if not entries:
        raise ImageError(f"{what}: index.json lists no images")
    if ref is None:
        if len(entries) == 1:
            return entries[0]
        names = sorted({(e.annotations or {}).get(ANNOTATION_REF_NAME, "") for e in entries} - {""})
        raise ImageError(f"{what} holds {len(entries)} images; name one with :REF (one of: {', '.join(names) or 'none named'})")
    for e in entries:
        if (e.annotations or {}).get(ANNOTATION_REF_NAME) == ref:
            return e
    names = sorted({(e.annotations or {}).get(ANNOTATION_REF_NAME, "") for e in entries} - {""})
    raise ImageError(f"{what}: no image named {ref!r} (have: {', '.join(names) or 'none named'})")


class LayoutDirSource:
    """Blobs of an OCI image layout directory."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.store = BlobStore(self.root / "blobs")

    def index(self) -> dict[str, Any]:
        what = f"OCI layout {self.root}"
        try:
            data = (self.root / "index.json").read_bytes()
        except OSError as exc:
            raise ImageError(f"{what}: cannot read index.json ({exc.strerror})") from None
        return _load_json(data, f"{what}/index.json")

    def fetch(self, desc: Descriptor) -> bytes:
        with self.store.open(desc.digest) as f:
            return f.read(desc.size + 1)

    def opener(self, desc: Descriptor) -> Opener:
        return self.store.opener(desc.digest, desc.size)


class _TarSlice:
    """A read-only view of one member's bytes inside an uncompressed tar."""

    def __init__(self, path: Path, offset: int, size: int):
        self._f = open(path, "rb")  # noqa: SIM115
        self._f.seek(offset)
        self._left = size

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0 or n > self._left:
            n = self._left
        data = self._f.read(n)
        self._left -= len(data)
        return data

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> "_TarSlice":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class ArchiveSource:
    """Blobs of an OCI archive, read in place from the tar (nothing is extracted)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.members: dict[str, tuple[int, int]] = {}
        what = f"OCI archive {self.path}"
        links: dict[str, str] = {}
        try:
            with tarfile.open(self.path, "r:") as t:
                for m in t:
                    name = m.name.removeprefix("./").rstrip("/")
                    if m.isreg():
                        self.members[name] = (m.offset_data, m.size)
                    elif m.islnk():
                        links[name] = m.linkname.removeprefix("./")
                    elif m.issym():
                        links[name] = os.path.normpath(os.path.join(os.path.dirname(name), m.linkname))
        except FileNotFoundError:
            raise ImageError(f"{what}: no such file") from None
        except (tarfile.TarError, OSError) as exc:
            raise ImageError(f"{what}: not a readable uncompressed tar ({exc})") from None
        for name, target in links.items():
            if target in self.members:
                self.members[name] = self.members[target]

    def _member(self, name: str) -> tuple[int, int]:
        try:
            return self.members[name]
        except KeyError:
            raise ImageError(f"OCI archive {self.path}: {name} is missing") from None

    def index(self) -> dict[str, Any]:
        offset, size = self._member("index.json")
        if size > MAX_JSON_BLOB:
            raise ImageError(f"OCI archive {self.path}: index.json is too large")
        with _TarSlice(self.path, offset, size) as f:
            return _load_json(f.read(), f"OCI archive {self.path}: index.json")

    def _blob_name(self, desc: Descriptor) -> str:
        algo, hexpart = check_digest(desc.digest)
        return f"blobs/{algo}/{hexpart}"

    def fetch(self, desc: Descriptor) -> bytes:
        offset, size = self._member(self._blob_name(desc))
        with _TarSlice(self.path, offset, min(size, desc.size + 1)) as f:
            return f.read()

    def opener(self, desc: Descriptor) -> Opener:
        offset, size = self._member(self._blob_name(desc))
        what = f"OCI archive {self.path}: blob {desc.digest}"

        def _open() -> BinaryIO:
            return VerifyingReader(_TarSlice(self.path, offset, size), desc.digest, desc.size, what)  # type: ignore[return-value]

        return _open


def _open_layout(ref: ImageRef, platform: Platform) -> Image:
    root = Path(ref.path)
    if not (root / "oci-layout").is_file():
        raise ImageError(f"base image {ref}: {root} is not an OCI layout directory (no oci-layout file)")
    source = LayoutDirSource(root)
    desc = _select_ref(source.index(), ref.ref, f"OCI layout {root}")
    return resolve_image(source, desc, platform, f"base image {ref}")


def _open_archive(ref: ImageRef, platform: Platform) -> Image:
    source = ArchiveSource(Path(ref.path))
    desc = _select_ref(source.index(), ref.ref, f"OCI archive {ref.path}")
    return resolve_image(source, desc, platform, f"base image {ref}")


def _open_scratch(ref: ImageRef, platform: Platform) -> Image:
    return empty_image(platform)


Transport = Callable[[ImageRef, Platform], Image]
_TRANSPORTS: dict[str, Transport] = {"scratch": _open_scratch, "oci": _open_layout, "oci-archive": _open_archive}


# modules that, when present, register more transports on import (oci/registry.py adds "registry")
_PLUGINS: tuple[str, ...] = ("oci_conda.oci.registry",)
_loaded: set[str] = set()


def _load_plugins() -> None:
    for module in _PLUGINS:
        if module in _loaded:
            continue
        _loaded.add(module)
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:
                raise


def register_transport(name: str, transport: Transport) -> None:
    """Make ``NAME://...`` references (and, for ``registry``, bare ``host/repo:tag`` ones) readable by ``transport``."""
    _TRANSPORTS[name] = transport


def open_image(ref: str, platform: Platform) -> Image:
    """The image ``ref`` names, for ``platform`` (picked from a multi-platform index when there is one)."""
    parsed = parse_image_ref(ref)
    return _TRANSPORTS[parsed.transport](parsed, platform)


# ---------------------------------------------------------------------------------------------------------------
# writing


@dataclass
class _Plan:
    index: bytes
    top: list[Descriptor]
    small: dict[str, bytes]  # digest -> manifest/config/index bytes
    layers: dict[str, Layer]  # digest -> layer (first seen)
    docker: list[dict[str, Any]]  # manifest.json entries
    repositories: dict[str, dict[str, str]]


def _host_platform() -> Platform:
    machine = _host.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64", "ppc64le": "ppc64le",
            "s390x": "s390x", "armv7l": "arm"}.get(machine, machine)
    return Platform("linux", arch)


def docker_repo_tag(name: str) -> str:
    """``name:tag`` for Docker's RepoTags from an OCI ref name (a bare name gets ``:latest``)."""
    last = name.rsplit("/", 1)[-1]
    return name if ":" in last or "@" in name else f"{name}:latest"


def _plan(images: list[tuple[Image, str | None]], index_annotations: dict[str, str] | None) -> _Plan:
    if not images:
        raise ImageError("no images to write")
    groups: dict[str | None, list[Image]] = {}
    for image, tag in images:
        groups.setdefault(tag, []).append(image)
    small: dict[str, bytes] = {}
    layers: dict[str, Layer] = {}
    top: list[Descriptor] = []
    docker: list[dict[str, Any]] = []
    repositories: dict[str, dict[str, str]] = {}
    host = _host_platform()
    for tag, group in groups.items():
        descs = []
        for image in group:
            cfg = config_bytes(image)
            small[digest_bytes(cfg)] = cfg
            man = manifest_bytes(image)
            small[digest_bytes(man)] = man
            for layer in image.layers:
                layers.setdefault(layer.descriptor.digest, layer)
            descs.append(Descriptor(MEDIA_TYPE_MANIFEST, digest_bytes(man), len(man), None, image.platform))
        plats = [str(d.platform) for d in descs]
        if len(set(plats)) != len(plats):
            raise ImageError(f"image {tag or '(untagged)'}: two images for the same platform")
        ann = {ANNOTATION_REF_NAME: tag} if tag else None
        if len(descs) == 1:
            top.append(Descriptor(descs[0].media_type, descs[0].digest, descs[0].size, ann, descs[0].platform))
        else:
            idx = index_bytes(descs)
            small[digest_bytes(idx)] = idx
            top.append(Descriptor(MEDIA_TYPE_INDEX, digest_bytes(idx), len(idx), ann))
        # Docker's manifest.json knows one platform per tag: list the host's image if there is one, else the first.
        chosen = next((img for img in group if host.matches(img.platform)), group[0])
        cfg_hex = digest_bytes(config_bytes(chosen)).split(":", 1)[1]
        entry: dict[str, Any] = {
            "Config": f"blobs/sha256/{cfg_hex}",
            "RepoTags": [docker_repo_tag(tag)] if tag else [],
            "Layers": ["blobs/{}/{}".format(*layer.descriptor.digest.split(":", 1)) for layer in chosen.layers],
        }
        docker.append(entry)
        if tag and chosen.layers:
            repo, _, t = docker_repo_tag(tag).rpartition(":")
            repositories.setdefault(repo, {})[t] = chosen.layers[-1].descriptor.digest.split(":", 1)[1]
    return _Plan(index_bytes(top, index_annotations), top, small, layers, docker, repositories)


def _blob_path(digest: str) -> str:
    algo, hexpart = check_digest(digest)
    return f"blobs/{algo}/{hexpart}"


def _verified_opener(layer: Layer) -> Opener:
    d = layer.descriptor

    def _open() -> BinaryIO:
        return VerifyingReader(layer.open(), d.digest, d.size, f"layer {d.digest}")  # type: ignore[return-value]

    return _open


def _remove_stale_temps(out: Path) -> None:
    """Temp files/dirs a killed build left next to ``out`` (``.NAME.*.tmp``/``.old``): a live writer holds a lock on
    its own, so whatever can be locked belongs to nobody any more."""
    try:
        names = os.listdir(out.parent)
    except OSError:
        return
    for n in names:
        if not (n.startswith(f".{out.name}.") and n.endswith((".tmp", ".old"))):
            continue
        p = out.parent / n
        try:
            fd = os.open(p, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # in use
        finally:
            os.close(fd)  # closing drops the lock; a writer that locks from here on is not ours to touch
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()


def _hold(path: str) -> int:
    """Lock a temp file/dir for as long as the returned fd is open (see :func:`_remove_stale_temps`)."""
    fd = os.open(path, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return fd


def _check_parent(out: Path) -> None:
    parent = out.parent
    if not parent.is_dir():
        raise OutputError(f"cannot write {out}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"cannot write {out}: directory {parent} is not writable")


def write_oci_dir(
    out_dir: Path, images: list[tuple[Image, str | None]], index_annotations: dict[str, str] | None = None
) -> list[Descriptor]:
    """Write an OCI image layout directory (replacing an existing layout there); returns index.json's entries.

    Images sharing a tag become one multi-platform index under that tag.
    """
    out_dir = Path(out_dir).absolute()
    _check_parent(out_dir)
    if out_dir.exists() and not (out_dir.is_dir() and ((out_dir / "oci-layout").is_file() or not any(out_dir.iterdir()))):
        raise OutputError(f"cannot write {out_dir}: it exists and is not an OCI layout directory")
    plan = _plan(images, index_annotations)
    _remove_stale_temps(out_dir)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
        held = _hold(str(tmp))
    except OSError as exc:
        raise OutputError(f"cannot write {out_dir}: {exc.strerror}") from None
    try:
        store = BlobStore(tmp / "blobs")
        for digest, data in plan.small.items():
            store.add_bytes(data, digest)
        for digest, layer in plan.layers.items():
            with layer.open() as f:
                store.add_stream(f, digest, layer.descriptor.size)
        (tmp / "oci-layout").write_bytes(OCI_LAYOUT)
        (tmp / "index.json").write_bytes(plan.index)
        os.chmod(tmp, 0o755)
        if out_dir.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".old", dir=out_dir.parent))
            os.replace(out_dir, old / "x")
            os.replace(tmp, out_dir)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"cannot write {out_dir}: {exc.strerror or exc}") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    finally:
        os.close(held)
    return plan.top


def write_oci_archive(
    out_tar: Path,
    images: list[tuple[Image, str | None]],
    index_annotations: dict[str, str] | None = None,
    mtime: int = 0,
) -> list[Descriptor]:
    """Write an OCI archive (a deterministic tar of an OCI layout) that ``docker load``/``podman load`` also accept.

    Blobs are streamed from their openers into the tar (and verified on the way); returns index.json's entries.
    """
    out_tar = Path(out_tar).absolute()
    _check_parent(out_tar)
    if out_tar.is_dir():
        raise OutputError(f"cannot write {out_tar}: it is a directory")
    plan = _plan(images, index_annotations)
    entries = [
        TarEntry("oci-layout", "file", data=OCI_LAYOUT),
        TarEntry("index.json", "file", data=plan.index),
        TarEntry("manifest.json", "file", data=canonical_json(plan.docker)),
    ]
    if plan.repositories:
        entries.append(TarEntry("repositories", "file", data=canonical_json(plan.repositories)))
    for digest, data in plan.small.items():
        entries.append(TarEntry(_blob_path(digest), "file", data=data))
    for digest, layer in plan.layers.items():
        if digest in plan.small:
            continue
        entries.append(TarEntry(_blob_path(digest), "file", size=layer.descriptor.size, opener=_verified_opener(layer)))
    _remove_stale_temps(out_tar)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{out_tar.name}.", suffix=".tmp", dir=out_tar.parent)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held until the fd closes: not a stale temp
    except OSError as exc:
        raise OutputError(f"cannot write {out_tar}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "wb", buffering=CHUNK) as f:
            write_layer(entries, f, "none", mtime)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, out_tar)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise OutputError(f"cannot write {out_tar}: {exc.strerror or exc}") from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return plan.top


# ---------------------------------------------------------------------------------------------------------------
# conveniences for the build


def file_opener(path: Path, digest: str | None = None, size: int | None = None) -> Opener:
    """An opener for a blob that is a plain file (e.g. a layer in the cache); verified as read if ``digest`` given."""
    path = Path(path)

    def _open() -> BinaryIO:
        f = open(path, "rb")  # noqa: SIM115
        if digest is None:
            return f
        return VerifyingReader(f, digest, size, f"blob {path}")  # type: ignore[return-value]

    return _open


@dataclass(frozen=True)
class WriteResult:
    """What was written: ``digest`` is what index.json points at (a manifest, or an index for several platforms)."""

    path: Path
    digest: str
    manifest_digests: list[str]
    descriptors: list[Descriptor]


def write_output(
    out: Path, images: list[Image], tag: str | None = None, annotations: dict[str, str] | None = None, mtime: int = 0
) -> WriteResult:
    """``OUT.tar`` -> OCI archive (docker-loadable), anything else -> OCI layout directory; all images under ``tag``.

    Several images (one per platform) become one multi-platform index; ``annotations`` go on every manifest and on
    index.json.
    """
    from oci_conda.oci.image import manifest_descriptor, set_annotations

    if annotations:
        images = [set_annotations(img, annotations) for img in images]
    pairs = [(img, tag) for img in images]
    out = Path(out)
    if out.name.endswith(".tar"):
        top = write_oci_archive(out, pairs, annotations, mtime)
    else:
        top = write_oci_dir(out, pairs, annotations)
    return WriteResult(out, top[0].digest, [manifest_descriptor(img).digest for img in images], top)
