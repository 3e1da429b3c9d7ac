"""Validate what we write against the OCI image-spec v1.1.1 JSON schemas in ``realdata/oci-schemas``."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

import jsonschema
import referencing
import referencing.exceptions
from referencing.jsonschema import DRAFT4

SCHEMAS = {
    "manifest": "image-manifest-schema.json",
    "index": "image-index-schema.json",
    "config": "config-schema.json",
    "descriptor": "content-descriptor.json",
    "layout": "image-layout-schema.json",
}
INDEX_TYPES = {"application/vnd.oci.image.index.v1+json"}


def oci_validator(realdata: Path, kind: str) -> jsonschema.Draft4Validator:
    """A validator for one OCI schema; ``$ref``s between the schema files resolve to the files next to it."""
    root = realdata / "oci-schemas"

    def retrieve(uri: str) -> referencing.Resource:
        p = root / uri.rstrip("/").rsplit("/", 1)[-1]
        if not p.is_file():
            raise referencing.exceptions.NoSuchResource(uri)
        return DRAFT4.create_resource(json.loads(p.read_text()))

    schema = json.loads((root / SCHEMAS[kind]).read_text())
    return jsonschema.Draft4Validator(schema, registry=referencing.Registry(retrieve=retrieve))  # type: ignore[call-arg]


def validate_layout_archive(archive: Path, realdata: Path) -> int:
    """Walk index → (nested indexes) → manifests → configs in an OCI archive; validate each and check its digest.

    Returns how many documents were validated (so a caller can see the walk reached something)."""
    validators = {k: oci_validator(realdata, k) for k in ("manifest", "index", "config", "layout")}
    with tarfile.open(archive) as t:
        def blob(digest: str) -> bytes:
            data = t.extractfile(f"blobs/sha256/{digest.split(':', 1)[1]}").read()  # type: ignore[union-attr]
            assert "sha256:" + hashlib.sha256(data).hexdigest() == digest
            return data

        validators["layout"].validate(json.load(t.extractfile("oci-layout")))  # type: ignore[arg-type]
        todo = [("index", json.load(t.extractfile("index.json")))]  # type: ignore[arg-type]
        count = 0
        while todo:
            kind, doc = todo.pop()
            validators[kind].validate(doc)
            count += 1
            if kind == "index":
                for d in doc["manifests"]:
                    sub = json.loads(blob(d["digest"]))
                    todo.append(("index" if d["mediaType"] in INDEX_TYPES else "manifest", sub))
            elif kind == "manifest":
                todo.append(("config", json.loads(blob(doc["config"]["digest"]))))
                for layer in doc["layers"]:
                    t.getmember(f"blobs/sha256/{layer['digest'].split(':', 1)[1]}")
    return count
