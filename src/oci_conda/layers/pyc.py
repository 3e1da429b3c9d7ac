"""``--compile-pyc``: byte-compile the Python sources under ``site-packages`` into the image, reproducibly.

conda compiles the sources of ``noarch: python`` packages when it links them; an image built without doing so makes
every container compile them again at each cold start (its writes are thrown away with the container, or fail on a
read-only root). Here they are compiled at build time with a host interpreter of the environment's ``X.Y``:

* invalidation ``unchecked-hash`` (PEP 552): the interpreter in the image trusts the ``.pyc`` without looking at the
  source's mtime (which the layer normalises anyway), so it never rewrites them;
* ``co_filename`` is the path in the image (``dfile``), not the staging directory;
* compiled in a fresh interpreter (``-S -s -B``, ``PYTHONHASHSEED=0``, nothing else imported): ``marshal`` output
  depends on reference counts of shared objects, so compiling inside a busy process gives other bytes.

Each ``.pyc`` joins the layer of the package that owns its source and is added to that package's ``conda-meta``
record (``files`` and ``paths_data``, ``path_type: pyc_file`` as conda records the pyc files it compiles, plus the
sha256 and size), so ``conda`` in the image sees a consistent prefix. Files a package already ships are left alone.
"""

from __future__ import annotations

import hashlib
import json
import os
import posixpath
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import MutableMapping, Sequence

from ..conda.records import PackageRecord
from ..oci.tar import TarEntry
from ..parallel import DEFAULT_JOBS, thread_pool

# Run by the host interpreter: reads [[source, dfile, cfile], ...] as JSON on stdin, writes the .pyc files, prints
# a JSON list of the sources that did not compile (syntax errors: e.g. templates or files for another Python).
_COMPILER = r"""
import json, py_compile, sys, warnings
warnings.simplefilter("ignore")
failed = []
for src, dfile, cfile in json.load(sys.stdin):
    try:
        py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True,
                           invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
    except (py_compile.PyCompileError, SyntaxError, ValueError, UnicodeDecodeError):
        failed.append(dfile)
json.dump(failed, sys.stdout)
"""

_CHUNK = 256  # sources per compiling interpreter

_PROBE = "import sys; print(sys.implementation.name, sys.implementation.cache_tag, sys.executable, " \
         "'%d.%d' % sys.version_info[:2])"


@dataclass
class PycReport:
    compiled: int = 0
    bytes: int = 0
    failed: list[str] = field(default_factory=list)
    interpreter: str | None = None
    skipped: str | None = None  # why nothing was compiled


def python_version(records: Sequence[PackageRecord]) -> str | None:
    """``X.Y`` of the environment's ``python`` record."""
    for r in records:
        if r.name == "python":
            m = re.match(r"^(\d+)\.(\d+)", r.version)
            return f"{m.group(1)}.{m.group(2)}" if m else None
    return None


def find_interpreter(version: str) -> tuple[str, str] | str:
    """(executable, cache tag) of a host CPython ``version`` (this one, else ``pythonX.Y`` on PATH); or why not."""
    candidates = []
    if "%d.%d" % sys.version_info[:2] == version:
        candidates.append(sys.executable)
    on_path = shutil.which(f"python{version}")
    if on_path:
        candidates.append(on_path)
    if not candidates:
        return (f"no python{version} on this host (PATH has none and oci-conda runs on "
                f"{'%d.%d' % sys.version_info[:2]})")
    for exe in candidates:
        try:
            p = subprocess.run([exe, "-S", "-s", "-B", "-c", _PROBE], capture_output=True, text=True, timeout=60,
                               env=_clean_env())
        except (OSError, subprocess.TimeoutExpired):
            continue
        parts = p.stdout.split()
        if p.returncode == 0 and len(parts) == 4 and parts[0] == "cpython" and parts[3] == version:
            return parts[2], parts[1]
    return f"python{version} on this host ({', '.join(candidates)}) is not a working CPython {version}"


def _clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    env["PYTHONHASHSEED"] = "0"
    return env


def compile_pyc(entries: Sequence[TarEntry], owner: MutableMapping[str, str], arcroot: str,
                records: Sequence[PackageRecord], workdir: Path, warnings: list[str],
                chunk: int = _CHUNK, jobs: int = DEFAULT_JOBS) -> tuple[list[TarEntry], PycReport]:
    """``entries`` plus a ``.pyc`` for each ``.py`` under ``site-packages`` that has none, with the owning packages'
    conda-meta records rewritten to list them; ``owner`` learns who owns each new path. When no host interpreter
    fits, ``warnings`` says why and the entries come back unchanged. At most ``jobs`` interpreters run at once."""
    report = PycReport()
    version = python_version(records)
    if version is None:
        report.skipped = "the environment has no python package"
    elif any(r.name.startswith("pypy") for r in records):
        report.skipped = "the environment's python is PyPy"
    else:
        found = find_interpreter(version)
        if isinstance(found, str):
            report.skipped = found
        else:
            report.interpreter = found[0]
            return _compile(entries, owner, arcroot, version, found, workdir, warnings, report, chunk,
                           jobs), report
    warnings.append(f"--compile-pyc skipped: {report.skipped}; the image has no compiled .pyc files")
    return list(entries), report


