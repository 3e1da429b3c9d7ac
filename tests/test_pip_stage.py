"""The pip stage's own rules, fast: locked entries as wheel records, the target, layer budgets, the lock model."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from wheelhouse import build_wheel

from oci_conda.conda.lockentries import PypiEntry
from oci_conda.conda.records import PackageRecord
from oci_conda.errors import PackageError, SpecError
from oci_conda.layers.plan import LayerPlan
from oci_conda.layers.wheels import (
    merge_wheel_plans,
    target_for,
    wheel_layers,
    wheel_records_from_entries,
)
from oci_conda.lockfile import (
    Lock,
    LockError,
    PlatformLock,
    dump_lock,
    parse_lock_document,
)
from oci_conda.oci.tar import TarEntry
from oci_conda.pypi.fetch import FetchedWheel
from oci_conda.pypi.records import WheelRecord

SHA = "ab" * 32


def _rec(name: str, version: str, build: str = "0") -> PackageRecord:
    return PackageRecord(name=name, version=version, build=build, build_number=0, subdir="linux-64",
                         channel="file:///c", url=f"file:///c/linux-64/{name}-{version}-{build}.conda",
                         fn=f"{name}-{version}-{build}.conda", sha256=SHA)


def test_locked_entries_become_wheel_records() -> None:
    recs = wheel_records_from_entries([
        PypiEntry("Requests", "2.32.3", "https://user:pw@example.invalid/r/requests-2.32.3-py3-none-any.whl",
                  sha256=SHA),
        PypiEntry("idna", "3.20", f"https://example.invalid/idna-3.20-py3-none-any.whl#sha256={SHA}"),
    ])
    assert [(r.name, r.sha256, r.filename) for r in recs] == [
        ("idna", SHA, "idna-3.20-py3-none-any.whl"), ("requests", SHA, "requests-2.32.3-py3-none-any.whl")]
    assert all("pw" not in r.url and "#" not in r.url for r in recs)


@pytest.mark.parametrize("entry", [
    PypiEntry("foo", "1.0", "https://example.invalid/foo-1.0.tar.gz", sha256=SHA),
    PypiEntry("bar", "1.0", "./src/bar", editable=True),
])
def test_locked_sources_need_a_wheel(entry: PypiEntry) -> None:
    with pytest.raises(SpecError, match=rf"pip: {entry.name} 1.0 is locked as .*a wheel is needed"):
        wheel_records_from_entries([entry])


def test_target_from_the_solution() -> None:
    t = target_for("linux-aarch64", [_rec("python", "3.12.4", "h_cpython"), _rec("zlib", "1.3")],
                   [_rec("__glibc", "2.34"), _rec("__unix", "0")], "env.yml")
    assert (t.machine, t.python.abi, t.glibc) == ("aarch64", "cp312", (2, 34))
    assert t.platforms()[0] == "manylinux_2_34_aarch64"
    with pytest.raises(SpecError, match=r"^env.yml: the pip: section needs python from conda.*linux-64"):
        target_for("linux-64", [_rec("zlib", "1.3")], [], "env.yml")


def _plan(name: str, size: int) -> LayerPlan:
    return LayerPlan(name=name, packages=[name], entries=[
        TarEntry("opt/conda/lib", "dir", 0o755), TarEntry(f"opt/conda/lib/{name}", "file", size=size, data=b"")])


def test_wheel_layers_fit_the_budget() -> None:
    conda = [_plan(f"c{i}", 10) for i in range(5)]
    wheels = [_plan(f"pip: w{i}", i + 1) for i in range(4)]
    assert merge_wheel_plans(conda, wheels, "packages", 100, 0) == [*conda, *wheels]
    tight = merge_wheel_plans(conda, wheels, "packages", 7, 0)  # room for 2: the biggest wheel + the rest
    assert [p.name for p in tight] == [*(c.name for c in conda), "pip: w3", "pip: 3 packages"]
    assert [e.path for e in tight[-1].entries] == ["opt/conda/lib", "opt/conda/lib/pip: w0", "opt/conda/lib/pip: w1",
                                                   "opt/conda/lib/pip: w2"]
    (single,) = merge_wheel_plans([_plan("all", 1)], wheels, "single", 100, 0)
    assert len([e for e in single.entries if e.path == "opt/conda/lib"]) == 1 and len(single.entries) == 6


def test_lock_round_trips_wheels_without_credentials(tmp_path: Path) -> None:
    w = WheelRecord("markupsafe", "3.0.2", "MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.whl",
                    "http://u:secret@127.0.0.1:1/files/MarkupSafe-3.0.2-cp311-cp311-manylinux_2_17_x86_64.whl",
                    sha256=SHA, size=123, requested=True)
    lock = Lock(platforms={"linux-64": PlatformLock("linux-64", (_rec("python", "3.11.7"),), wheels=(w,))})
    data = dump_lock(lock)
    assert b"secret" not in data
    back = parse_lock_document(json.loads(data), "x.lock").platforms["linux-64"].wheels
    assert back == (WheelRecord(**{**w.to_dict(), "url": w.url.replace("u:secret@", "")}),)  # type: ignore[arg-type]
    plain = Lock(platforms={"linux-64": PlatformLock("linux-64", (_rec("python", "3.11.7"),))})
    assert b"wheels" not in dump_lock(plain)  # locks without a pip section keep their bytes
    doc = json.loads(data)
    doc["platforms"]["linux-64"]["wheels"][0]["url"] = "http://u:p@127.0.0.1/x.whl"
    with pytest.raises(LockError, match="wheels/0/url"):
        parse_lock_document(doc, "x.lock")
    del doc["platforms"]["linux-64"]["wheels"][0]["size"]
    with pytest.raises(LockError, match="wheels/0"):
        parse_lock_document(doc, "x.lock")


def _fetched(tmp_path: Path, name: str) -> FetchedWheel:
    whl = build_wheel(tmp_path / "w", name, "1.0", entry_points={"console_scripts": {name: f"{name}:main"}})
    rec = WheelRecord(name, "1.0", whl.name, f"http://127.0.0.1:1/{whl.name}",
                      sha256=hashlib.sha256(whl.read_bytes()).hexdigest(), size=whl.stat().st_size)
    return FetchedWheel(rec, whl)


def test_a_wheel_is_a_layer_that_stands_alone(tmp_path: Path) -> None:
    out = wheel_layers([_fetched(tmp_path, "demo")], prefix="/opt/conda", staging=tmp_path / "s", conda_paths=(),
                       compile=False, conda_records=[_rec("python", "3.11.7")], warnings=[], jobs=1)
    (plan,) = out.plans
    paths = [e.path for e in plan.entries]
    assert plan.name == "pip: demo 1.0" and paths == sorted(paths)
    assert {"opt", "opt/conda", "opt/conda/bin", "opt/conda/bin/demo",
            "opt/conda/lib/python3.11/site-packages/demo/__init__.py"} <= set(paths)
    script = next(e for e in plan.entries if e.path == "opt/conda/bin/demo")
    assert script.mode == 0o755


def test_a_wheel_may_not_overwrite_a_conda_file(tmp_path: Path) -> None:
    with pytest.raises(PackageError, match=r"demo 1.0 .*would overwrite lib/python3.11/site-packages/demo/__init__.py"):
        wheel_layers([_fetched(tmp_path, "demo")], prefix="/opt/conda", staging=tmp_path / "s",
                     conda_paths=["opt/conda/lib/python3.11/site-packages/demo/__init__.py"], compile=False,
                     conda_records=[_rec("python", "3.11.7")], warnings=[], jobs=1)
