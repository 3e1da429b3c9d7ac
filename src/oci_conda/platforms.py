"""Platform knowledge in one place: which conda subdirs can become images, the OCI platform each becomes, and the
ways users spell them (``linux-64``, ``linux/amd64``, comma lists, an environment file's ``platforms:``,
``CONDA_SUBDIR``).

``oci/`` knows platforms and nothing of conda; ``conda/`` knows subdirs and nothing of OCI. This table is the one
place both meet. No argparse here: commands.py passes the raw ``--platform`` values in.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .conda.channel import KNOWN_SUBDIRS
from .errors import ImageError, SpecError
from .oci.image import Platform

# conda subdir -> (the OCI platform it becomes, the OCI spellings that name it; the first is canonical).
IMAGE_PLATFORMS: dict[str, tuple[Platform, tuple[str, ...]]] = {
    "linux-64": (Platform("linux", "amd64"), ("linux/amd64", "linux/x86_64")),
    "linux-aarch64": (Platform("linux", "arm64", "v8"), ("linux/arm64", "linux/arm64/v8", "linux/aarch64")),
    "linux-ppc64le": (Platform("linux", "ppc64le"), ("linux/ppc64le",)),
    "linux-s390x": (Platform("linux", "s390x"), ("linux/s390x",)),
    "linux-armv7l": (Platform("linux", "arm", "v7"), ("linux/arm/v7", "linux/arm")),
    "linux-armv6l": (Platform("linux", "arm", "v6"), ("linux/arm/v6",)),
    "linux-32": (Platform("linux", "386"), ("linux/386",)),
    "linux-riscv64": (Platform("linux", "riscv64"), ("linux/riscv64",)),
}
SUBDIR_PLATFORMS: dict[str, Platform] = {subdir: plat for subdir, (plat, _) in IMAGE_PLATFORMS.items()}

_BY_SPELLING: dict[str, str] = {
    **{subdir: subdir for subdir in IMAGE_PLATFORMS},
    **{oci: subdir for subdir, (_, names) in IMAGE_PLATFORMS.items() for oci in names},
}

DEFAULT_PLATFORM = "linux-64"
CONDA_SUBDIR_ENV = "CONDA_SUBDIR"


def platform_for_subdir(subdir: str) -> Platform:
    """The OCI platform for a conda subdir; only linux subdirs can become images."""
    try:
        return SUBDIR_PLATFORMS[subdir]
    except KeyError:
        raise ImageError(f"no container platform for subdir {subdir!r} (only linux subdirs can become images)") from None


def oci_name(subdir: str) -> str:
    """``linux/amd64`` for ``linux-64``: how messages name a platform to people who think in OCI terms."""
    return IMAGE_PLATFORMS[subdir][1][0] if subdir in IMAGE_PLATFORMS else subdir


def known_spellings() -> str:
    """For error messages: every accepted spelling, subdirs first."""
    return ", ".join([*IMAGE_PLATFORMS, *(o for _, names in IMAGE_PLATFORMS.values() for o in names)])


def parse_platform(value: str, where: str = "--platform") -> str:
    """One image platform in either spelling -> its conda subdir; anything else is one clear error line."""
    v = value.strip()
    key = v.lower() if "/" in v else v
    subdir = _BY_SPELLING.get(key)
    if subdir is not None:
        return subdir
    if v in KNOWN_SUBDIRS:
        raise SpecError(f"{where}: {v!r} is a conda platform but not an image platform (known: {known_spellings()})")
    raise SpecError(f"{where}: unknown platform {v!r} (known: {known_spellings()})")


def parse_platforms(values: Sequence[str], where: str = "--platform") -> list[str]:
    """Repeated options and comma lists -> conda subdirs, first occurrence kept, in the order given."""
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            if not part.strip():
                raise SpecError(f"{where}: empty platform in {value!r}")
            subdir = parse_platform(part, where)
            if subdir not in out:
                out.append(subdir)
    return out


def parse_conda_subdir(value: str, where: str) -> str:
    """An environment file's ``platforms:`` entry: any conda subdir (conda-lock lists osx and win too), or an OCI
    spelling of an image platform."""
    v = value.strip()
    if v in KNOWN_SUBDIRS and v != "noarch":
        return v
    subdir = _BY_SPELLING.get(v.lower() if "/" in v else v)
    if subdir is not None:
        return subdir
    known = ", ".join(sorted(KNOWN_SUBDIRS - {"noarch"}))
    raise SpecError(f"{where}: unknown platform {v!r} (known conda platforms: {known})")


def is_image_platform(subdir: str) -> bool:
    return subdir in IMAGE_PLATFORMS


def image_platforms(subdirs: Sequence[str]) -> list[str]:
    """Those of ``subdirs`` an image can be built for (a conda-lock or pixi file also locks osx/win), in order."""
    return list(dict.fromkeys(s for s in subdirs if is_image_platform(s)))


def default_platforms(spec_platforms: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """Targets when ``--platform`` is not given.

    The environment file's ``platforms:`` (conda-lock's meaning), keeping those an image can have (osx/win entries
    are for other tools); else ``$CONDA_SUBDIR`` (conda's own override); else linux-64. A file whose platforms are
    none of them is an error rather than a silent linux-64 build.
    """
    if spec_platforms:
        chosen = image_platforms(spec_platforms)
        if not chosen:
            raise SpecError(f"the environment's platforms ({', '.join(spec_platforms)}) include no image platform; "
                            f"give --platform (known: {known_spellings()})")
        return chosen
    subdir = (env.get(CONDA_SUBDIR_ENV) or "").strip()
    if subdir:
        return parse_platforms([subdir], f"{CONDA_SUBDIR_ENV}={subdir}")
    return [DEFAULT_PLATFORM]
