"""Push: images, or everything an index or manifest in any blob source reaches, to a registry repository.

One path for every source: the shared walk lists the manifests (children first) and their blobs; blobs go up in
parallel (bounded by ``jobs``, biggest first), each HEADed first and skipped if present, mounted from the
repository it was pulled from when that is on the same registry (the layer says so itself), sent in one PUT when
small and in PATCH chunks when large; an interrupted chunked upload resumes where the registry says it stopped, or
that blob alone starts again. Manifests go up children first, by digest, and the top one by tag.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urljoin

from oci_conda.errors import ImageError
from oci_conda.oci.blobs import (
    CHUNK,
    Opener,
    VerifyingReader,
    digest_bytes,
    verify_bytes,
)
from oci_conda.oci.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    Descriptor,
    Image,
    set_annotations,
)
from oci_conda.oci.local import open_local_ref
from oci_conda.oci.memory import plan
from oci_conda.oci.registry.client import (
    RETRY_STATUSES,
    RegistryClient,
    RegistryError,
    RegistryOptions,
)
from oci_conda.oci.registry.client import location as location_of
from oci_conda.oci.registry.reference import RegistryRef, parse_reference
from oci_conda.oci.walk import BlobSource, fetch_verified, walk
from oci_conda.parallel import thread_pool

if TYPE_CHECKING:
    import requests


@dataclass
class PushStats:
    uploaded: int = 0  # blobs sent
    mounted: int = 0  # blobs mounted from another repository
    existing: int = 0  # blobs the registry already had
    bytes_uploaded: int = 0
    restarts: int = 0  # blob uploads begun again after an interruption
    resumes: int = 0  # chunked uploads continued where they stopped
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **kw: int) -> None:
        with self.lock:
            for k, v in kw.items():
                setattr(self, k, getattr(self, k) + v)


@dataclass
class PushResult:
    ref: str
    digest: str  # what the tag points at (a manifest or an index)
    manifests: list[str]
    stats: PushStats

    def to_json(self) -> dict[str, Any]:
        s = self.stats
        return {"ref": self.ref, "digest": self.digest, "manifests": self.manifests,
                "blobs": {"uploaded": s.uploaded, "mounted": s.mounted, "existing": s.existing,
                          "bytes_uploaded": s.bytes_uploaded, "restarts": s.restarts, "resumes": s.resumes}}


# ---------------------------------------------------------------------------------------------------------------
# the distribution-spec calls


def blob_exists(client: RegistryClient, repo: str, digest: str, scopes: tuple[str, ...]) -> bool:
    """HEAD the blob: whether the repository already has it."""
    what = f"{client.host}/{repo}: blob {digest}"
    resp = client.request("HEAD", client.url(f"{repo}/blobs/{digest}"), scopes, what)
    if resp.status_code == 200:
        return True
    if resp.status_code == 404:
        return False
    raise client.fail(resp, what)


def start_upload(client: RegistryClient, repo: str, scopes: tuple[str, ...], what: str, mount: tuple[str, str] | None = None
                  ) -> str | None:
    """A new upload session's URL, or None if ``mount`` (digest, from repository) succeeded."""
    url = client.url(f"{repo}/blobs/uploads/")
    if mount is not None:
        url += f"?mount={mount[0]}&from={mount[1]}"
    resp = client.request("POST", url, scopes, what, headers={"Content-Length": "0"})
    if mount is not None and resp.status_code == 201:
        return None
    if resp.status_code != 202:
        raise client.fail(resp, what)
    return location_of(resp, what)


def with_digest(location: str, digest: str) -> str:
    return location + ("&" if "?" in location else "?") + f"digest={digest}"


def finish(client: RegistryClient, resp: requests.Response, digest: str, what: str) -> None:
    if resp.status_code != 201:
        raise client.fail(resp, what)
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != digest:
        raise RegistryError(f"{what}: the registry stored it as {got}")


def upload_blob(client: RegistryClient, repo: str, desc: Descriptor, data: bytes | Opener, *, mount_from: str | None = None,
                stats: PushStats | None = None, monolithic_max: int | None = None,
                chunk_size: int | None = None) -> str:
    """Upload one blob unless the registry has it; returns "existing", "mounted" or "uploaded"."""
    stats = stats or PushStats()
    monolithic_max = monolithic_max or client.options.monolithic_max
    chunk_size = chunk_size or client.options.chunk_size
    what = f"{client.host}/{repo}: blob {desc.digest}"
    scopes: tuple[str, ...] = (f"repository:{repo}:pull,push",)
    if mount_from and mount_from != repo:
        scopes += (f"repository:{mount_from}:pull",)
    if blob_exists(client, repo, desc.digest, scopes):
        stats.add(existing=1)
        return "existing"
    mount = (desc.digest, mount_from) if mount_from and mount_from != repo else None
    location = start_upload(client, repo, scopes, what, mount)
    if location is None:
        stats.add(mounted=1)
        return "mounted"
    if isinstance(data, bytes) or desc.size <= monolithic_max:
        if isinstance(data, bytes):
            body = data
        else:
            with data() as f:
                body = f.read()
        verify_bytes(body, desc.digest, desc.size, what)
        put_monolithic(client, repo, location, body, desc, scopes, what, stats)
    else:
        put_chunked(client, repo, location, data, desc, scopes, what, stats, chunk_size)
    stats.add(uploaded=1)
    return "uploaded"


