"""The hostile-package corpus through the real command line: each case refused with its own one-line message naming the
package and the member, exit non-zero, nothing written outside the cache entries a build may make (canaries around the
cache, the temp dir and the work dir untouched), no output file, and the next good build on the same cache works."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import hostile
from realenv import oci_conda

CASES = sorted(hostile.cases(Path("/nonexistent")))


@pytest.mark.parametrize("case", CASES)
def test_hostile_package_is_refused(case: str, tmp_path: Path) -> None:
    arena = hostile.Arena(tmp_path)
    c = hostile.cases(tmp_path)[case]()
    chan = tmp_path / "chan"
    hostile.make_channel(chan, c)
    name = c.index["name"]
    (arena.work / "env.yml").write_text(f"name: h\nchannels: [{chan}]\ndependencies: [{name}]\n")
    arena.before = arena.snapshot()
    out = arena.work / "out.tar"
    p = oci_conda("build", "env.yml", "-o", str(out), cwd=arena.work, env=arena.env(c.env), check=False, timeout=120)
    assert p.returncode != 0, p.stderr
    assert "Traceback" not in p.stderr, p.stderr
    errors = [line for line in p.stderr.splitlines() if line.startswith("oci-conda: error: ")]
    assert len(errors) == 1, p.stderr
    msg = errors[0][len("oci-conda: error: "):]
    assert re.search(c.message, msg), f"{msg!r} does not match {c.message!r}"
    assert not out.exists()
    assert sorted(x.name for x in arena.work.iterdir()) == ["canary", "env.yml"]
    assert not (tmp_path / "abs-canary").exists()
    for i, canary in enumerate(arena.canaries):
        assert canary.read_text() == f"canary {i}\n"
    assert arena.changes() == []
    # a package refused while unpacking never becomes a cache entry; nothing half-done is left
    stem = c.fn.rsplit(".conda", 1)[0].rsplit(".tar.bz2", 1)[0]
    left = [d.name for d in (arena.cache / "extracted").iterdir() if not d.name.endswith(".lock")]
    assert not [n for n in left if n.endswith(".tmp")], left
    if not c.extracts:
        assert not [n for n in left if n.endswith("-" + stem)], left

    (arena.work / "good.yml").write_text(f"name: g\nchannels: [{chan}]\ndependencies: [okpkg]\n")
    oci_conda("build", "good.yml", "-o", str(out), "-q", cwd=arena.work, env=arena.env(), timeout=120)
    assert out.is_file()


def test_corpus_has_every_kind() -> None:
    """The issue's list, each kind present at least once (guards against a case being dropped)."""
    kinds = ["dotdot", "absolute", "symlink-absolute", "symlink-dotdot", "write-through-link", "hardlink-dotdot",
             "chardev", "blockdev", "fifo", "socket-like-type", "file-then-dir", "dir-then-file",
             "paths-missing-file", "paths-wrong-sha256", "paths-wrong-size", "zip-extra-member", "zip-missing-pkg",
             "zip-duplicate-member", "bomb-ratio", "bomb-absolute-cap", "name-not-utf8"]
    assert set(kinds) <= set(CASES)
