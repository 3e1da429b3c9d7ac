#!/usr/bin/env python3
"""Rebuild the offline example channel in ``examples/hello/channel/`` from ``src/hello.c``.

Two packages, made with the project's own test-package builder (``tests/pkgbuilder.py``):

* ``hello-1.0-0.conda`` (linux-64): a static C program whose data-file path is compiled in under conda-build's
  255-character prefix placeholder, listed in ``info/paths.json`` with ``file_mode: binary``;
* ``hello-data-1.0-0.conda`` (noarch: generic): ``share/hello/greeting.txt``, a text file that names its own
  install prefix through the text-mode placeholder.

Run ``python examples/hello/build_channel.py``; needs gcc and a static libc (Debian: ``libc6-dev``). Package
bytes are fixed (mtimes, owners, ordering, compression); the binary is as reproducible as the compiler makes it.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1] / "tests"))

from pkgbuilder import LONG_PLACEHOLDER, Executable, build_package, index_channel  # noqa: E402

TIMESTAMP = 1735689600000  # 2025-01-01T00:00:00Z, in milliseconds as in repodata

GREETING = f"""Hello from a conda package in an OCI image!
This text was installed at {LONG_PLACEHOLDER}/share/hello/greeting.txt
(the installer replaced the build-time placeholder with the real prefix, in this file and in the hello binary).
"""


def compile_hello(workdir: Path) -> bytes:
    """Build ``hello`` statically so it runs on a scratch base image with no libc."""
    src = workdir / "hello.c"
    shutil.copyfile(HERE / "src" / "hello.c", src)
    out = workdir / "hello"
    cmd = [
        "gcc", "-static", "-Os", "-s", "-o", str(out), str(src),
        f'-DPLACEHOLDER="{LONG_PLACEHOLDER}"',
        f"-ffile-prefix-map={workdir}=.", "-Wl,--build-id=none",
    ]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=workdir)
    data = out.read_bytes()
    if data.count(LONG_PLACEHOLDER.encode()) < 1:
        raise SystemExit("the placeholder did not make it into the binary")
    return data


def main() -> None:
    channel = HERE / "channel"
    if channel.exists():
        shutil.rmtree(channel)
    with tempfile.TemporaryDirectory(prefix="hello-build-") as tmp:
        binary = compile_hello(Path(tmp))
    build_package(
        channel / "noarch",
        "hello-data",
        "1.0",
        noarch="generic",
        subdir="noarch",
        files={"share/hello/greeting.txt": GREETING},
        text_prefix_files=["share/hello/greeting.txt"],
        timestamp=TIMESTAMP,
        license="MIT",
    )
    build_package(
        channel / "linux-64",
        "hello",
        "1.0",
        depends=["hello-data 1.0.*"],
        files={"bin/hello": Executable(binary)},
        binary_prefix_files=["bin/hello"],
        subdir="linux-64",
        timestamp=TIMESTAMP,
        license="MIT",
    )
    index_channel(channel)
    total = sum(p.stat().st_size for p in channel.rglob("*") if p.is_file())
    print(f"channel written to {channel} ({total} bytes)")


if __name__ == "__main__":
    main()