def put_monolithic(client: RegistryClient, repo: str, location: str, body: bytes, desc: Descriptor, scopes: tuple[str, ...],
                    what: str, stats: PushStats) -> None:
    for attempt in range(client.retries + 1):
        try:
            resp = client.request("PUT", with_digest(location, desc.digest), scopes, what, retry=False,
                                headers={"Content-Type": "application/octet-stream",
                                         "Content-Length": str(len(body))}, body=lambda: body)
        except RegistryError as exc:
            if attempt >= client.retries or not exc.temporary():
                raise
            resp = None
        if resp is not None and resp.status_code not in RETRY_STATUSES:
            stats.add(bytes_uploaded=len(body))
            finish(client, resp, desc.digest, what)
            return
        # the PUT may have landed before the connection broke; if not, the session may be gone: start again
        client.sleep(attempt, resp)
        if blob_exists(client, repo, desc.digest, scopes):
            stats.add(bytes_uploaded=len(body))
            return
        stats.add(restarts=1)
        location = restart(client, repo, scopes, what)
    raise RegistryError(f"{what}: upload failed after {client.retries + 1} attempts")


def restart(client: RegistryClient, repo: str, scopes: tuple[str, ...], what: str) -> str:
    loc = start_upload(client, repo, scopes, what)
    assert loc is not None
    return loc


def upload_status(client: RegistryClient, location: str, scopes: tuple[str, ...], what: str) -> tuple[str, int] | None:
    """(location, bytes the registry holds) of an interrupted upload, or None if it is gone."""
    try:
        resp = client.request("GET", location, scopes, what)
    except RegistryError:
        return None
    if resp.status_code != 204:
        return None
    rng = resp.headers.get("Range", "")
    m = re.match(r"^(?:bytes=)?0-(\d+)$", rng)
    held = int(m.group(1)) + 1 if m else 0
    return urljoin(resp.url, resp.headers.get("Location") or location), held


def put_chunked(client: RegistryClient, repo: str, location: str, opener: Opener, desc: Descriptor, scopes: tuple[str, ...],
                 what: str, stats: PushStats, chunk_size: int) -> None:
    offset = 0
    failures = 0
    reader: BinaryIO | None = None

    def reopen(at: int) -> BinaryIO:
        f = VerifyingReader(opener(), desc.digest, desc.size, what)
        left = at
        while left > 0:  # read through the verifier so the whole blob is still checked
            got = f.read(min(CHUNK, left))
            if not got:
                raise RegistryError(f"{what}: the local blob is shorter than {desc.size} bytes")
            left -= len(got)
        return f  # type: ignore[return-value]

    try:
        reader = reopen(0)
        pending = b""
        while True:
            if not pending and offset < desc.size:
                pending = reader.read(chunk_size)
            if not pending:
                break
            start = offset
            try:
                resp = client.request("PATCH", location, scopes, what, retry=False, body=lambda: pending, headers={
                    "Content-Type": "application/octet-stream", "Content-Length": str(len(pending)),
                    "Content-Range": f"{start}-{start + len(pending) - 1}"})
                ok = resp.status_code == 202
                if not ok and resp.status_code not in RETRY_STATUSES and resp.status_code not in (400, 404, 416):
                    raise client.fail(resp, what)
            except RegistryError as exc:
                if failures >= client.retries or not exc.temporary():
                    raise
                ok, resp = False, None
            if ok:
                assert resp is not None
                location = location_of(resp, what)
                offset += len(pending)
                stats.add(bytes_uploaded=len(pending))
                pending = b""
                continue
            # interrupted: ask how far the registry got; resume there, or begin this blob again
            failures += 1
            if failures > client.retries:
                raise client.fail(resp, what) if resp is not None else RegistryError(f"{what}: upload failed")
            client.sleep(failures - 1, resp)
            status = upload_status(client, location, scopes, what)
            reader.close()
            if status is not None:
                location, offset = status
                stats.add(resumes=1)
            else:
                location, offset = restart(client, repo, scopes, what), 0
                stats.add(restarts=1)
            reader = reopen(offset)
            pending = b""
        tail = reader.read(1)
        if tail:
            raise RegistryError(f"{what}: the local blob is longer than {desc.size} bytes")
    except ImageError as exc:
        raise RegistryError(f"{what}: {exc}") from None
    finally:
        if reader is not None:
            reader.close()
    try:
        resp = client.request("PUT", with_digest(location, desc.digest), scopes, what,
                            headers={"Content-Length": "0"})
    except RegistryError:
        if blob_exists(client, repo, desc.digest, scopes):  # it landed before the connection broke
            return
        raise
    if resp.status_code != 201 and resp.status_code != 400 and blob_exists(client, repo, desc.digest, scopes):
        return
    finish(client, resp, desc.digest, what)


