"""Start-up cost (issue 16: a no-op rebuild in 0.4 s, ``--version`` in 0.1 s): what a command imports.

Timing is the benchmarks' job (``benchmarks/build_bench.py``: no-op rebuild and ``--version``, whole processes); these
tests keep the cheap start from regressing where it can be checked exactly: which heavy modules a process loads.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO

#: Modules the CLI must not load just by starting: each costs 5-100 ms and is needed only by some commands.
HEAVY = ("requests", "urllib3", "jsonschema", "rich", "packaging", "installer", "cryptography", "nacl", "msgpack",
         "zstandard", "conda_package_streaming", "conda_pack", "http.client", "email.parser", "ssl")

#: Prints, at exit, which of the named modules the process loaded, then runs the CLI like the console script.
PROBE = """
import atexit, json, sys
names = json.loads(sys.argv[1])
atexit.register(lambda: print("LOADED " + json.dumps([n for n in names if n in sys.modules]), file=sys.stderr))
from oci_conda.entry import main
sys.exit(main(sys.argv[2:]))
"""


def _loaded(*args: str, env: dict[str, str] | None = None) -> tuple[list[str], subprocess.CompletedProcess]:
    p = subprocess.run([sys.executable, "-c", PROBE, json.dumps(HEAVY), *args], capture_output=True, text=True,
                       env=env, timeout=300)
    line = [ln for ln in p.stderr.splitlines() if ln.startswith("LOADED ")]
    assert line, p.stderr
    return json.loads(line[-1][len("LOADED "):]), p


def test_version_loads_nothing_heavy() -> None:
    got, p = _loaded("--version")
    assert p.returncode == 0 and p.stdout.startswith("oci-conda ")
    assert got == []
    assert "oci_conda.cli" not in subprocess.run(
        [sys.executable, "-c", "import sys, oci_conda.entry; print(sorted(sys.modules))"],
        capture_output=True, text=True, check=True).stdout


def test_importing_the_cli_loads_nothing_heavy() -> None:
    p = subprocess.run([sys.executable, "-c", "import json, sys, oci_conda.cli; "
                        f"print(json.dumps([n for n in {list(HEAVY)!r} if n in sys.modules]))"],
                       capture_output=True, text=True, check=True)
    assert json.loads(p.stdout) == []


def test_noop_rebuild_from_a_local_channel_loads_nothing_heavy(tmp_path: Path) -> None:
    """The second build of the hello example (layers memoised) needs neither HTTP, nor jsonschema (the file is
    valid), nor a terminal's progress display, nor a compressor: none of them is imported."""
    shutil.copytree(REPO / "examples" / "hello", tmp_path / "hello",
                    ignore=shutil.ignore_patterns("src", "build_channel.py", ".*"))
    env = {**os.environ, "OCI_CONDA_CACHE": str(tmp_path / "cache"), "SOURCE_DATE_EPOCH": "1700000000"}
    args = ("build", str(tmp_path / "hello" / "environment.yml"), "-o", str(tmp_path / "out.tar"), "--json")
    first, p1 = _loaded(*args, env=env)
    assert p1.returncode == 0, p1.stderr
    again, p2 = _loaded(*args, env=env)
    assert p2.returncode == 0, p2.stderr
    assert json.loads(p2.stdout)["manifest_digest"] == json.loads(p1.stdout)["manifest_digest"]
    # email.parser: the layer memo's key names conda-pack's version, which importlib.metadata reads from METADATA
    assert [m for m in again if m != "email.parser"] == [], again
