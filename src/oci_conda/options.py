"""Build options, and the ONE table of the options that change image bytes.

Each image-changing option is declared once, in :data:`IMAGE_OPTIONS`: its command-line flag, type, choices, help
and default. The argparse flags of ``build``, ``lock`` and ``bundle``, the defaults of :class:`BuildOptions` and the
options a lockfile records (and a build from a lock must agree with) are all generated from it, so a new option or
a changed default is one edit here.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, get_args

from .layers.plan import Layering
from .layers.trim import PROFILES, Profile
from .lockfile import Lock, LockError
from .oci.registry.client import RegistryOptions
from .oci.tar import compressor_id
from .parallel import DEFAULT_JOBS

#: The target conda subdirs when none is given (the image platforms are platforms.py's table).
DEFAULT_PLATFORMS = ("linux-64",)


@dataclass(frozen=True)
class Option:
    """One image-changing option: ``name`` is the BuildOptions field and the lock's key, ``flag`` the CLI flag."""

    name: str
    flag: str
    type: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    locked: bool = True  # recorded in a lock; a build from that lock takes it and refuses a different one


IMAGE_OPTIONS: tuple[Option, ...] = (
    Option("compression", "--compression", str, "gzip", "layer compression (default gzip)",
           choices=("gzip", "zstd")),
    Option("layering", "--layering", str, "packages",
           "packages (default): a layer per package, biggest first, within --max-layers; single: one layer",
           choices=get_args(Layering)),
    Option("max_layers", "--max-layers", int, 16, "layer budget for the environment with --layering packages "
           "(default 16)", metavar="N"),
    Option("trim", "--trim", str, "none", "drop files no program uses: safe (static libs, docs, man pages), "
           "aggressive (also headers, __pycache__, python tests); conda-meta is kept consistent",
           choices=tuple(PROFILES)),
    Option("compile_pyc", "--compile-pyc", bool, False, "byte-compile site-packages into the image (reproducible "
           "unchecked-hash .pyc, listed in conda-meta) with a host python of the environment's X.Y; skipped with a "
           "warning otherwise", locked=False),
    Option("owner", "--chown", str, None, "UID:GID owning the environment's files in the image (default: image.owner, "
           "else 0:0), so a non-root image.user can write in its prefix", metavar="UID:GID", locked=False),
)
LOCKED_OPTIONS: tuple[Option, ...] = tuple(o for o in IMAGE_OPTIONS if o.locked)


def default(name: str) -> Any:
    """The default of the image option ``name``, from the table."""
    for o in IMAGE_OPTIONS:
        if o.name == name:
            return o.default
    raise KeyError(name)


def add_arguments(parser: argparse.ArgumentParser, *, locked_only: bool = False) -> None:
    """Add the table's flags to ``parser`` (``locked_only``: those a lock records, for ``lock`` and ``bundle``)."""
    for o in LOCKED_OPTIONS if locked_only else IMAGE_OPTIONS:
        if o.type is bool:
            parser.add_argument(o.flag, dest=o.name, action="store_true", default=o.default, help=o.help)
        else:
            parser.add_argument(o.flag, dest=o.name, type=o.type, default=o.default, choices=o.choices,
                                metavar=o.metavar, help=o.help)


@dataclass(frozen=True)
class BuildOptions:
    """Everything besides the environment file that decides what a build does (and, via the table, its bytes)."""

    output: Path | None = None  # None: nothing written locally (with push; or only solving/locking)
    platforms: tuple[str, ...] = DEFAULT_PLATFORMS
    compression: str = default("compression")
    offline: bool = False
    channel_alias: str | None = None
    jobs: int = DEFAULT_JOBS
    push: str | None = None  # REGISTRY/REPO[:TAG]: push the image(s) there, straight from the cache
    layering: Layering = default("layering")
    max_layers: int = default("max_layers")
    trim: Profile = default("trim")
    compile_pyc: bool = default("compile_pyc")  # byte-compile site-packages with a host python of the env's X.Y
    lock: Lock | None = None  # records come from it: nothing is solved and no repodata is fetched
    registry: RegistryOptions = RegistryOptions()  # how to reach registries (base pulls, --push); jobs from ``jobs``
    sbom: tuple[str, ...] = ()  # --sbom formats: attached to the image and written beside the output (not image bytes)
    owner: str | None = default("owner")  # --chown UID:GID (None: the file's image.owner, else 0:0)
    created_label: bool = False  # --oci-labels: org.opencontainers.image.created from the build time
    tags: tuple[str, ...] = ()  # --tag names (validated; image_names.image_tags); () = the file's tag or the default

    @classmethod
    def from_values(cls, given: Mapping[str, Any], **fields: Any) -> BuildOptions:
        """``fields`` plus every table option ``given`` holds (e.g. ``vars()`` of parsed arguments)."""
        picked = {o.name: given[o.name] for o in IMAGE_OPTIONS if given.get(o.name) is not None}
        return cls(**{**picked, **fields})


def locked_values(opts: BuildOptions, prefix: str, env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options that change image bytes, as a lock records them: the table's locked ones, the prefix,
    SOURCE_DATE_EPOCH and the compressor (implementation, version, level: another one gives other layer bytes)."""
    env = os.environ if env is None else env
    sde = env.get("SOURCE_DATE_EPOCH")
    out: dict[str, Any] = {"prefix": prefix, "source_date_epoch": int(sde) if sde and sde.strip() else None}
    for o in LOCKED_OPTIONS:
        out[o.name] = getattr(opts, o.name)
    out["compressor"] = compressor_id(opts.compression)
    return out


def compressor_warning(opts: BuildOptions) -> str | None:
    """Why a build from ``opts.lock`` cannot give the locked build's layer digests, or None: the lock names the
    compressor it was built with (locks of format 2 made since issue 16), and it is not this one."""
    if opts.lock is None:
        return None
    locked, ours = opts.lock.options.get("compressor"), compressor_id(opts.compression)
    if locked is None or locked == ours:
        return None
    return (f"{opts.lock.path}: locked with {locked}; this oci-conda compresses with {ours}, so the layer digests "
            "differ from the locked build's (the files in them do not)")


def apply_lock(opts: BuildOptions, lock: Lock, platforms_given: bool) -> BuildOptions:
    """``opts`` with the lock's image-changing options; a value given that differs from both the default and the
    locked one is an error (it needs a relock). Without ``platforms_given``: every linux platform of the lock."""
    changes: dict[str, Any] = {"lock": lock}
    for o in LOCKED_OPTIONS:
        if o.name in lock.options:
            given = getattr(opts, o.name)
            if given != o.default and given != lock.options[o.name]:
                raise LockError(f"{lock.path}: locked with {o.name}={lock.options[o.name]}; "
                                f"{o.flag} {given} needs a relock")
            changes[o.name] = lock.options[o.name]
    if not platforms_given:
        linux = tuple(sorted(p for p in lock.platforms if p.startswith("linux-")))
        if not linux:
            raise LockError(f"{lock.path}: locks no linux platform (has: {', '.join(sorted(lock.platforms))})")
        changes["platforms"] = linux
    return dataclasses.replace(opts, **changes)
