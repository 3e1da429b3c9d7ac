"""Command line: parse arguments, print progress and errors, choose exit codes. Knows how no stage works."""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Sequence

from . import __version__
from .errors import OciCondaError
from .progress import Reporter, choose_mode

SUBDIRS = ("linux-64", "linux-aarch64", "linux-ppc64le", "linux-s390x", "linux-armv7l")


def _common(p: argparse.ArgumentParser, env_optional: bool = False) -> None:
    p.add_argument("env_file", metavar="ENV.yml", nargs="?" if env_optional else None,
                   help="conda environment file (with an optional image: section)")
    p.add_argument("-c", "--channel", dest="channels", action="append", default=[], metavar="CHANNEL",
                   help="channel to use before the file's channels (name, URL or local path); repeatable")
    p.add_argument("--platform", dest="platforms", action="append", choices=SUBDIRS, metavar="SUBDIR",
                   help="target conda subdir (default linux-64)")
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
                   help="OUT.tar: OCI archive (also loadable by docker/podman load); otherwise an OCI layout directory"
                   " (optional with --push)")
    b.add_argument("--push", metavar="REGISTRY/REPO:TAG", help="push the image to a registry, straight from the cache")
    b.add_argument("--tag", metavar="NAME:TAG", help="image name for index.json and docker load")
    b.add_argument("--base", metavar="REF", help="scratch (default), oci-archive:PATH[:REF], oci:DIR[:REF] or "
                   "REGISTRY/REPO[:TAG|@DIGEST]")
    _registry_options(b)
    b.add_argument("--prefix", metavar="PATH", help="where the environment lives in the image (default /opt/conda)")
    b.add_argument("--compression", choices=("gzip", "zstd"), default="gzip", help="layer compression")
    b.add_argument("--jobs", type=int, default=8, metavar="N", help="parallel downloads (default 8)")
    b.add_argument("--lock", metavar="LOCKFILE", help="install exactly what LOCKFILE lists (oci-conda lock, "
                   "conda-lock.yml v1 or @EXPLICIT): no solve, no repodata")
    b.add_argument("--allow-stale", action="store_true", help="with --lock: build even if ENV.yml changed since locking")
    b.add_argument("--from-bundle", metavar="BUNDLE.tar", help="build offline from a bundle made by `oci-conda bundle` "
                   "(ENV.yml may be left out)")
    b.add_argument("--layering", choices=("packages", "single"), default="packages",
                   help="packages (default): a layer per package, biggest first, within --max-layers; single: one layer")
    b.add_argument("--max-layers", type=int, default=16, metavar="N",
                   help="layer budget for the environment with --layering packages (default 16)")
    b.add_argument("--trim", choices=("none", "safe", "aggressive"), default="none",
                   help="drop files no program uses: safe (static libs, docs, man pages), aggressive (also headers, "
                        "__pycache__, python tests); conda-meta is kept consistent")
    b.add_argument("--compile-pyc", action="store_true",
                   help="byte-compile site-packages into the image (reproducible unchecked-hash .pyc, listed in "
                        "conda-meta) with a host python of the environment's X.Y; skipped with a warning otherwise")

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
    lg.add_argument("-u", "--username", required=True)
    lg.add_argument("--password-stdin", action="store_true", required=True, help="read the password from stdin")
    _registry_options(lg)
    lg.add_argument("--quiet", "-q", action="store_true", help="print only errors")
    lg.add_argument("--debug", action="store_true", help="show tracebacks")
    lg.set_defaults(json=False)

    s = sub.add_parser("solve", help="print the packages an environment resolves to, without building")
    _common(s)
    _lock_parsers(sub)
    return parser


