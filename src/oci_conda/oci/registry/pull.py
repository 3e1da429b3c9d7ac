"""Pull: a registry repository as a blob source, and the image a reference names.

The top manifest is fetched with every OCI and Docker schema-2 media type accepted; the shared walk picks the
platform's manifest and checks every digest; the layers are downloaded in parallel (bounded by ``jobs``) into the
blob cache, verified, before anything reads them. Every layer carries the repository it came from, so a push to the
same registry can mount it instead of uploading it.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

from oci_conda.cache_verify import drop_file, verify_file
from oci_conda.errors import ImageError
from oci_conda.http import describe_error
from oci_conda.oci.blobs import BlobStore, Opener, digest_bytes, verify_bytes
from oci_conda.oci.image import (
    INDEX_TYPES,
    MANIFEST_TYPES,
    MEDIA_TYPE_MANIFEST,
    Descriptor,
    Image,
    Platform,
    set_annotations,
)
from oci_conda.oci.registry.client import (
    MAX_MANIFEST,
    RegistryClient,
    RegistryError,
    RegistryOptions,
)
from oci_conda.oci.registry.reference import RegistryRef, parse_reference
from oci_conda.oci.walk import ANNOTATION_BASE_DIGEST, resolve_image
from oci_conda.parallel import thread_pool

ANNOTATION_BASE_NAME = "org.opencontainers.image.base.name"
ACCEPT = ", ".join(MANIFEST_TYPES + INDEX_TYPES)


def _pull_scope(repo: str) -> tuple[str, ...]:
    return (f"repository:{repo}:pull",)


def get_manifest(client: RegistryClient, repo: str, reference: str) -> tuple[bytes, str]:
    """The bytes and media type of a manifest or index, by tag or digest (a digest is checked)."""
    what = f"{client.host}/{repo}: manifest {reference}"
    resp = client.request("GET", client.url(f"{repo}/manifests/{reference}"), _pull_scope(repo), what,
                          headers={"Accept": ACCEPT}, max_bytes=MAX_MANIFEST)
    if resp.status_code == 404:
        err = client.fail(resp, what)
        tags = None if "NAME_UNKNOWN" in err.codes else list_tags(client, repo)
        if tags is None:
            raise RegistryError(f"registry {client.host}: repository {repo} not found", status=404,
                                diagnostics=err.diagnostics)
        have = ", ".join(tags[:10]) + (", ..." if len(tags) > 10 else "") if tags else "none"
        raise RegistryError(f"registry {client.host}: repository {repo} has no image {reference} (tags: {have})",
                            status=404, diagnostics=err.diagnostics)
    if resp.status_code != 200:
        raise client.fail(resp, what)
    data = resp.content
    if len(data) > MAX_MANIFEST:
        raise RegistryError(f"{what}: {len(data)} bytes is too large for a manifest")
    if reference.startswith("sha256:"):
        verify_bytes(data, reference, None, what)
    mt = resp.headers.get("Content-Type", "").split(";")[0].strip()
    return data, mt


def list_tags(client: RegistryClient, repo: str) -> list[str] | None:
    """The repository's tags (first page), or None if the registry does not know the repository."""
    what = f"{client.host}/{repo}: tags"
    resp = client.request("GET", client.url(f"{repo}/tags/list"), _pull_scope(repo), what)
    if resp.status_code == 404:
        return None
    if resp.status_code != 200:
        return []
    try:
        return [t for t in resp.json().get("tags") or [] if isinstance(t, str)]
    except (ValueError, AttributeError):
        return []


def get_blob_bytes(client: RegistryClient, repo: str, desc: Descriptor) -> bytes:
    """A small blob's bytes (unverified: the caller checks them against ``desc``)."""
    what = f"{client.host}/{repo}: blob {desc.digest}"
    resp = client.request("GET", client.url(f"{repo}/blobs/{desc.digest}"), _pull_scope(repo), what)
    if resp.status_code != 200:
        raise client.fail(resp, what)
    return resp.content


