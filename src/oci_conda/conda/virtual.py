"""Virtual packages (``__unix``, ``__linux``, ``__glibc``, ``__archspec``, ``__cuda``, ``__osx``, ``__win``).

An image is built for a TARGET platform that is usually not the host (we may build ``linux-aarch64`` on an
x86_64 laptop, or ``linux-64`` on a Mac), so nothing here looks at the running system. The defaults describe a
conservative container host; the env file's ``image:`` section and ``CONDA_OVERRIDE_*`` variables change them.

Defaults (chosen so that a solve is valid on the widest set of current container hosts):

* ``__linux 4.18``: the RHEL 8 kernel; every supported distribution and container host kernel is newer.
* ``__glibc 2.28``: RHEL 8 / Debian 10; conda-forge's current baseline (its packages need 2.17 or 2.28).
  Override with ``glibc: "2.36"`` (Debian 12) or similar when the base image has a newer C library.
* ``__osx`` 10.15 on osx-64 and 11.0 on osx-arm64 (the conda-forge deployment targets).
* ``__cuda`` only when asked for (``cuda: "12.2"`` or ``CONDA_OVERRIDE_CUDA``): a GPU driver is a property of the
  machine that runs the image, which we cannot know.

Precedence: ``CONDA_OVERRIDE_<NAME>`` in ``env`` > ``overrides`` (env file) > defaults. An empty value removes the
package (``CONDA_OVERRIDE_GLIBC=`` gives no ``__glibc``), as in conda.
"""

from __future__ import annotations

import os
from typing import Mapping

from ..errors import SpecError
from .records import PackageRecord
from .version import parse_version

DEFAULT_LINUX = "4.18"
DEFAULT_GLIBC = "2.28"
DEFAULT_OSX = {"osx-64": "10.15", "osx-arm64": "11.0"}

# subdir architecture -> archspec generic microarchitecture name (what conda reports without CPU detection)
_ARCHSPEC = {
    "64": "x86_64",
    "32": "x86",
    "aarch64": "aarch64",
    "arm64": "arm64",
    "ppc64le": "ppc64le",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "armv6l": "armv6l",
    "armv7l": "armv7l",
    "riscv64": "riscv64",
}

_KEYS = ("linux", "glibc", "cuda", "osx", "archspec")


def _record(name: str, version: str, build: str, subdir: str) -> PackageRecord:
    return PackageRecord(
        name=name, version=version, build=build, build_number=0, subdir=subdir, channel="@", url="", fn=""
    )


def _check_version(key: str, value: str) -> str:
    try:
        parse_version(value)
    except Exception as e:  # InvalidVersion, but any parse failure is the user's value
        raise SpecError(f"virtual package override {key}={value!r} is not a valid version: {e}") from None
    return value


def virtual_packages(
    subdir: str, overrides: Mapping[str, str] | None = None, env: Mapping[str, str] | None = None
) -> list[PackageRecord]:
    """The virtual packages a solve for ``subdir`` should assume (never those of the host)."""
    if subdir == "noarch" or "-" not in subdir:
        raise SpecError(f"cannot derive virtual packages for platform {subdir!r}; expected e.g. linux-64")
    osname, arch = subdir.split("-", 1)
    env = os.environ if env is None else env

    values: dict[str, str | None] = {}
    for raw_key, val in (overrides or {}).items():
        key = str(raw_key).lower().lstrip("_")
        if key not in _KEYS:
            raise SpecError(f"unknown virtual package override {raw_key!r}; known: {', '.join(_KEYS)}")
        values[key] = None if val is None or str(val).strip() == "" else str(val).strip()
    for key in _KEYS:
        ev = env.get(f"CONDA_OVERRIDE_{key.upper()}")
        if ev is not None:
            values[key] = ev.strip() or None

    def pick(key: str, default: str | None) -> str | None:
        return values[key] if key in values else default

    out: list[PackageRecord] = []
    archspec = pick("archspec", _ARCHSPEC.get(arch, arch))
    cuda = pick("cuda", None)
    if osname == "linux":
        out.append(_record("__unix", "0", "0", subdir))
        linux = pick("linux", DEFAULT_LINUX)
        if linux:
            out.append(_record("__linux", _check_version("linux", linux), "0", subdir))
        glibc = pick("glibc", DEFAULT_GLIBC)
        if glibc:
            out.append(_record("__glibc", _check_version("glibc", glibc), "0", subdir))
    elif osname == "osx":
        out.append(_record("__unix", "0", "0", subdir))
        osx = pick("osx", DEFAULT_OSX.get(subdir, "10.15"))
        if osx:
            out.append(_record("__osx", _check_version("osx", osx), "0", subdir))
    elif osname == "win":
        out.append(_record("__win", "0", "0", subdir))
    elif osname not in ("emscripten", "wasi", "zos", "freebsd"):
        raise SpecError(f"unknown platform {subdir!r}; expected linux-*, osx-* or win-*")
    if archspec:
        out.append(_record("__archspec", "1", archspec, subdir))
    if cuda:
        out.append(_record("__cuda", _check_version("cuda", cuda), "0", subdir))
    out.sort(key=lambda r: r.name)
    return out
