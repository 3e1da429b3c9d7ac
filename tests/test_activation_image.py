"""An activated environment: what a package's activate.d scripts set is in the image Env (and visible to
`podman run ... env`); a script that cannot be evaluated is sourced by an entrypoint wrapper or named in a warning."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from conftest import need_tool
from pkgbuilder import build_package, index_channel
from realenv import Podman, oci_conda

from oci_conda.oci.blobs import file_opener
from oci_conda.oci.image import (
    Descriptor,
    Platform,
    append_layer,
    empty_image,
    set_config,
)
from oci_conda.oci.output import write_output
from oci_conda.oci.tar import TarEntry, write_layer

BUSYBOX = Path("/bin/busybox")
GDAL_ACTIVATE = b"""#!/bin/sh
if [ -n "${GDAL_DATA:-}" ]; then
  export _CONDA_SET_GDAL_DATA=$GDAL_DATA
fi
export GDAL_DATA=${CONDA_PREFIX}/share/gdal
export GDAL_DRIVER_PATH="${CONDA_PREFIX}/lib/gdalplugins"
"""
DYNAMIC_ACTIVATE = b'export MACHINE_SEEN="machine-$(echo ok)"\n'


def _busybox_base(tmp_path: Path) -> str:
    """busybox-static as /bin/busybox with /bin/sh and /bin/env linked to it, as an OCI layout."""
    if not BUSYBOX.is_file():
        need_tool("busybox")
    blob = tmp_path / "busybox-layer"
    with open(blob, "wb") as f:
        info = write_layer([TarEntry("bin", "dir", 0o755), TarEntry("bin/busybox", "file", 0o755,
                                                                      size=BUSYBOX.stat().st_size, source=str(BUSYBOX)),
                            TarEntry("bin/env", "symlink", linkname="busybox"),
                            TarEntry("bin/sh", "symlink", linkname="busybox")], f, "gzip", 0)
    img = append_layer(empty_image(Platform("linux", "amd64")), Descriptor(info.media_type, info.digest, info.size),
                       info.diff_id, file_opener(blob), {"created_by": "busybox", "created": "1970-01-01T00:00:00Z"})
    img = set_config(img, env=["PATH=/bin", "LANG=C"], created=0)
    write_output(tmp_path / "busybox", [img], tag="busybox")
    return f"oci:{tmp_path / 'busybox'}:busybox"


def _env(tmp_path: Path, image: str, dynamic: bool) -> tuple[Path, dict]:
    chan = tmp_path / "channel"
    files = {"etc/conda/activate.d/gdal-activate.sh": GDAL_ACTIVATE, "share/gdal/gdalvrt.xsd": b"<xsd/>\n"}
    if dynamic:
        files["etc/conda/activate.d/zz-dynamic.sh"] = DYNAMIC_ACTIVATE
    build_package(chan / "linux-64", "gdal-like", "3.8.0", files=files)
    index_channel(chan)
    f = tmp_path / "environment.yml"
    f.write_text(f"name: geo\nchannels: ['./channel']\ndependencies: [gdal-like]\n"
                 f"variables: {{GDAL_DRIVER_PATH: /custom}}\nimage: {image}\n")
    return f, dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))


def _config(archive: Path) -> dict:
    p = subprocess.run(["skopeo", "inspect", "--config", f"oci-archive:{archive}"], check=True, capture_output=True,
                       text=True)
    return json.loads(p.stdout)["config"]


def test_static_activation_goes_into_env_in_order(tmp_path: Path) -> None:
    need_tool("skopeo")
    base = _busybox_base(tmp_path)
    env_file, env = _env(tmp_path, f"{{base: '{base}'}}", dynamic=True)
    out = tmp_path / "geo.tar"
    p = oci_conda("build", str(env_file), "-o", str(out), env=env)
    cfg = _config(out)
    names = [e.split("=", 1)[0] for e in cfg["Env"]]
    assert "GDAL_DATA=/opt/conda/share/gdal" in cfg["Env"]
    # after PATH/CONDA_PREFIX, before the file's variables (which win: they come later)
    assert names.index("CONDA_PREFIX") < names.index("GDAL_DATA") < len(names) - 1 - names[::-1].index("GDAL_DRIVER_PATH")
    assert cfg["Env"][-1] == "GDAL_DRIVER_PATH=/custom"
    assert "activation: GDAL_DATA=/opt/conda/share/gdal" in p.stderr
    warning = [ln for ln in p.stderr.splitlines() if ln.startswith("warning: activation scripts")]
    assert len(warning) == 1 and "etc/conda/activate.d/zz-dynamic.sh" in warning[0] and "image.activate" in warning[0]
    assert "MACHINE_SEEN" not in json.dumps(cfg) and not cfg.get("Entrypoint")


def test_wrapper_needs_a_shell(tmp_path: Path) -> None:
    env_file, env = _env(tmp_path, "{activate: script}", dynamic=True)  # scratch: no /bin/sh
    p = oci_conda("build", str(env_file), "-o", str(tmp_path / "x.tar"), env=env)
    assert "no /bin/sh" in p.stderr and "zz-dynamic.sh" in p.stderr


@pytest.mark.slow
def test_podman_run_sees_activation(tmp_path: Path) -> None:
    base = _busybox_base(tmp_path)
    env_file, env = _env(tmp_path, f"{{base: '{base}', activate: script, cmd: [env]}}", dynamic=True)
    out = tmp_path / "geo.tar"
    p = oci_conda("build", str(env_file), "-o", str(out), env=env)
    assert "warning" not in p.stderr
    pm = Podman(tmp_path / "podman")
    try:
        run = pm("run", "--rm", f"oci-archive:{out}")
        seen = dict(ln.split("=", 1) for ln in run.stdout.splitlines() if "=" in ln)
        assert seen["GDAL_DATA"] == "/opt/conda/share/gdal"  # static: from the image Env
        assert seen["MACHINE_SEEN"] == "machine-ok"  # dynamic: sourced by the wrapper at start
        assert seen["GDAL_DRIVER_PATH"] == "/custom"
        run = pm("run", "--rm", f"oci-archive:{out}", "sh", "-c", "echo $GDAL_DATA")
        assert run.stdout.strip() == "/opt/conda/share/gdal"
    finally:
        pm.cleanup()


@pytest.mark.parametrize("activate", ["env", "script"])
def test_memo_hit_gives_the_same_image_as_a_full_build(tmp_path: Path, activate: str) -> None:
    """The second build of the same inputs comes from the layer memo: its config (activation variables, the wrapper
    entrypoint) and so its digest are the first build's."""
    base = _busybox_base(tmp_path)
    env_file, env = _env(tmp_path, f"{{base: '{base}', activate: {activate}}}", dynamic=True)
    first = json.loads(oci_conda("build", str(env_file), "-o", str(tmp_path / "a.tar"), "--json", env=env).stdout)
    assert len(list((tmp_path / "cache" / "layers" / "env").glob("*.json"))) == 1  # the first build remembered
    run = oci_conda("build", str(env_file), "-o", str(tmp_path / "b.tar"), "--json", env=env)
    second = json.loads(run.stdout)
    assert "unchanged (memo)" in run.stderr and "extract" not in second["timings"]
    assert first["platforms"][0]["activation"]["GDAL_DATA"] == "/opt/conda/share/gdal"
    assert second["platforms"][0]["activation"] == first["platforms"][0]["activation"]
    assert second["digest"] == first["digest"]
    assert (tmp_path / "a.tar").read_bytes() == (tmp_path / "b.tar").read_bytes()
