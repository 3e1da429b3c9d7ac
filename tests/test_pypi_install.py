"""Installing wheels at a conda prefix: schemes, RECORD, entry points, metadata pip and importlib read."""

from __future__ import annotations

import base64
import csv
import hashlib
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from wheelhouse import build_wheel, real_wheelhouse, sha256_file

from oci_conda.errors import FetchError, InstallError, PackageError
from oci_conda.pypi.install import install_wheel
from oci_conda.pypi.records import WheelRecord

PREFIX = "/opt/conda"
PY = f"{sys.version_info[0]}.{sys.version_info[1]}"
SITE = f"lib/python{PY}/site-packages"


def rec(wheel: Path, **kw: object) -> WheelRecord:
    name, version = wheel.name.split("-")[:2]
    fields: dict = {"name": name, "version": version, "filename": wheel.name, "sha256": sha256_file(wheel),
                    "url": f"https://files.example/{wheel.name}", "size": wheel.stat().st_size}
    return WheelRecord(**{**fields, **kw})


@pytest.fixture
def tool(tmp_path: Path) -> Path:
    return build_wheel(tmp_path / "w", "tool-kit", "1.2", requires=("idna",),
                       entry_points={"console_scripts": {"tool": "tool_kit:main"},
                                     "gui_scripts": {"tool-gui": "tool_kit:main"}},
                       files={"tool_kit/cli.py": b"def main():\n    print('tool ran')\n"},
                       data={"headers/tool.h": b"int tool;\n", "data/share/tool/x.txt": b"x\n",
                             "scripts/run.sh": b"#!/bin/sh\necho hi\n"})


def test_layout_record_and_scripts(tool: Path, tmp_path: Path) -> None:
    staging = tmp_path / "stage"
    inst = install_wheel(tool, rec(tool, requested=True), prefix=PREFIX, python=PY, staging=staging)
    info = f"{SITE}/tool_kit-1.2.dist-info"
    assert set(inst.files) == {
        "bin/run.sh", "bin/tool", "bin/tool-gui", f"include/python{PY}/tool-kit/tool.h", "share/tool/x.txt",
        f"{SITE}/tool_kit/__init__.py", f"{SITE}/tool_kit/cli.py", f"{info}/METADATA", f"{info}/WHEEL",
        f"{info}/RECORD", f"{info}/INSTALLER", f"{info}/REQUESTED", f"{info}/entry_points.txt"}
    assert list(inst.files) == sorted(inst.files)
    assert (staging / info / "INSTALLER").read_text() == "pip\n"
    script = (staging / "bin/tool").read_text()
    assert script.startswith(f"#!{PREFIX}/bin/python\n") and "from tool_kit import main" in script
    assert os.access(staging / "bin/tool", os.X_OK)
    # RECORD lists every file with a correct hash and size, relative to site-packages.
    site = staging / SITE
    rows = list(csv.reader((site / "tool_kit-1.2.dist-info/RECORD").open()))
    listed = {os.path.normpath(site / r[0]) for r in rows}
    assert listed == {os.path.normpath(staging / f) for f in inst.files}
    for path, digest, size in rows:
        if digest:
            data = (site / path).read_bytes()
            assert digest == "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(
                b"=").decode() and int(size) == len(data)


def test_reproducible_and_direct_url(tool: Path, tmp_path: Path) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    r = rec(tool, direct=True)
    fa = install_wheel(tool, r, prefix=PREFIX, python=PY, staging=a).files
    fb = install_wheel(tool, r, prefix=PREFIX, python=PY, staging=b).files
    assert fa == fb and all((a / f).read_bytes() == (b / f).read_bytes() for f in fa)
    direct = (a / SITE / "tool_kit-1.2.dist-info/direct_url.json").read_text()
    assert direct == ('{"archive_info": {"hash": "sha256=%s", "hashes": {"sha256": "%s"}}, "url": '
                      '"https://files.example/%s"}' % (r.sha256, r.sha256, tool.name))
    assert "REQUESTED" not in " ".join(fa)


def test_importlib_metadata_and_console_script_in_a_subprocess(tool: Path, tmp_path: Path) -> None:
    staging = tmp_path / "stage"
    install_wheel(tool, rec(tool), prefix=PREFIX, python=PY, staging=staging)
    env = dict(os.environ, PYTHONPATH=str(staging / SITE))
    code = ("import importlib.metadata as m; d = m.distribution('tool-kit'); "
            "print(d.version, d.read_text('INSTALLER').strip(), sorted(e.name for e in d.entry_points), "
            "d.requires)")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1.2 pip ['tool', 'tool-gui'] ['idna']"
    # The launcher itself runs (with this host's python standing in for the image's).
    (staging / SITE / "tool_kit/__init__.py").write_text("from .cli import main\n")
    ran = subprocess.run([sys.executable, str(staging / "bin/tool")], env=env, capture_output=True, text=True)
    assert ran.stdout == "tool ran\n"


