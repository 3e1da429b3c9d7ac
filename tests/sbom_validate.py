"""What the SBOM tests share: layer tars made in memory, and the two SBOM validators: spdx-tools for SPDX 2.3, cyclonedx-python-lib's strict JSON schema
validator for CycloneDX 1.6 (test-only dependencies)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import zstandard
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from spdx_tools.spdx.parser.jsonlikedict.json_like_dict_parser import JsonLikeDictParser
from spdx_tools.spdx.validation.document_validator import validate_full_spdx_document


def validate_spdx(data: bytes) -> None:
    doc = JsonLikeDictParser().parse(json.loads(data))
    errors = validate_full_spdx_document(doc)
    assert errors == [], [e.validation_message for e in errors]


def validate_cdx(data: bytes) -> None:
    err = JsonStrictValidator(SchemaVersion.V1_6).validate_str(data.decode())
    assert err is None, str(err)


def layer(files: dict[str, bytes | str | None], compress: str = "gzip") -> io.BytesIO:
    """A layer tar: bytes are files, a str is a symlink target, None a directory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            if data is None:
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif isinstance(data, str):
                info.type, info.linkname = tarfile.SYMTYPE, data
                t.addfile(info)
            else:
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    if compress == "gzip":
        raw = gzip.compress(raw, mtime=0)
    elif compress == "zstd":
        raw = zstandard.ZstdCompressor().compress(raw)
    return io.BytesIO(raw)