def _lock_parsers(sub: argparse._SubParsersAction) -> None:
    """``lock``, ``bundle``, ``inspect``, ``diff`` (implemented in lock.py, bundle.py and inspect_image.py)."""
    lk = sub.add_parser("lock", help="solve and write a lockfile (every record, base digest, options) per platform")
    _common(lk)
    lk.add_argument("-o", "--output", default="oci-conda.lock", metavar="LOCKFILE", help="default oci-conda.lock")
    lk.add_argument("--format", choices=("oci-conda", "explicit"), default="oci-conda",
                    help="oci-conda (default) or explicit (@EXPLICIT, for conda/mamba; one platform)")
    lk.add_argument("--base", metavar="REF", help="base image (as for build)")
    lk.add_argument("--prefix", metavar="PATH", help="as for build")
    lk.add_argument("--compression", choices=("gzip", "zstd"), default="gzip", help="as for build")
    lk.add_argument("--layering", choices=("packages", "single"), default="packages", help="as for build")
    lk.add_argument("--max-layers", type=int, default=16, metavar="N", help="as for build")
    lk.add_argument("--trim", choices=("none", "safe", "aggressive"), default="none", help="as for build")
    bd = sub.add_parser("bundle", help="one tar with the lock, every package file and the base image, for offline builds")
    _common(bd)
    bd.add_argument("-o", "--output", required=True, metavar="BUNDLE.tar")
    bd.add_argument("--env", metavar="ENV.yml", help="when ENV.yml is a lock: the environment file it was made from")
    bd.add_argument("--base", metavar="REF", help="base image (as for build)")
    bd.add_argument("--prefix", metavar="PATH", help="as for build")
    bd.add_argument("--compression", choices=("gzip", "zstd"), default="gzip", help="as for build")
    bd.add_argument("--layering", choices=("packages", "single"), default="packages", help="as for build")
    bd.add_argument("--max-layers", type=int, default=16, metavar="N", help="as for build")
    bd.add_argument("--trim", choices=("none", "safe", "aggressive"), default="none", help="as for build")
    bd.add_argument("--jobs", type=int, default=8, metavar="N", help="parallel downloads (default 8)")
    ins = sub.add_parser("inspect", help="platforms, layers (and the packages in each), config and packages of an image")
    ins.add_argument("image", metavar="IMAGE", help="OCI archive (.tar) or OCI layout directory")
    ins.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    ins.add_argument("--quiet", "-q", action="store_true", help=argparse.SUPPRESS)
    ins.add_argument("--debug", action="store_true", help="show tracebacks")
    df = sub.add_parser("diff", help="packages added, removed and changed between two images; layers shared")
    df.add_argument("image_a", metavar="A")
    df.add_argument("image_b", metavar="B")
    df.add_argument("--json", action="store_true", help="print a machine-readable result on stdout")
    df.add_argument("--quiet", "-q", action="store_true", help=argparse.SUPPRESS)
    df.add_argument("--debug", action="store_true", help="show tracebacks")


def _registry_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--insecure", action="store_true", help="plain HTTP to the registry (loopback hosts always are)")
    p.add_argument("--ca-file", metavar="PEM", help="CA bundle for a registry with a private CA")
    p.add_argument("--authfile", metavar="FILE", help="registry credentials file (default: $REGISTRY_AUTH_FILE, "
                   "podman's auth.json, ~/.docker/config.json)")


def _configure_registry(args: argparse.Namespace) -> None:
    from .oci import registry

    registry.configure(insecure=args.insecure, ca_file=args.ca_file, authfile=args.authfile)


def _push(args: argparse.Namespace, reporter: Reporter) -> int:
    from .oci import registry

    _configure_registry(args)
    with reporter.phase("push", args.ref):
        result = registry.push_path(args.image, args.ref)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    else:
        s = result.stats
        if not args.quiet:
            print(f"pushed {result.ref} ({s.uploaded} blobs uploaded, {s.mounted} mounted, {s.existing} already there)",
                  file=sys.stderr)
        print(result.digest)
    return 0


def _login(args: argparse.Namespace, reporter: Reporter) -> int:
    from .errors import SpecError
    from .oci import registry

    _configure_registry(args)
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SpecError("login: no password on stdin")
    path = registry.login(args.registry, args.username, password)
    if not args.quiet:
        print(f"login succeeded for {args.registry}; credentials stored in {path}", file=sys.stderr)
    return 0


