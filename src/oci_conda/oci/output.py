"""Where built images go on disk: ``OUT.tar`` becomes an OCI archive, anything else an OCI layout directory."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oci_conda.oci.archive import write_archive
from oci_conda.oci.artifact import Artifact
from oci_conda.oci.image import Descriptor, Image, manifest_descriptor, set_annotations
from oci_conda.oci.layout import write_layout
from oci_conda.oci.memory import plan


@dataclass(frozen=True)
class WriteResult:
    """What was written: ``digest`` is what index.json points at (a manifest, or an index for several platforms)."""

    path: Path
    digest: str
    manifest_digests: list[str]
    descriptors: list[Descriptor]


def write_output(
    out: Path, images: list[Image], tag: str | list[str] | None = None, annotations: dict[str, str] | None = None,
    mtime: int = 0, attached: Sequence[Artifact] = (),
) -> WriteResult:
    """Write ``images`` under ``tag`` (several, one per platform, become one multi-platform index); a list of tags
    names the same image(s) once per tag in index.json.

    ``annotations`` go on every manifest and on index.json; ``attached`` artifacts (SBOMs whose subject is one of
    the manifests) are listed in index.json after the images, with no ref name.
    """
    if annotations:
        images = [set_annotations(img, annotations) for img in images]
    tags = tag if isinstance(tag, list) else [tag]
    planned = plan([(img, t) for t in tags for img in images])
    for art in attached:
        planned.attach(art.manifest, art.descriptor, art.blobs)
    out = Path(out)
    if out.name.endswith(".tar"):
        top = write_archive(out, planned, annotations, mtime)
    else:
        top = write_layout(out, planned, annotations)
    return WriteResult(out, top[0].digest, [manifest_descriptor(img).digest for img in images], top)
