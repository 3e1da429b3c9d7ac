"""The *target* interpreter and platform, without running anything of the target.

A wheel fits an image when its tags match the image's python and glibc, not the build host's. We derive everything
from what the conda solve already fixed: the subdir (CPU), the ``__glibc`` virtual package (manylinux level) and the
``python`` record (version, ABI). Conda environments on Linux are glibc-based, so musllinux tags are never offered.
Only CPython is supported (conda's PyPy builds are rare and use another ABI scheme).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..errors import SpecError

if TYPE_CHECKING:
    from packaging.tags import Tag

#: conda subdir -> ``platform.machine()`` on that platform (what wheel platform tags and markers use).
SUBDIR_MACHINE = {
    "linux-64": "x86_64",
    "linux-32": "i686",
    "linux-aarch64": "aarch64",
    "linux-armv7l": "armv7l",
    "linux-ppc64le": "ppc64le",
    "linux-s390x": "s390x",
}

#: glibc baseline assumed when the solve records no ``__glibc`` (conda-forge's current baseline).
DEFAULT_GLIBC = (2, 17)

#: Legacy manylinux names and the glibc they stand for (PEP 600); 2010 and 1 only ever existed for x86.
_LEGACY = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}
_X86 = {"x86_64", "i686"}


@dataclass(frozen=True)
class TargetPython:
    """The solved conda ``python``: full version and ABI suffix (``"t"`` for free-threaded builds)."""

    version: tuple[int, int, int]
    abiflags: str = ""

    @classmethod
    def from_conda(cls, version: str, build: str = "") -> TargetPython:
        """From a conda ``python`` record's version (``3.11.7``) and build string (``..._cp313t`` = free-threaded)."""
        m = re.match(r"^(\d+)\.(\d+)(?:\.(\d+))?", version)
        if not m:
            raise SpecError(f"python {version}: not a CPython version wheels can be resolved for")
        major, minor, micro = int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)
        flags = "t" if re.search(rf"_cp{major}{minor}t\b", build) else ""
        return cls((major, minor, micro), flags)

    @property
    def short(self) -> str:
        """``3.11``: the ``lib/pythonX.Y`` directory and the ``python_version`` marker."""
        return f"{self.version[0]}.{self.version[1]}"

    @property
    def full(self) -> str:
        return ".".join(map(str, self.version))

    @property
    def abi(self) -> str:
        """``cp311`` (or ``cp313t``): the interpreter's own ABI tag."""
        return f"cp{self.version[0]}{self.version[1]}{self.abiflags}"


@dataclass(frozen=True)
class Target:
    """Where the wheels will run: a conda subdir, its glibc and the solved python."""

    subdir: str
    python: TargetPython
    glibc: tuple[int, int] = DEFAULT_GLIBC

    def __post_init__(self) -> None:
        if self.subdir not in SUBDIR_MACHINE:
            raise SpecError(f"pip: packages for {self.subdir} are not supported (Linux subdirs only)")

    @property
    def machine(self) -> str:
        return SUBDIR_MACHINE[self.subdir]

    def platforms(self) -> list[str]:
        """Wheel platform tags, most preferred first: ``manylinux_2_X`` from the image's glibc down to the oldest
        level for the CPU, each followed by its legacy alias, then the unportable ``linux_<cpu>`` as pip would."""
        arch = self.machine
        oldest = 5 if arch in _X86 else 17
        major, minor = self.glibc
        out: list[str] = []
        if major == 2:
            for m in range(minor, oldest - 1, -1):
                out.append(f"manylinux_2_{m}_{arch}")
                legacy = _LEGACY.get((2, m))
                if legacy and (arch in _X86 or m == 17):
                    out.append(f"{legacy}_{arch}")
        out.append(f"linux_{arch}")
        return out

    def abis(self) -> list[str]:
        """ABI tags the interpreter loads: its own, the stable ABI (not for free-threaded builds), and none."""
        return [self.python.abi] + ([] if self.python.abiflags else ["abi3"]) + ["none"]

    def tags(self) -> list[Tag]:
        """Every tag a wheel may carry to be installable on the target, most preferred first (what pip computes
        from ``--platform``/``--python-version``/``--implementation``/``--abi``)."""
        from packaging.tags import compatible_tags, cpython_tags

        ver = self.python.version[:2]
        plats = self.platforms()
        return [*cpython_tags(ver, self.abis(), plats), *compatible_tags(ver, f"cp{ver[0]}{ver[1]}", plats)]

    def marker_environment(self) -> dict[str, str]:
        """PEP 508 marker values on the target. The kernel release/version are unknowable at build time and are
        left empty (markers on them are vanishingly rare)."""
        return {
            "implementation_name": "cpython",
            "implementation_version": self.python.full,
            "os_name": "posix",
            "platform_machine": self.machine,
            "platform_python_implementation": "CPython",
            "platform_release": "",
            "platform_system": "Linux",
            "platform_version": "",
            "python_full_version": self.python.full,
            "python_version": self.python.short,
            "sys_platform": "linux",
        }

    def describe(self) -> str:
        """``linux-aarch64, cp311, glibc 2.17``: for messages."""
        return f"{self.subdir}, {self.python.abi}, glibc {self.glibc[0]}.{self.glibc[1]}"