def put_manifest(client: RegistryClient, repo: str, reference: str, data: bytes, media_type: str) -> str:
    """PUT a manifest or index by tag or digest; returns its digest (checked against what the registry says)."""
    digest = digest_bytes(data)
    what = f"{client.host}/{repo}: manifest {reference}"
    resp = client.request("PUT", client.url(f"{repo}/manifests/{reference}"), (f"repository:{repo}:pull,push",), what,
                        headers={"Content-Type": media_type}, body=lambda: data)
    if resp.status_code != 201:
        raise client.fail(resp, what)
    got = resp.headers.get("Docker-Content-Digest")
    if got and got != digest:
        raise RegistryError(f"{what}: the registry stored it as {got}, not {digest}")
    return digest



# ---------------------------------------------------------------------------------------------------------------
# whole images


def _contents(source: BlobSource, top: Descriptor, what: str
              ) -> tuple[list[tuple[Descriptor, bytes]], dict[str, tuple[Descriptor, bytes | Opener]]]:
    """Manifests and indexes (children first, exact bytes) and the blobs they reference (configs as verified bytes,
    layers and artifacts as openers; foreign/non-distributable layers left out)."""
    manifests: list[tuple[Descriptor, bytes]] = []
    blobs: dict[str, tuple[Descriptor, bytes | Opener]] = {}
    for node in walk(source, top, what):
        if node.is_index:
            for child in node.entries(what):
                if child.media_type not in MANIFEST_TYPES + INDEX_TYPES:
                    blobs.setdefault(child.digest, (child, source.opener(child)))  # an artifact: push it as a blob
        else:
            cfg = node.config(what)
            blobs.setdefault(cfg.digest, (cfg, fetch_verified(source, cfg, f"{what}: config")))
            for layer in node.layers(what):
                if "nondistributable" in layer.media_type or "foreign" in layer.media_type:
                    continue
                blobs.setdefault(layer.digest, (layer, source.opener(layer)))
        manifests.append((node.descriptor, node.data))
    return manifests, blobs


def push_source(source: BlobSource, top: Descriptor, ref: str | RegistryRef, options: RegistryOptions | None = None,
                what: str = "image", mounts: dict[str, tuple[str, str]] | None = None) -> PushResult:
    """Push the index or manifest ``top`` (read from ``source``) and everything it references to ``ref``.

    ``mounts`` maps a blob digest to the (registry host, repository) it can be mounted from.
    """
    opts = options or RegistryOptions()
    r = ref if isinstance(ref, RegistryRef) else parse_reference(ref)
    client = RegistryClient(r.host, opts)
    manifests, blobs = _contents(source, top, what)
    stats = PushStats()
    mounts = mounts or {}

    def one(item: tuple[Descriptor, bytes | Opener]) -> str:
        desc, data = item
        origin = mounts.get(desc.digest)
        mount_from = origin[1] if origin is not None and origin[0] == r.host else None
        return upload_blob(client, r.repository, desc, data, mount_from=mount_from, stats=stats)

    # biggest first, so the long uploads start early
    items = sorted(blobs.values(), key=lambda it: -it[0].size)
    with thread_pool(opts.jobs, len(items), "push") as pool:
        futures = [pool.submit(one, it) for it in items]
        for f in futures:
            f.result()
    for desc, data in manifests[:-1]:
        put_manifest(client, r.repository, desc.digest, data, desc.media_type)
    top_desc, top_data = manifests[-1]
    if r.digest and r.digest != top_desc.digest:
        raise RegistryError(f"{r}: the image's digest is {top_desc.digest}, not the one named")
    tag = r.tag or (None if r.digest else "latest")
    digest = put_manifest(client, r.repository, tag or top_desc.digest, top_data, top_desc.media_type)
    out = f"{r.name}:{tag}" if tag else f"{r.name}@{digest}"
    return PushResult(out, digest, [d.digest for d, _ in manifests if d.media_type in MANIFEST_TYPES], stats)


def push_images(images: Iterable[Image], ref: str | RegistryRef, annotations: dict[str, str] | None = None,
                options: RegistryOptions | None = None) -> PushResult:
    """Push built images under one tag: one image as a manifest, several (one per platform) as an index.

    Layers pulled from a repository on the same registry are mounted from there rather than uploaded.
    """
    images = list(images)
    if not images:
        raise ImageError("no images to push")
    if annotations:
        images = [set_annotations(img, annotations) for img in images]
    planned = plan([(img, None) for img in images], annotations)
    return push_source(planned.source, planned.tops[0], ref, options, mounts=planned.source.origins())


def push_path(path: str, ref: str | RegistryRef, options: RegistryOptions | None = None) -> PushResult:
    """Push a local image (``oci:``, ``oci-archive:``, ``dir:``, ``docker-archive:`` or a bare path to an archive
    or layout directory); ``PATH:NAME`` picks one of several images."""
    local = open_local_ref(path)
    return push_source(local.source, local.top, ref, options, local.what)
