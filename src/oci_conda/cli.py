"""Command line: build the parser, dispatch to commands.py, print errors, choose exit codes.

Knows how no stage works; the image-changing flags come from options.py's table.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import traceback
from typing import Sequence

from . import __version__
from .cache import sweep_cache
from .commands import COMMANDS
from .errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_NETWORK,
    EXIT_UNSATISFIABLE,
    EXIT_USAGE,
    ChannelError,
    FetchError,
    OciCondaError,
    SolveError,
)
from .oci.registry.auth import AuthError
from .oci.registry.client import RegistryError
from .options import add_arguments
from .parallel import DEFAULT_JOBS
from .progress import Reporter, choose_mode


def _common(p: argparse.ArgumentParser, env_optional: bool = False) -> None:
    p.add_argument("env_file", metavar="ENV.yml", nargs="?" if env_optional else None,
                   help="conda environment file (with an optional image: section)")
    p.add_argument("-c", "--channel", dest="channels", action="append", default=[], metavar="CHANNEL",
                   help="channel to use before the file's channels (name, URL or local path); repeatable")
    p.add_argument("--platform", dest="platforms", action="append", metavar="PLATFORM",
                   help="target platform: a conda subdir (linux-64) or OCI os/arch (linux/arm64); comma lists and "
                   "repeats add platforms (default: the file's platforms:, else $CONDA_SUBDIR, else linux-64)")
    p.add_argument("--channel-alias", metavar="URL", help="where channel names live (default: conda's public alias; "
                   "env OCI_CONDA_CHANNEL_ALIAS)")
    p.add_argument("--offline", action="store_true", help="use only the cache; never open a network connection")
    p.add_argument("--quiet", "-q", action="store_true", help="print only warnings and errors")
    p.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    p.add_argument("--debug", action="store_true", help="show tracebacks")


def make_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="oci-conda", description="Build OCI images from conda environments, "
                                     "without a container daemon.")
    parser.add_argument("--version", action="version", version=f"oci-conda {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    b = sub.add_parser("build", help="solve, fetch, install and pack an environment into an OCI image")
    _common(b, env_optional=True)
    b.add_argument("-o", "--output", metavar="OUT",
                   help="OUT.tar: OCI archive (also loadable by docker/podman load); a directory (no suffix, or a "
                   "trailing /): OCI layout; other suffixes are refused (optional with --push)")
    b.add_argument("--push", metavar="REGISTRY/REPO:TAG", help="push the image to a registry, straight from the cache")
    b.add_argument("--tag", action="append", metavar="[HOST/]NAME[:TAG]",
                   help="image name for index.json and docker/podman load; repeatable (every name is written; with "
                   "--push, each one's TAG also tags the pushed image). Default: image.tag, else localhost/ENVNAME:latest")
    b.add_argument("--base", metavar="REF", help="scratch (default), oci-archive:PATH[:REF], oci:DIR[:REF] or "
                   "REGISTRY/REPO[:TAG|@DIGEST]")
    _registry_options(b)
    b.add_argument("--prefix", metavar="PATH", help="where the environment lives in the image (default /opt/conda)")
    b.add_argument("--jobs", type=int, default=DEFAULT_JOBS, metavar="N",
                   help=f"parallel downloads and workers (default {DEFAULT_JOBS})")
    b.add_argument("--lock", metavar="LOCKFILE", help="install exactly what LOCKFILE lists (oci-conda lock, "
                   "conda-lock.yml v1, pixi.lock or @EXPLICIT): no solve, no repodata; an oci-conda lock carries "
                   "its image settings, so ENV.yml may be left out")
    b.add_argument("--environment", metavar="NAME", help="with a pixi.lock: the environment to build (default "
                   "default)")
    b.add_argument("--allow-stale", action="store_true", help="with --lock: build even if ENV.yml changed since locking"
                   " (its image settings then win over the lock's)")
    b.add_argument("--from-bundle", metavar="BUNDLE.tar", help="build offline from a bundle made by `oci-conda bundle` "
                   "(ENV.yml, when given, is checked against the bundle's lock)")
    add_arguments(b)
    b.add_argument("--sbom", metavar="FORMATS", help="spdx, cyclonedx or spdx,cyclonedx: write OUT.spdx.json / "
                   "OUT.cdx.json beside the output and attach them to the image (archive, layout and --push)")
    b.add_argument("--sign-key", metavar="cosign.key", help="with --push: sign the pushed image with this cosign key "
                   "(passphrase from COSIGN_PASSWORD or a prompt)")
    _label_options(b)

    p = sub.add_parser("push", help="push an OCI archive or layout directory to a registry")
    p.add_argument("image", metavar="IMAGE", help="IMAGE.tar (OCI archive) or an OCI layout directory; PATH:NAME picks "
                   "one of several images")
    p.add_argument("ref", metavar="REGISTRY/REPO[:TAG]", help="where to push (tag default: latest)")
    _registry_options(p)
    p.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    p.add_argument("--quiet", "-q", action="store_true", help="print only warnings and errors")
    p.add_argument("--debug", action="store_true", help="show tracebacks")

    lg = sub.add_parser("login", help="check and store credentials for a registry (docker config.json format)")
    lg.add_argument("registry", metavar="REGISTRY", help="registry host[:port]")
    lg.add_argument("-u", "--username", help="user name (prompted for on a terminal when left out)")
    lg.add_argument("--password-stdin", action="store_true", help="read the password from stdin (else: prompted "
                    "for on a terminal, never echoed; without a terminal this flag is required)")
    _registry_options(lg)
    lg.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    lg.add_argument("--debug", action="store_true", help="show tracebacks")
    lg.set_defaults(json=False)

    lo = sub.add_parser("logout", help="forget the stored credentials for a registry")
    lo.add_argument("registry", metavar="REGISTRY", help="registry host[:port]")
    lo.add_argument("--authfile", metavar="FILE", help="credentials file (default as for login)")
    lo.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    lo.add_argument("--debug", action="store_true", help="show tracebacks")
    lo.set_defaults(json=False)

    s = sub.add_parser("solve", help="print the packages an environment resolves to, without building")
    _common(s)
    _lock_parsers(sub)
    _pack_parser(sub)
    _supply_parsers(sub)
    return parser


def _pack_parser(sub: argparse._SubParsersAction) -> None:
    """``pack``: an existing environment (conda, mamba, pixi; pip extras included) into an image."""
    pk = sub.add_parser("pack", help="turn an existing conda/mamba/pixi environment into an image (with conda-pack)")
    pk.add_argument("source", metavar="PREFIX", help="the environment directory (it has conda-meta/)")
    pk.add_argument("-o", "--output", required=True, metavar="OUT", help="IMAGE.tar (OCI archive) or a layout dir")
    pk.add_argument("--prefix", metavar="PATH", help="where the environment lives in the image (default /opt/conda)")
    pk.add_argument("--base", metavar="REF", help="base image (as for build; default scratch)")
    pk.add_argument("--tag", metavar="NAME:TAG", help="image name for index.json and docker load")
    pk.add_argument("--compression", choices=("gzip", "zstd", "none"), help="layer compression (default gzip)")
    pk.add_argument("--max-layers", type=int, metavar="N", help="layer budget for the environment (default 16)")
    _registry_options(pk)
    pk.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    pk.add_argument("--quiet", "-q", action="store_true", help="print only warnings and errors")
    pk.add_argument("--debug", action="store_true", help="show tracebacks")


def _supply_parsers(sub: argparse._SubParsersAction) -> None:
    """``keygen``, ``sign``, ``verify``."""
    kg = sub.add_parser("keygen", help="make a cosign key pair: cosign.key (encrypted; passphrase from "
                        "COSIGN_PASSWORD or a prompt) and cosign.pub")
    kg.add_argument("--output-dir", default=".", metavar="DIR", help="where to write them (default: here)")
    kg.add_argument("--force", action="store_true", help="replace an existing cosign.key/cosign.pub")
    sg = sub.add_parser("sign", help="sign an image in a registry: cosign format (--key) or simple signing (--gpg-key)")
    sg.add_argument("ref", metavar="REGISTRY/REPO[:TAG|@DIGEST]")
    sg.add_argument("--key", metavar="cosign.key", help="push a cosign signature (sha256-<digest>.sig tag)")
    sg.add_argument("--gpg-key", metavar="FINGERPRINT", help="sign with gpg into the --lookaside directory")
    sg.add_argument("--lookaside", metavar="DIR", help="simple-signing signature store (skopeo's registries.d "
                    "lookaside)")
    vf = sub.add_parser("verify", help="verify an image's signatures: cosign (--key) or simple signing (--gpg-keyring)")
    vf.add_argument("ref", metavar="REGISTRY/REPO[:TAG|@DIGEST]")
    vf.add_argument("--key", metavar="cosign.pub", help="cosign public key")
    vf.add_argument("--gpg-keyring", metavar="KEYS.gpg", help="trusted OpenPGP public keys (armored or binary)")
    vf.add_argument("--lookaside", metavar="DIR", help="where the simple-signing signatures are")
    for p in (kg, sg, vf):
        if p is not kg:
            _registry_options(p)
        p.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
        p.add_argument("--quiet", "-q", action="store_true", help="print only errors")
        p.add_argument("--debug", action="store_true", help="show tracebacks")


def _lock_parsers(sub: argparse._SubParsersAction) -> None:
    """``lock``, ``bundle``, ``inspect``, ``diff``."""
    lk = sub.add_parser("lock", help="solve and write a lockfile (every record, base digest, options) per platform")
    _common(lk)
    lk.add_argument("-o", "--output", default="oci-conda.lock", metavar="LOCKFILE", help="default oci-conda.lock")
    lk.add_argument("--format", choices=("oci-conda", "explicit"), default="oci-conda",
                    help="oci-conda (default) or explicit (@EXPLICIT, for conda/mamba; one platform)")
    lk.add_argument("--base", metavar="REF", help="base image (as for build)")
    lk.add_argument("--prefix", metavar="PATH", help="as for build")
    add_arguments(lk, locked_only=True)
    bd = sub.add_parser("bundle", help="one tar with the lock, every package file and the base image, for offline builds")
    _common(bd)
    bd.add_argument("-o", "--output", required=True, metavar="BUNDLE.tar")
    bd.add_argument("--env", metavar="ENV.yml", help="when ENV.yml is a lock: the environment file it was made from")
    bd.add_argument("--environment", metavar="NAME", help="when ENV.yml is a pixi.lock: the environment to bundle "
                    "(default default)")
    bd.add_argument("--base", metavar="REF", help="base image (as for build)")
    bd.add_argument("--prefix", metavar="PATH", help="as for build")
    add_arguments(bd, locked_only=True)
    bd.add_argument("--jobs", type=int, default=DEFAULT_JOBS, metavar="N", help=f"parallel downloads (default "
                    f"{DEFAULT_JOBS})")
    ins = sub.add_parser("inspect", help="platforms, layers (and the packages in each), config and packages of an image")
    ins.add_argument("image", metavar="IMAGE", help="any reference --base takes: OCI archive (.tar), oci:DIR, dir:DIR, "
                     "docker-archive:TAR or REGISTRY/REPO:TAG (then also the SBOMs and signatures attached there)")
    _registry_options(ins)
    ins.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    ins.add_argument("--quiet", "-q", action="store_true", help=argparse.SUPPRESS)
    ins.add_argument("--debug", action="store_true", help="show tracebacks")
    df = sub.add_parser("diff", help="packages added, removed and changed between two images; layers shared")
    df.add_argument("image_a", metavar="A", help="any reference --base takes (archive, layout, dir:, docker-archive:, "
                    "registry)")
    df.add_argument("image_b", metavar="B")
    _registry_options(df)
    df.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    df.add_argument("--quiet", "-q", action="store_true", help=argparse.SUPPRESS)
    df.add_argument("--debug", action="store_true", help="show tracebacks")


def _label_options(b: argparse.ArgumentParser) -> None:
    """Config labels, manifest annotations, Env and the OCI provenance keys, from the command line."""
    b.add_argument("--label", action="append", metavar="KEY=VALUE", help="config label (over image.labels); repeatable")
    b.add_argument("--annotation", action="append", metavar="KEY=VALUE",
                   help="manifest and index annotation (over image.annotations); repeatable")
    b.add_argument("--env", action="append", metavar="NAME=VALUE", help="image Env entry (after image.env); repeatable")
    b.add_argument("--source", metavar="URL", help="org.opencontainers.image.source label and annotation")
    b.add_argument("--revision", metavar="REV", help="org.opencontainers.image.revision label and annotation")
    b.add_argument("--image-version", metavar="VERSION", help="org.opencontainers.image.version label and annotation")
    b.add_argument("--oci-labels", action="store_true",
                   help="add org.opencontainers.image.created (the build time: SOURCE_DATE_EPOCH or the newest "
                   "package) and source/revision/version from CI variables (GITHUB_*, CI_PROJECT_URL/CI_COMMIT_SHA/"
                   "CI_COMMIT_TAG, SOURCE_URL/SOURCE_REVISION) unless given")


def _registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="plain HTTP to the registry (loopback hosts always are)")
    p.add_argument("--ca-file", metavar="PEM", help="CA bundle for a registry with a private CA")
    p.add_argument("--authfile", metavar="FILE", help="registry credentials file (default: $REGISTRY_AUTH_FILE, "
                   "podman's auth.json, ~/.docker/config.json)")


class Terminated(KeyboardInterrupt):
    """SIGTERM (what CI cancellation sends), raised like Ctrl-C so every ``finally`` and context manager cleans up."""


def _on_sigterm(signum: int, frame: object) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # a second SIGTERM while cleaning up ends us at once
    raise Terminated


def _quiet_stdout() -> None:
    """After a closed pipe (``inspect | head``): point stdout at /dev/null so the interpreter's final flush is silent."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass


#: Error class -> exit code; the first class the error is an instance of wins (README "Exit codes").
EXIT_CODES: tuple[tuple[type[OciCondaError], int], ...] = (
    (SolveError, EXIT_UNSATISFIABLE),
    (ChannelError, EXIT_NETWORK),
    (FetchError, EXIT_NETWORK),
    (RegistryError, EXIT_NETWORK),
    (AuthError, EXIT_NETWORK),
    (OciCondaError, EXIT_USAGE),
)


def exit_code(error: OciCondaError) -> int:
    """The exit code for a user-facing error, from :data:`EXIT_CODES`."""
    return next(code for cls, code in EXIT_CODES if isinstance(error, cls))


def main(argv: Sequence[str] | None = None) -> int:
    """Parse, run one command, and turn every way it can end into one line and an exit code: a user error, an OS
    error (a read-only cache, a full disk), SIGINT (130) and SIGTERM (143) after cleanup, a closed stdout (141)."""
    parser = make_parser()
    args = parser.parse_args(argv)
    reporter = Reporter(choose_mode(args.quiet, args.json))
    command = COMMANDS.get(args.command)
    if command is None:
        parser.error(f"unknown command {args.command}")
    if threading_main():
        signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        sweep_cache()
        code = command(args, reporter)
        sys.stdout.flush()  # a closed pipe shows here, inside the handlers below, not at interpreter exit
        return code
    except OciCondaError as e:
        if args.debug:
            traceback.print_exc()
        msg = str(e)
        print(f"oci-conda: error: {msg}", file=sys.stderr)
        return exit_code(e)
    except Terminated:
        print("oci-conda: terminated", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("oci-conda: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return 141
    except RecursionError:
        if args.debug:
            traceback.print_exc()
        print("oci-conda: error: input nested too deeply", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        if args.debug:
            traceback.print_exc()
        where = f"{e.filename}: " if e.filename else ""
        print(f"oci-conda: error: {where}{e.strerror or type(e).__name__}", file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 -- a bug: show where, and say so
        traceback.print_exc()
        print(f"oci-conda: internal error (please report it): {type(e).__name__}: {e}", file=sys.stderr)
        return EXIT_INTERNAL


def threading_main() -> bool:
    """Signal handlers can only be installed from the main thread (tests may call :func:`main` from another)."""
    return threading.current_thread() is threading.main_thread()
