"""`oci-conda solve`: the dry run users reach for first."""

from __future__ import annotations

import json
import os
from pathlib import Path

from realenv import make_real_channel, oci_conda


def test_solve_text_json_and_unsat(realdata: Path, tmp_path: Path) -> None:
    chan = make_real_channel(realdata, tmp_path / "channel")
    env = dict(os.environ, OCI_CONDA_CACHE=str(tmp_path / "cache"))
    f = tmp_path / "e.yml"
    f.write_text(f"channels: ['{chan}']\ndependencies: [openssl]\n")
    text = oci_conda("solve", str(f), env=env).stdout.splitlines()
    recs = json.loads(oci_conda("solve", str(f), "--json", env=env).stdout)
    assert {r["name"] for r in recs} >= {"openssl", "ca-certificates", "libgcc-ng"}
    for r in recs:
        assert {"name", "version", "build", "build_number", "subdir", "channel", "url", "sha256"} <= set(r)
    # one line per package: name version build channel/subdir
    assert sorted(text) == sorted(f"{r['name']} {r['version']} {r['build']} {r['channel']}/{r['subdir']}" for r in recs)
    f.write_text(f"channels: ['{chan}']\ndependencies: ['openssl <3', xz]\n")
    p = oci_conda("solve", str(f), env=env, check=False)
    assert p.returncode == 3 and not p.stdout
    assert "openssl" in p.stderr and "Traceback" not in p.stderr
