"""Static evaluation of activation scripts: what is static is evaluated exactly, anything else is left to a shell."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from oci_conda.activation import activation_scripts, evaluate, state_env_vars, wrapper_script

PREFIX = "/opt/conda"

GDAL_LIKE = b"""#!/bin/sh
# Store existing env vars and set to this conda env
# so other installs don't pollute the environment.

if [ -n "${GDAL_DATA}" ]; then
    export _CONDA_SET_GDAL_DATA=$GDAL_DATA
fi

export GDAL_DATA=$CONDA_PREFIX/share/gdal
export GDAL_DRIVER_PATH="${CONDA_PREFIX}/lib/gdalplugins"
CPL_ZIP_ENCODING=UTF-8; export CPL_ZIP_ENCODING
"""


def test_conda_forge_idiom_is_static() -> None:
    act = evaluate({"etc/conda/activate.d/gdal-activate.sh": GDAL_LIKE}, PREFIX)
    assert act.env == {"GDAL_DATA": "/opt/conda/share/gdal", "GDAL_DRIVER_PATH": "/opt/conda/lib/gdalplugins",
                       "CPL_ZIP_ENCODING": "UTF-8"}
    assert act.dynamic_scripts == []


@pytest.mark.parametrize("body", [
    b"export X=$(uname -m)\n", b"export X=`date`\n", b"if [ -d /x ]; then export X=1; fi\n",
    b"export X=$HOME/x\n", b"source other.sh\n", b"export X=a b\n", b'export X="unterminated\n',
    b"export X=$1\n", b"case $X in a) ;; esac\n", b"\xff\xfe\n",
])
def test_dynamic_scripts_are_not_half_applied(body: bytes) -> None:
    act = evaluate({"etc/conda/activate.d/a.sh": b"export FIRST=1\n" + body}, PREFIX)
    assert act.env == {} and act.dynamic_scripts == ["etc/conda/activate.d/a.sh"]


def test_order_state_and_defaults() -> None:
    scripts = {
        "etc/conda/activate.d/b.sh": b"export A=${A}:b\nexport U=${UNSET:-dflt}\n",
        "etc/conda/activate.d/a.sh": b"export A='lit $A'\n",
        "etc/conda/activate.d/c.fish": b"set -gx A fish\n",
        "etc/conda/activate.d/sub/d.sh": b"export A=nested\n",
    }
    assert activation_scripts(scripts) == ["etc/conda/activate.d/a.sh", "etc/conda/activate.d/b.sh"]
    state = json.dumps({"env_vars": {"A": "from-state", "bad name": "x"}}).encode()
    act = evaluate(scripts, PREFIX, {"PATH": "/usr/bin"}, state)
    assert act.env == {"A": "from-state", "U": "dflt"}
    assert state_env_vars(b"not json") == {} and state_env_vars(b'{"env_vars": []}') == {}


@pytest.mark.parametrize("script", [GDAL_LIKE, b"export A=\"x y\"\nexport B='q'\"$A\"\nC=3\nexport C\n"])
def test_matches_a_real_shell(tmp_path, script: bytes) -> None:
    """What we compute is what ``sh`` computes after sourcing the script in a clean environment."""
    path = tmp_path / "s.sh"
    path.write_bytes(script)
    act = evaluate({"etc/conda/activate.d/s.sh": script}, PREFIX, {"PATH": "/usr/bin:/bin"})
    out = subprocess.run(["sh", "-c", f'. "{path}"; env -0'], env={"PATH": "/usr/bin:/bin", "CONDA_PREFIX": PREFIX},
                         capture_output=True, check=True).stdout
    shell = dict(kv.split("=", 1) for kv in out.decode().split("\0") if kv)
    for k, v in act.env.items():
        assert shell[k] == v


def test_wrapper_sources_scripts_then_execs(tmp_path) -> None:
    (tmp_path / "etc/conda/activate.d").mkdir(parents=True)
    (tmp_path / "etc/conda/activate.d/x.sh").write_text('export FROM_SCRIPT="$(echo dyn)"\n')
    wrapper = tmp_path / "w.sh"
    wrapper.write_bytes(wrapper_script(str(tmp_path), ["etc/conda/activate.d/x.sh"]))
    os.chmod(wrapper, 0o755)
    out = subprocess.run([str(wrapper), "sh", "-c", 'echo "$FROM_SCRIPT $CONDA_PREFIX"'], capture_output=True,
                         text=True, check=True).stdout
    assert out.strip() == f"dyn {tmp_path}"
