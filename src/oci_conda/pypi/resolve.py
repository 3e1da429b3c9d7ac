"""Resolve the ``pip:`` section for the target with pip's own resolver, run as a dry run on the build host.

We run the host's pip (``sys.executable``), never anything of the target: ``pip install --dry-run --report`` with
the target's platform tags, python version, implementation and ABIs, wheels only (pip refuses platform options
otherwise). Two things pip does not do by itself, and how we close the gaps:

* **Markers.** pip evaluates environment markers (``platform_machine``, ``sys_platform``, ``python_version``...)
  against the *running* interpreter even with ``--platform``/``--python-version``. A short launcher therefore replaces
  pip's marker environment with the target's before pip starts; pip's report echoes that environment and we check
  it, so a pip that ignored the replacement is caught rather than trusted.
* **Requires-Python.** ``pip install`` checks it against the running interpreter once metadata is read; the
  launcher hands the target's version to pip's resolver as ``pip download`` does.
* **conda first.** ``--target`` makes pip ignore installed distributions; conda's count as installed through
  constraints and stand-in wheels (see :mod:`.installed`) and are dropped from the result.

pip's configuration files and ``PIP_*`` variables of the host are ignored (a build must not depend on the host's
pip.conf); all options, credentials included, travel in a private requirements file, never on a command line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit

from ..cache import cache_dir
from ..credentials import strip_credentials
from ..errors import SolveError
from .installed import InstalledDist, stand_in_wheel
from .records import WheelRecord
from .requirements import PipRequirement, PipSection
from .target import Target

#: Seconds pip may take for one platform (large trees on a slow index take minutes, not hours).
DEFAULT_TIMEOUT = 900.0
#: Bytes of pip's output kept for error messages, and the largest report we read.
OUTPUT_CAP = 256 * 1024
REPORT_CAP = 64 * 1024 * 1024
#: Host variables pip may still see: trust and proxies, nothing that changes what is resolved.
_KEEP_PIP_VARS = {"PIP_CERT", "PIP_CLIENT_CERT", "PIP_PROXY", "PIP_DEFAULT_TIMEOUT", "PIP_TIMEOUT", "PIP_RETRIES"}
_MARKERS_VAR = "OCI_CONDA_PIP_MARKERS"

#: Runs pip with the target's marker environment and python version (see the module docstring); argv after ``-c``
#: is pip's. ``pip install`` checks ``Requires-Python`` from metadata against the running interpreter even with
#: ``--python-version`` (only ``pip download`` passes it to the resolver), so the resolver is given it here too.
LAUNCHER = f"""\
import json, os, sys
env = json.loads(os.environ.pop({_MARKERS_VAR!r}))
import pip._vendor.packaging.markers as markers
markers.default_environment = lambda: dict(env)
from pip._internal.cli import req_command
make_resolver = req_command.RequirementCommand.make_resolver
def target_resolver(*args, **kwargs):
    kwargs["py_version_info"] = tuple(int(p) for p in env["python_full_version"].split("."))
    return make_resolver(*args, **kwargs)
