"""Wheel downloads: cached by sha256, verified on every use, bad entries replaced, credentials for their host only."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from wheelhouse import SimpleIndex, build_wheel, sha256_file

from oci_conda.errors import FetchError
from oci_conda.http import make_session
from oci_conda.pypi.fetch import fetch_wheel, fetch_wheels, verify_wheel
from oci_conda.pypi.hosts import HostCredentials
from oci_conda.pypi.records import WheelRecord

SECRET = "fetch-s3cret"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[SimpleIndex, list[Path]]]:
    wheels = [build_wheel(tmp_path / "w", f"pkg{i}", "1.0", files={f"pkg{i}/data.bin": bytes([i]) * 5000})
              for i in range(4)]
    idx = SimpleIndex(tmp_path / "w", auth=("bob", SECRET))
    yield idx, wheels
    idx.stop()


def record(idx: SimpleIndex, wheel: Path, **kw: object) -> WheelRecord:
    fields: dict = {"name": wheel.name.split("-")[0], "version": "1.0", "filename": wheel.name,
                    "url": f"{idx.url}/files/{wheel.name}", "sha256": sha256_file(wheel)}
    fields.update(kw)
    return WheelRecord(**fields)


def creds(idx: SimpleIndex) -> HostCredentials:
    return HostCredentials([idx.simple_url("bob", SECRET)])


def test_parallel_fetch_then_cache_hits(served, cache_env: Path) -> None:
    idx, wheels = served
    recs = [record(idx, w) for w in wheels]
    got = fetch_wheels(recs, make_session(), credentials=creds(idx), jobs=4)
    assert [g.record.name for g in got] == [r.name for r in recs]
    for g, w in zip(got, wheels):
        assert g.path.read_bytes() == w.read_bytes() and g.record.size == w.stat().st_size
        assert g.path == cache_env / "wheels" / g.record.sha256 / w.name
        verify_wheel(g.path, g.record)
    downloads = [p for p, _ in idx.log if p.startswith("/files/")]
    assert len(downloads) == 4 and all(auth for p, auth in idx.log)
    fetch_wheels(recs, make_session(), credentials=creds(idx))
    assert [p for p, _ in idx.log if p.startswith("/files/")] == downloads  # served from the cache


def test_corrupt_cache_entry_is_replaced(served, cache_env: Path) -> None:
    idx, wheels = served
    rec = record(idx, wheels[0])
    first = fetch_wheel(rec, make_session(), credentials=creds(idx))
    first.path.write_bytes(b"corrupted")
    with pytest.raises(FetchError):
        verify_wheel(first.path, first.record)
    again = fetch_wheel(first.record, make_session(), credentials=creds(idx))
    assert again.path.read_bytes() == wheels[0].read_bytes()
    assert len([p for p, _ in idx.log if p.startswith("/files/")]) == 2


def test_hash_size_and_cap_are_enforced(served, cache_env: Path) -> None:
    idx, wheels = served
    with pytest.raises(FetchError, match="sha256 mismatch") as err:
        fetch_wheel(record(idx, wheels[1], sha256="0" * 64), make_session(), credentials=creds(idx))
    assert "\n" not in str(err.value) and SECRET not in str(err.value)
    with pytest.raises(FetchError, match="larger than its recorded size"):
        fetch_wheel(record(idx, wheels[1], size=100), make_session(), credentials=creds(idx))
    with pytest.raises(FetchError, match="larger than the cap"):
        fetch_wheel(record(idx, wheels[1]), make_session(), credentials=creds(idx), max_size=1000)
    assert not list((cache_env / "wheels").rglob("*.whl"))  # nothing half-written left behind


def test_unknown_hash_is_measured(served, cache_env: Path) -> None:
    idx, wheels = served
    got = fetch_wheel(record(idx, wheels[2], sha256=None), make_session(), credentials=creds(idx))
    assert got.record.sha256 == sha256_file(wheels[2]) and got.record.size == wheels[2].stat().st_size
    assert got.path.parent.name == got.record.sha256


def test_credentials_only_for_their_own_host(served, tmp_path: Path, cache_env: Path) -> None:
    idx, wheels = served
    other = SimpleIndex(tmp_path / "w")  # same files, another port: another origin
    try:
        got = fetch_wheel(record(other, wheels[3]), make_session(), credentials=creds(idx))
        assert got.path.read_bytes() == wheels[3].read_bytes()
        assert other.log and not any(auth for _, auth in other.log)
    finally:
        other.stop()
    with pytest.raises(FetchError) as err:  # without credentials the index refuses, and says so in one line
        fetch_wheel(record(idx, wheels[3], sha256="1" * 64), make_session())
    assert "HTTP 401" in str(err.value)


def test_local_file_url(served, cache_env: Path) -> None:
    _, wheels = served
    rec = WheelRecord(name="pkg0", version="1.0", filename=wheels[0].name, url=wheels[0].as_uri(),
                      sha256=sha256_file(wheels[0]))
    assert fetch_wheel(rec, make_session()).path.read_bytes() == wheels[0].read_bytes()