def download_blob(client: RegistryClient, repo: str, desc: Descriptor, store: BlobStore) -> Path:
    """Make sure the blob is in ``store`` (downloaded and verified if not); returns its path.

    A cached copy is verified (a stamp recorded at the first full check, else hashed again) and a bad one is
    dropped and downloaded again: a damaged cache never fails every later build."""
    import requests

    if cached_ok(store, desc):
        return store.path(desc.digest)
    what = f"{client.host}/{repo}: blob {desc.digest}"
    for attempt in range(client.retries + 1):
        resp = client.request("GET", client.url(f"{repo}/blobs/{desc.digest}"), _pull_scope(repo), what,
                              stream=True)
        if resp.status_code != 200:
            raise client.fail(resp, what)
        try:
            resp.raw.decode_content = True
            store.add_stream(resp.raw, desc.digest, desc.size)
            return store.path(desc.digest)
        except (requests.RequestException, OSError) as exc:
            if attempt >= client.retries:
                raise RegistryError(f"{what}: download failed ({describe_error(exc)})", temporary=True) from None
            client.sleep(attempt)
        except ImageError as exc:
            raise RegistryError(f"{what}: {exc}") from None
        finally:
            resp.close()
    raise AssertionError("unreachable")


def cached_ok(store: BlobStore, desc: Descriptor) -> bool:
    """Whether ``store`` holds ``desc`` intact; a damaged copy is removed."""
    if not store.has(desc.digest):
        return False
    path = store.path(desc.digest)
    if not desc.digest.startswith("sha256:"):
        return True  # read through a verifying reader only
    if verify_file(path, sha256=desc.digest[7:], size=desc.size):
        return True
    drop_file(path)
    return False


class RegistrySource:
    """A blob source over one registry repository; layers land in the shared blob cache."""

    def __init__(self, client: RegistryClient, repo: str, known: dict[str, bytes] | None = None,
                 store: BlobStore | None = None):
        self.client = client
        self.repo = repo
        self.known = dict(known or {})
        self.store = store or BlobStore.default()
        self.layers: list[Descriptor] = []

    @property
    def origin(self) -> tuple[str, str]:
        """(registry host, repository): where a push to the same registry can mount these blobs from."""
        return self.client.host, self.repo

    def fetch(self, desc: Descriptor) -> bytes:
        if desc.digest in self.known:
            return self.known[desc.digest]
        if desc.media_type in MANIFEST_TYPES + INDEX_TYPES:
            return get_manifest(self.client, self.repo, desc.digest)[0]
        if cached_ok(self.store, desc):
            return self.store.read(desc.digest, desc.size)
        return get_blob_bytes(self.client, self.repo, desc)

    def opener(self, desc: Descriptor) -> Opener:
        self.layers.append(desc)
        store, client, repo = self.store, self.client, self.repo

        def _open() -> BinaryIO:
            download_blob(client, repo, desc, store)
            return store.opener(desc.digest, desc.size)()

        return _open

    def prefetch(self, jobs: int) -> None:
        """Download every layer handed out so far that the cache lacks, ``jobs`` at a time."""
        missing = [d for d in self.layers if not cached_ok(self.store, d)]
        if not missing:
            return
        with thread_pool(jobs, len(missing), "pull") as pool:
            for f in [pool.submit(download_blob, self.client, self.repo, d, self.store) for d in missing]:
                f.result()


def pull_image(ref: str | RegistryRef, platform: Platform, options: RegistryOptions | None = None,
               store: BlobStore | None = None) -> Image:
    """The image ``ref`` names for ``platform``, its layers downloaded (in parallel, verified) into the cache."""
    opts = options or RegistryOptions()
    r = ref if isinstance(ref, RegistryRef) else parse_reference(ref)
    client = RegistryClient(r.host, opts)
    data, mt = get_manifest(client, r.repository, r.reference)
    desc = Descriptor(mt or MEDIA_TYPE_MANIFEST, digest_bytes(data), len(data))
    if r.digest and desc.digest != r.digest:
        raise RegistryError(f"{r}: the registry returned a manifest with digest {desc.digest}")
    source = RegistrySource(client, r.repository, {desc.digest: data}, store)
    image = resolve_image(source, desc, platform, f"base image {r}", origin=source.origin)
    source.prefetch(opts.jobs)
    name = f"{r.name}:{r.tag}" if r.tag else f"{r.name}@{desc.digest}"
    annotations = {ANNOTATION_BASE_NAME: name,
                   ANNOTATION_BASE_DIGEST: image.annotations.get(ANNOTATION_BASE_DIGEST, desc.digest)}
    return set_annotations(image, annotations)