req_command.RequirementCommand.make_resolver = staticmethod(target_resolver)
from pip._internal.cli.main import main
sys.exit(main(sys.argv[1:]))
"""


def resolve_wheels(
    section: PipSection,
    target: Target,
    *,
    installed: Iterable[InstalledDist] = (),
    timeout: float = DEFAULT_TIMEOUT,
) -> list[WheelRecord]:
    """The wheels to install on ``target`` for ``section``, sorted by name, conda's distributions excluded.

    Raises :class:`SolveError` with one line (credentials scrubbed) when pip cannot satisfy the section."""
    if not section.requirements:
        return []
    conda = {d.key: d for d in installed if d.pinnable()}
    creds = section.credentials()
    with tempfile.TemporaryDirectory(prefix="oci-conda-pip-") as tmp:  # mode 0700: it holds credentials
        work = Path(tmp)
        stand_ins = work / "installed"
        stand_ins.mkdir()
        pins = []
        for dist in sorted(conda.values(), key=lambda d: d.key):
            _, digest = stand_in_wheel(dist, target, stand_ins)
            pins.append(f"{dist.key}=={dist.version}" + (f" --hash={digest}" if section.require_hashes else ""))
        # In hash-checking mode pip accepts only hashed *requirements* for every package it touches, constraints do
        # not count: conda's pins then become requirements (their stand-ins are dropped from the result anyway).
        hashed_pins = pins if section.require_hashes else []
        reqs = work / "requirements.txt"
        reqs.write_text("\n".join([*_option_lines(section), *(r.pip_line() for r in section.requirements),
                                   *hashed_pins]) + "\n")
        cons = work / "constraints.txt"
        cons.write_text("\n".join([*(r.pip_line() for r in section.constraints),
                                   *([] if hashed_pins else pins)]) + "\n")
        report = work / "report.json"
        argv = [sys.executable, "-c", LAUNCHER, *_pip_args(target, report, work / "target"),
                "-r", str(reqs), "-c", str(cons), "--find-links", str(stand_ins)]
        out = work / "pip.log"
        code = _run(argv, target, out, timeout)
        log = creds.scrub(_tail(out))
        if code != 0:
            raise SolveError(explain_failure(log, section, target, conda))
        data = _read_report(report)
    machine = data.get("environment", {}).get("platform_machine")
    if machine != target.machine:
        raise SolveError(f"pip: the host's pip did not evaluate markers for {target.subdir} (it used "
                         f"platform_machine={machine!r}); this pip version is not supported")
    return _records(data, section, conda)


def _pip_args(target: Target, report: Path, target_dir: Path) -> list[str]:
    args = ["install", "--dry-run", "--ignore-installed", "--report", str(report), "--only-binary=:all:",
            "--target", str(target_dir), "--python-version", target.python.full, "--implementation", "cp",
            "--no-input", "--progress-bar", "off", "--disable-pip-version-check", "--no-color",
            "--cache-dir", str(cache_dir("pip"))]
    for abi in target.abis():
        args += ["--abi", abi]
    for plat in target.platforms():
        args += ["--platform", plat]
    return args


def _option_lines(section: PipSection) -> list[str]:
    lines = [f"--index-url {section.index_url}"] if section.index_url else []
    lines += [f"--extra-index-url {u}" for u in section.extra_index_urls]
    lines += [f"--find-links {u}" for u in section.find_links]
    lines += [f"--trusted-host {h}" for h in section.trusted_hosts]
    lines += ["--no-index"] * section.no_index + ["--pre"] * section.pre
    lines += ["--require-hashes"] * section.require_hashes
    return lines


def _run(argv: list[str], target: Target, out: Path, timeout: float) -> int:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k in _KEEP_PIP_VARS}
    env.update({"PIP_CONFIG_FILE": os.devnull, _MARKERS_VAR: json.dumps(target.marker_environment())})
    with open(out, "wb") as f:
        try:
            return subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT, env=env,
                                  timeout=timeout, check=False).returncode
        except subprocess.TimeoutExpired:
            raise SolveError(f"pip: resolving for {target.describe()} took longer than {timeout:.0f}s") from None


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - OUTPUT_CAP))
        return f.read().decode("utf-8", "replace")


def _read_report(path: Path) -> dict:
    if not path.exists() or path.stat().st_size > REPORT_CAP:
        raise SolveError("pip: no usable --report was written (missing or over the size cap)")
    try:
        data = json.loads(path.read_bytes())
    except ValueError:
        raise SolveError("pip: its --report is not valid JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("install"), list):
        raise SolveError("pip: its --report has an unexpected shape")
    return data


def _records(data: dict, section: PipSection, conda: dict[str, InstalledDist]) -> list[WheelRecord]:
    from packaging.utils import canonicalize_name

    allowed = {r.name: {h.split(":", 1)[1] for h in r.hashes if h.startswith("sha256:")}
               for r in section.requirements if r.hashes}
    out = []
    for item in data["install"]:
        meta = item.get("metadata", {})
        name = canonicalize_name(meta.get("name", ""))
        if name in conda:
            continue
        info = item.get("download_info", {})
        url = strip_credentials(info.get("url", ""))
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        if not filename.endswith(".whl"):
            raise SolveError(f"pip: {name} {meta.get('version')} resolved to {filename!r}, not a wheel")
        archive = info.get("archive_info", {})
        sha256 = archive.get("hashes", {}).get("sha256")
        if not sha256 and str(archive.get("hash", "")).startswith("sha256="):
            sha256 = archive["hash"].split("=", 1)[1]
        if name in allowed and allowed[name] and sha256 not in allowed[name]:
            raise SolveError(f"pip: {name} {meta.get('version')}: the index's wheel {filename} matches none of "
                             "the --hash values given")
        out.append(WheelRecord(
            name=name, version=meta.get("version", ""), filename=filename, url=url.split("#", 1)[0],
            sha256=sha256 or None, requires_python=meta.get("requires_python"),
            requested=bool(item.get("requested")), direct=bool(item.get("is_direct")),
        ))
    return sorted(out, key=lambda r: r.name)


def explain_failure(log: str, section: PipSection, target: Target, conda: dict[str, InstalledDist]) -> str:
    """pip's failure as one line: a conflict names both sides (conda's pins as conda's), a missing wheel names the
    requirement and where it was written."""
    from packaging.utils import canonicalize_name

    where = {r.name: r for r in (*section.requirements, *section.constraints)}
    lines = log.splitlines()
    if "The conflict is caused by:" in lines:
        start = lines.index("The conflict is caused by:") + 1
        causes = []
        for line in lines[start:]:
            if not line.strip():
                break
            causes.append(_cause(line.strip(), where, conda))
        return f"pip: conflicting requirements for {target.describe()}: " + "; ".join(causes)
    m = re.search(r"No matching distribution found for (\S+)", log)
    if m:
        name = canonicalize_name(re.split(r"[\[<>=!~;@ ]", m.group(1))[0])
        versions = re.search(r"\(from versions: ([^)]*)\)", log)
        req = where.get(name)
        place = f"{req.where}: " if req else ""
        seen = f" (versions with a wheel for it: {versions.group(1)})" if versions else ""
        return (f"{place}pip: no wheel of {m.group(1)} fits {target.describe()}{seen}; a wheel is needed "
                "(source distributions are not built)")
    if "THESE PACKAGES DO NOT MATCH THE HASHES" in log:
        start = next(i for i, ln in enumerate(lines) if "THESE PACKAGES DO NOT MATCH THE HASHES" in ln)
        block = [ln.strip() for ln in lines[start + 1:] if ln.strip()]
        req = _requirement_words(block[0]) if block else "?"
        expected = next((ln.split()[-1] for ln in block if ln.startswith("Expected")), "?")
        got = next((ln.split()[-1] for ln in block if ln.startswith("Got")), "?")
        r = where.get(canonicalize_name(re.split(r"[\[<>=!~;@ ]", req)[0]))
        return (f"{r.where + ': ' if r else ''}pip: {req}: the wheel's sha256 is {got}, but --hash allows only "
                f"{expected}")
    if "all requirements must have their versions pinned with ==" in log:
        start = next(i for i, ln in enumerate(lines) if "must have their versions pinned" in ln)
        loose = [_requirement_words(ln) for ln in lines[start + 1:] if ln.startswith("    ")]
        return ("pip: hash-checking mode needs every package pinned with == and a --hash in the section, "
                "but these are not listed: " + ", ".join(loose))
    if "Hashes are required in --require-hashes mode" in log:
        missing = [ln.strip() for ln in lines if "--hash=sha256:" in ln and "==" in ln]
        return ("pip: hash-checking mode needs every package pinned with a --hash, but these are not: "
                + ", ".join(m.split(" --hash", 1)[0] for m in missing))
    if "No module named pip" in log or "No module named 'pip" in log:
        return f"pip: the build host's python ({sys.executable}) has no pip; install pip to resolve pip: sections"
    if "no such option: --report" in log or "no such option: --dry-run" in log:
        return "pip: the build host's pip is too old for --dry-run --report (pip 22.2 or newer is needed)"
    errors = [ln[len("ERROR: "):] for ln in lines if ln.startswith("ERROR: ")]
    return "pip: " + (errors[-1] if errors else (lines[-1] if lines else "failed without output"))


def _requirement_words(line: str) -> str:
    """``newer==1.0`` (needed by ``app``) from pip's ``newer==1.0 from URL (from app==1.0->-r FILE (line 3))``."""
    line = line.strip().rstrip(":")
    req = line.split(" from ", 1)[0].split(" (from ", 1)[0]
    parent = re.search(r"\(from ([^-][^)]*?)->", line)
    return req + (f" (needed by {parent.group(1)})" if parent else "")


def _cause(line: str, where: dict[str, PipRequirement], conda: dict[str, InstalledDist]) -> str:
    from packaging.utils import canonicalize_name

    m = re.match(r"The user requested (?:\(constraint\) )?(\S+?)==(\S+)$", line)
    if m and canonicalize_name(m.group(1)) in conda and m.group(2) == conda[canonicalize_name(m.group(1))].version:
        dist = conda[canonicalize_name(m.group(1))]
        return f"conda installed {dist.name} {dist.version}" + (f" (package {dist.package})" if dist.package else "")
    m = re.match(r"The user requested (\(constraint\) )?(\S+)", line)
    if m:
        name = canonicalize_name(re.split(r"[\[<>=!~;@ ]", m.group(2))[0])
        req = where.get(name)
        kind = "constrains" if m.group(1) else "requests"
        return f"the pip section {kind} {line.split(' ', 3)[-1] if m.group(1) else m.group(2)}" + \
            (f" ({req.where})" if req else "")
    return line