def _compile(entries: Sequence[TarEntry], owner: MutableMapping[str, str], arcroot: str, version: str,
             interp: tuple[str, str], workdir: Path, warnings: list[str], report: PycReport,
             chunk: int, max_jobs: int) -> list[TarEntry]:
    exe, tag = interp
    site = f"{arcroot}/lib/python{version}/site-packages/"
    by_path = {e.path: e for e in entries}
    jobs: list[tuple[str, str, str]] = []  # (source file on disk, path in the image, where the .pyc goes)
    pyc_of: dict[str, str] = {}  # .py entry path -> .pyc entry path
    workdir.mkdir(parents=True, exist_ok=True)
    for e in sorted(entries, key=lambda e: e.path):
        if not (e.path.startswith(site) and e.path.endswith(".py") and e.kind in ("file", "hardlink")):
            continue
        d, name = posixpath.split(e.path)
        pyc = f"{d}/__pycache__/{name[:-3]}.{tag}.pyc"
        if pyc in by_path:
            continue  # the package ships one
        src = e
        while src.kind == "hardlink":
            src = by_path[src.linkname]
        if src.source is not None:
            source = src.source
        else:
            tmp = workdir / "src" / f"{len(jobs)}.py"
            tmp.parent.mkdir(exist_ok=True)
            if src.data is not None:
                tmp.write_bytes(src.data)
            elif src.opener is not None:
                with src.opener() as f:
                    tmp.write_bytes(f.read())
            else:
                continue
            source = str(tmp)
        jobs.append((source, "/" + e.path, str(workdir / "out" / f"{len(jobs)}.pyc")))
        pyc_of[e.path] = pyc
    if not jobs:
        return list(entries)
    (workdir / "out").mkdir(exist_ok=True)

    def run(part: list[tuple[str, str, str]]) -> subprocess.CompletedProcess:
        return subprocess.run([exe, "-S", "-s", "-B", "-c", _COMPILER], input=json.dumps(part), capture_output=True,
                              text=True, env=_clean_env(), cwd=workdir)

    # Fixed-size chunks in parallel interpreters: a file's bytes depend neither on which process compiled it nor on
    # what it compiled before (checked: one process, reversed order and chunks give the same bytes).
    chunks = [jobs[i:i + chunk] for i in range(0, len(jobs), chunk)]
    with thread_pool(max_jobs, len(chunks), "pyc", cpu_bound=True) as pool:
        done = list(pool.map(run, chunks))
    failed: set[str] = set()
    for p in done:
        if p.returncode != 0:
            warnings.append(f"--compile-pyc failed with {exe} (exit {p.returncode}): "
                            f"{(p.stderr.strip().splitlines() or ['no message'])[-1]}; the image has no compiled .pyc")
            return list(entries)
        failed.update(json.loads(p.stdout))
    added: dict[str, list[tuple[str, str, int]]] = {}  # dist -> [(prefix-relative path, sha256, size)]
    new: list[TarEntry] = []
    root = arcroot + "/"
    for source, dfile, cfile in jobs:
        if dfile in failed:
            report.failed.append(dfile)
            continue
        py = dfile[1:]
        data = Path(cfile).read_bytes()
        entry = TarEntry(pyc_of[py], "file", 0o644, size=len(data), source=cfile)
        new.append(entry)
        report.compiled += 1
        report.bytes += len(data)
        dist = owner.get(py)
        if dist is not None:
            owner[entry.path] = dist
            added.setdefault(dist, []).append((entry.path[len(root):], hashlib.sha256(data).hexdigest(), len(data)))
    if report.failed:
        shown = ", ".join(report.failed[:3]) + (f" and {len(report.failed) - 3} more" if len(report.failed) > 3 else "")
        warnings.append(f"--compile-pyc: {len(report.failed)} file(s) do not compile with python {version} and "
                        f"have no .pyc: {shown}")
    out = []
    for e in entries:
        if e.path.startswith(root + "conda-meta/") and e.path.endswith(".json"):
            dist = e.path[len(root) + len("conda-meta/"):-len(".json")]
            if dist in added:
                e = _add_to_record(e, added[dist])
        out.append(e)
    return sorted(out + new, key=lambda e: e.path)


def _add_to_record(e: TarEntry, pycs: list[tuple[str, str, int]]) -> TarEntry:
    """The record with the package's new .pyc files, written the way conda-pack writes conda-meta."""
    if e.data is not None:
        raw = e.data
    elif e.source is not None:
        raw = Path(e.source).read_bytes()
    else:
        return e
    doc = json.loads(raw)
    files = doc.get("files")
    if not isinstance(files, list):
        return e
    doc["files"] = sorted(set(files) | {p for p, _, _ in pycs})
    pd = doc.get("paths_data")
    if isinstance(pd, dict) and isinstance(pd.get("paths"), list):
        have = {p.get("_path") for p in pd["paths"]}
        pd["paths"] = sorted(pd["paths"] + [{"_path": p, "path_type": "pyc_file", "sha256": h, "size_in_bytes": n}
                                            for p, h, n in pycs if p not in have], key=lambda p: p.get("_path", ""))
    data = json.dumps(doc, indent=True, sort_keys=True).encode()
    return replace(e, data=data, source=None, size=len(data))