def test_real_wheels_install_and_import(tmp_path: Path) -> None:
    house = real_wheelhouse()
    staging = tmp_path / "stage"
    for wheel in sorted(house.glob("*.whl")):
        if "aarch64" in wheel.name:
            continue
        install_wheel(wheel, rec(wheel), prefix=PREFIX, python=PY, staging=staging)
    code = ("import sys, requests, markupsafe, importlib.metadata as m; "
            "assert markupsafe.__file__.startswith(sys.argv[1]) and requests.__file__.startswith(sys.argv[1]); "
            "print(markupsafe.escape('<a>'), m.distribution('requests').read_text('INSTALLER').strip())")
    out = subprocess.run([sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(staging / SITE)!r}); "
                          + code, str(staging / SITE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "&lt;a&gt; pip"


def test_pip_lists_them(tmp_path: Path) -> None:
    house = real_wheelhouse()
    staging = tmp_path / "stage"
    for wheel in sorted(house.glob("*x86_64*.whl")) + sorted(house.glob("*-none-any.whl")):
        install_wheel(wheel, rec(wheel, requested=wheel.name.startswith("requests")), prefix=PREFIX, python=PY,
                      staging=staging)
    out = subprocess.run([sys.executable, "-m", "pip", "list", "--path", str(staging / SITE), "--format", "json",
                          "--disable-pip-version-check", "--not-required"], capture_output=True, text=True,
                         check=True, env=dict(os.environ, PIP_CONFIG_FILE=os.devnull))
    listed = {d["name"].lower() for d in json.loads(out.stdout)}
    assert listed == {"requests", "markupsafe"}  # the rest are requests' dependencies, all present


def test_wheel_not_matching_its_record_is_refused(tool: Path, tmp_path: Path) -> None:
    with pytest.raises(FetchError, match="does not match its record"):
        install_wheel(tool, rec(tool, sha256="0" * 64), prefix=PREFIX, python=PY, staging=tmp_path / "s")
    assert not (tmp_path / "s").exists()


def hostile(tmp_path: Path, name: str, body: bytes = b"x") -> Path:
    wheel = build_wheel(tmp_path / "h", "evil", "1.0")
    with zipfile.ZipFile(wheel, "a") as zf:
        zf.writestr(name, body)
    return wheel


@pytest.mark.parametrize("entry", ["../../escape.py", "evil/.wh.hidden", "evil-1.0.data/data/../../../x",
                                   "evil-1.0.data/data/conda-meta/fake.json", "evil-1.0.data/weird/x",
                                   "/abs/path.py"])
def test_hostile_entries_refused(tmp_path: Path, entry: str) -> None:
    wheel = hostile(tmp_path, entry)
    staging = tmp_path / "stage"
    with pytest.raises(PackageError) as err:
        install_wheel(wheel, rec(wheel), prefix=PREFIX, python=PY, staging=staging)
    msg = str(err.value)
    assert "\n" not in msg and "evil 1.0" in msg and ("refusing entry" in msg or "unknown install scheme" in msg)
    assert not staging.exists() or not any(staging.rglob("*.py"))
    assert not (tmp_path / "escape.py").exists()


def test_record_mismatch_refused(tmp_path: Path) -> None:
    wheel = build_wheel(tmp_path / "w", "liar", "1.0")
    tampered = tmp_path / "t" / wheel.name
    tampered.parent.mkdir()
    with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            dst.writestr(item, b"print('tampered')\n" if item.filename == "liar/__init__.py" else data)
    with pytest.raises(PackageError, match="invalid wheel"):
        install_wheel(tampered, rec(tampered), prefix=PREFIX, python=PY, staging=tmp_path / "s")


def test_two_wheels_may_not_overwrite_each_other(tmp_path: Path) -> None:
    a = build_wheel(tmp_path / "a", "one", "1.0", files={"shared/mod.py": b"a\n"})
    b = build_wheel(tmp_path / "b", "two", "1.0", files={"shared/mod.py": b"b\n"})
    staging = tmp_path / "stage"
    install_wheel(a, rec(a), prefix=PREFIX, python=PY, staging=staging)
    with pytest.raises(InstallError, match=f"would overwrite {SITE}/shared/mod.py"):
        install_wheel(b, rec(b), prefix=PREFIX, python=PY, staging=staging)