def _build(args: argparse.Namespace, reporter: Reporter) -> int:
    if args.output is None and args.push is None:
        from .errors import SpecError

        raise SpecError("build: give -o OUT, --push REGISTRY/REPO:TAG, or both")
    _configure_registry(args)
    from .lock import lock_inputs

    with lock_inputs(args, reporter) as (env_file, lock, offline):
        return _build_with(args, reporter, env_file, lock, offline)


def _build_with(args: argparse.Namespace, reporter: Reporter, env_file: str, lock: object, offline: bool) -> int:
    from .build import BuildOptions, build_image
    from .lock import lock_spec

    spec = lock_spec(env_file, lock, base=args.base, prefix=args.prefix, tag=args.tag, channels=args.channels)
    opts = BuildOptions(
        output=Path(args.output) if args.output is not None else None,
        push=args.push,
        platforms=tuple(args.platforms or ("linux-64",)),
        compression=args.compression,
        offline=args.offline or offline,
        channel_alias=args.channel_alias,
        jobs=max(1, args.jobs),
        layering=args.layering,
        max_layers=args.max_layers,
        trim=args.trim,
        compile_pyc=args.compile_pyc,
    )
    if lock is not None:
        from .lock import lock_options

        opts = lock_options(opts, lock, args)
    result = build_image(spec, opts, reporter)
    if args.json:
        print(json.dumps(result.to_json(), indent=2, sort_keys=True))
    elif not args.quiet:
        for line in result.summary_lines():
            print(line, file=sys.stderr)
    return 0


def _solve(args: argparse.Namespace, reporter: Reporter) -> int:
    from .build import BuildOptions, solve_environment
    from .spec import load_spec, with_overrides

    spec = with_overrides(load_spec(args.env_file), channels=args.channels)
    opts = BuildOptions(output=Path(os.devnull), platforms=tuple(args.platforms or ("linux-64",)),
                        offline=args.offline, channel_alias=args.channel_alias)
    out = {}
    for subdir in opts.platforms:
        out[subdir] = solve_environment(spec, subdir, opts, reporter)
    if args.json:
        if len(out) == 1:
            print(json.dumps([_public(r) for r in next(iter(out.values()))], indent=2, sort_keys=True))
        else:
            print(json.dumps({k: [_public(r) for r in v] for k, v in out.items()}, indent=2, sort_keys=True))
        return 0
    for subdir, records in out.items():
        if len(out) > 1:
            print(f"# {subdir}")
        for r in sorted(records, key=lambda r: r.name):
            print(f"{r.name} {r.version} {r.build} {_channel_label(r.channel)}/{r.subdir}")
    return 0


def _public(r: object) -> dict:
    """A record for printing: its URLs without channel tokens or passwords."""
    from .credentials import redact_url

    d = r.to_json()  # type: ignore[attr-defined]
    for k in ("url", "channel"):
        if isinstance(d.get(k), str):
            d[k] = redact_url(d[k])
    return d


def _channel_label(url: str) -> str:
    for prefix in ("https://conda.anaconda.org/",):
        if url.startswith(prefix):
            return url[len(prefix):]
    return url


def main(argv: Sequence[str] | None = None) -> int:
    parser = make_parser()
    args = parser.parse_args(argv)
    reporter = Reporter(choose_mode(args.quiet, args.json))
    try:
        if args.command == "build":
            return _build(args, reporter)
        if args.command == "solve":
            return _solve(args, reporter)
        if args.command in ("lock", "bundle", "inspect", "diff"):
            from .lock import run_command

            return run_command(args, reporter)
        if args.command == "push":
            return _push(args, reporter)
        if args.command == "login":
            return _login(args, reporter)
        parser.error(f"unknown command {args.command}")
    except OciCondaError as e:
        if args.debug:
            traceback.print_exc()
        msg = str(e)
        print(f"oci-conda: error: {msg}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("oci-conda: interrupted", file=sys.stderr)
        return 130
    return 0



