"""One function per subcommand: parsed arguments stop here and become typed options and plain calls.

cli.py builds the parser and calls :data:`COMMANDS`; each ``*_command(args, reporter)`` turns ``args`` into a
:class:`~oci_conda.options.BuildOptions` / :class:`~oci_conda.spec.BuildSpec`, calls the stage modules
(resolve, build, lockfile, bundle, inspect_image, oci.registry), prints the result and returns the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import getpass
import hashlib
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from .build import build_image
from .bundle import open_bundle, write_bundle
from .conda.explicit import write_explicit
from .conda.records import PackageRecord
from .conda.order import dependency_order
from .credentials import redact_url
from .errors import SpecError
from .image_labels import merge, parse_pairs, provenance
from .image_names import image_tags
from .inspect_image import diff_images, inspect_image
from .lockfile import Lock, LockError, check_fresh, dump_lock, file_sha256, read_lock, sniff_file, write_bytes
from .oci.registry.client import RegistryOptions
from .oci.registry.login import login, logout
from .oci.registry.push import push_path
from .options import DEFAULT_PLATFORMS, BuildOptions, apply_lock
from .progress import Reporter
from .registry_options import registry_options
from .resolve import create_lock, default_session, solve_environment
from .spec import BuildSpec, load_spec, with_overrides

Command = Callable[[argparse.Namespace, Reporter], int]


def _platforms(args: argparse.Namespace) -> tuple[str, ...]:
    return tuple(args.platforms or DEFAULT_PLATFORMS)


def _registry(args: argparse.Namespace) -> RegistryOptions:
    """How to reach registries, from the registry flags (absent on subcommands without them) and the environment."""
    return registry_options(insecure=getattr(args, "insecure", False), ca_file=getattr(args, "ca_file", None),
                            authfile=getattr(args, "authfile", None), jobs=getattr(args, "jobs", None))


def _print_json(doc: Any) -> None:
    print(json.dumps(doc, indent=2, sort_keys=True))


# ---------------------------------------------------------------------------------------------------------------
# build


def _env_beside(lock: Lock) -> str | None:
    if lock.kind == "oci-conda" and lock.env_file and lock.path is not None:
        cand = lock.path.parent / lock.env_file
        if cand.is_file():
            return str(cand)
    return None


@contextlib.contextmanager
def lock_inputs(args: argparse.Namespace, reporter: Reporter) -> Iterator[tuple[str | None, Lock | None, bool]]:
    """``(env file or None, lock or None, offline)`` for ``build``: from ``--from-bundle``, ``--lock``, or an
    ENV.yml that is itself a lockfile. A bundle is unpacked into a temporary directory for the build's duration."""
    if args.from_bundle:
        if args.lock or args.env_file is not None:
            raise SpecError("build --from-bundle takes neither ENV.yml nor --lock: the bundle carries both")
        with open_bundle(Path(args.from_bundle)) as ub:
            if args.base is None and ub.base_ref is not None:
                args.base = ub.base_ref
            yield (str(ub.env_file) if ub.env_file else None), ub.lock, True
        return
    env_file = args.env_file
    lock = None
    if args.lock:
        lock = read_lock(args.lock)
    elif env_file is not None and sniff_file(env_file) is not None:
        lock = read_lock(env_file)
        env_file = _env_beside(lock)
    elif env_file is None:
        raise SpecError("build: give ENV.yml, --lock LOCKFILE or --from-bundle BUNDLE.tar")
    if lock is not None:
        if env_file is None:
            env_file = _env_beside(lock)
        if env_file is None and lock.kind == "oci-conda":
            raise LockError(f"{lock.path}: the environment file {lock.env_file} is not beside the lock; give ENV.yml")
        if env_file is not None:
            w = check_fresh(lock, env_file, args.allow_stale)
            if w:
                reporter.warn(w)
    yield env_file, lock, False


def lock_spec(env_file: str | None, lock: Lock | None, **overrides: Any) -> BuildSpec:
    """The BuildSpec for a build: the environment file's, or (for a foreign lock alone) image defaults."""
    if env_file is not None:
        spec = load_spec(env_file)
    else:
        assert lock is not None and lock.path is not None
        spec = BuildSpec(path=lock.path.resolve(), name=None, channels=(), selected_specs=())
    if lock is not None and lock.options.get("prefix"):
        locked = lock.options["prefix"]
        if overrides.get("prefix") not in (None, locked):
            raise LockError(f"{lock.path}: locked with prefix {locked}; --prefix {overrides['prefix']} needs a relock")
        overrides["prefix"] = locked
    return with_overrides(spec, **overrides)


def with_cli_labels(spec: BuildSpec, args: argparse.Namespace) -> BuildSpec:
    """``spec`` with ``--label``/``--annotation``/``--env`` and the provenance keys on top of the file's values:
    the file, then provenance (options or CI variables), then the explicit flags."""
    prov = tuple(provenance(os.environ, args.oci_labels, args.source, args.revision, args.image_version).items())
    image = dataclasses.replace(
        spec.image,
        labels=merge(merge(spec.image.labels, prov), parse_pairs(args.label, "--label")),
        annotations=merge(merge(spec.image.annotations, prov), parse_pairs(args.annotation, "--annotation")),
        env=merge(spec.image.env, parse_pairs(args.env, "--env", env_names=True)),
    )
    return dataclasses.replace(spec, image=image)


def output_path(given: str) -> Path:
    """``-o``: ``OUT.tar`` is an OCI archive, a directory (an existing one, no suffix, or a trailing ``/``) an OCI
    layout. Anything else (``out.tar.gz``, ``out.zip``) is refused rather than silently becoming a directory."""
    path = Path(given)
    if path.name.endswith(".tar") and not given.endswith("/"):
        return path
    if given.endswith("/") or path.is_dir() or not path.suffix:
        return path
    raise SpecError(f"-o {given}: unknown output suffix {path.suffix!r} (this would write an OCI layout directory "
                    f"named {path.name}); use OUT.tar for an OCI archive, or a directory name without a suffix or "
                    "ending in / for an OCI layout")


def build_command(args: argparse.Namespace, reporter: Reporter) -> int:
    if args.output is None and args.push is None:
        raise SpecError("build: give -o OUT, --push REGISTRY/REPO:TAG, or both")
    output = output_path(args.output) if args.output is not None else None
    registry = _registry(args)
    with lock_inputs(args, reporter) as (env_file, lock, offline):
        spec = lock_spec(env_file, lock, base=args.base, prefix=args.prefix, channels=args.channels)
        tags = image_tags(args.tag or (), spec.image.tag, spec.name, f"{spec.path}: image.tag")
        spec = with_cli_labels(spec, args)
        opts = BuildOptions.from_values(
            vars(args),
            output=output,
            push=args.push,
            platforms=_platforms(args),
            offline=args.offline or offline,
            channel_alias=args.channel_alias,
            jobs=max(1, args.jobs),
            registry=registry,
            tags=tags if args.tag else (),
            created_label=args.oci_labels,  # the file's tag or the default are build.py's fallback
        )
        if lock is not None:
            opts = apply_lock(opts, lock, platforms_given=bool(args.platforms))
        result = build_image(spec, opts, reporter)
    if args.json:
        _print_json(result.to_json())
        return 0
    if not args.quiet:
        for line in result.summary_lines():
            print(line, file=sys.stderr)
    print(result.result_line())  # stdout carries the result only, so IMG=$(oci-conda build ...) works
    return 0


# ---------------------------------------------------------------------------------------------------------------
# solve


def _public(r: PackageRecord) -> dict[str, Any]:
    """A record for printing: its URLs without channel tokens or passwords."""
    d = r.to_json()
    for k in ("url", "channel"):
        if isinstance(d.get(k), str):
            d[k] = redact_url(d[k])
    return d


def _channel_label(url: str) -> str:
    for prefix in ("https://conda.anaconda.org/",):
        if url.startswith(prefix):
            return url[len(prefix):]
    return url


def solve_command(args: argparse.Namespace, reporter: Reporter) -> int:
    spec = with_overrides(load_spec(args.env_file), channels=args.channels)
    opts = BuildOptions(platforms=_platforms(args), offline=args.offline, channel_alias=args.channel_alias)
    out = {subdir: solve_environment(spec, subdir, opts, reporter) for subdir in opts.platforms}
    if args.json:
        if len(out) == 1:
            _print_json([_public(r) for r in next(iter(out.values()))])
        else:
            _print_json({k: [_public(r) for r in v] for k, v in out.items()})
        return 0
    for subdir, records in out.items():
        if len(out) > 1:
            print(f"# {subdir}")
        for r in sorted(records, key=lambda r: r.name):
            print(f"{r.name} {r.version} {r.build} {_channel_label(r.channel)}/{r.subdir}")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# lock and bundle


def lock_from_args(args: argparse.Namespace, reporter: Reporter, env_file: str) -> Lock:
    """Solve ``env_file`` with the command line's channels, base, prefix and image options, and lock the result."""
    spec = with_overrides(load_spec(env_file), base=args.base, prefix=args.prefix, channels=args.channels)
    opts = BuildOptions.from_values(vars(args), platforms=_platforms(args), offline=args.offline,
                                    channel_alias=args.channel_alias, registry=_registry(args))
    return create_lock(spec, opts, reporter)


def lock_command(args: argparse.Namespace, reporter: Reporter) -> int:
    lock = lock_from_args(args, reporter, args.env_file)
    if args.format == "explicit":
        if len(lock.platforms) != 1:
            raise SpecError("lock --format explicit: an @EXPLICIT file holds one platform; give one --platform")
        (subdir, pl), = lock.platforms.items()
        data = write_explicit(dependency_order(pl.packages), subdir).encode()
    else:
        data = dump_lock(lock)
    write_bytes(data, args.output)
    if args.json:
        _print_json({"output": str(args.output), "sha256": hashlib.sha256(data).hexdigest(),
                     "platforms": {k: len(v.packages) for k, v in sorted(lock.platforms.items())}})
    elif not args.quiet:
        for k, v in sorted(lock.platforms.items()):
            print(f"{k}: {len(v.packages)} packages, base {v.base}{' @ ' + v.base_digest if v.base_digest else ''}",
                  file=sys.stderr)
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _bundle_platforms(lock: Lock, wanted: Sequence[str] | None) -> Lock:
    """The platforms a bundle carries: those asked for, else every linux platform of the lock (a conda-lock file
    may also lock osx/win, whose packages an image never needs)."""
    keep = list(wanted) if wanted else sorted(p for p in lock.platforms if p.startswith("linux-"))
    for p in keep:
        lock.for_platform(p)  # a missing platform is a LockError naming the file
    if not keep:
        raise LockError(f"{lock.path}: locks no linux platform (has: {', '.join(sorted(lock.platforms))})")
    return dataclasses.replace(lock, platforms={p: lock.platforms[p] for p in keep})


def bundle_command(args: argparse.Namespace, reporter: Reporter) -> int:
    src = args.env_file
    if sniff_file(src) is None:  # an environment file: lock it now
        lock = lock_from_args(args, reporter, src)
        lock_bytes, lock_name, env_path = dump_lock(lock), "oci-conda.lock", Path(src)
    else:
        lock = read_lock(src)
        lock_bytes, lock_name = Path(src).read_bytes(), Path(src).name
        env_path = Path(args.env) if args.env else None
        if env_path is None and lock.kind == "oci-conda" and lock.env_file:
            cand = Path(src).parent / lock.env_file
            env_path = cand if cand.is_file() else None
        if lock.kind == "oci-conda" and env_path is None:
            raise LockError(f"{src}: the environment file {lock.env_file} is not beside the lock; give --env ENV.yml")
        if env_path is not None:
            check_fresh(lock, env_path)
    lock = _bundle_platforms(lock, args.platforms)
    t0 = time.perf_counter()
    session = default_session(BuildOptions(offline=args.offline))
    with reporter.phase("bundle", str(args.output)):
        info = write_bundle(lock, lock_bytes, lock_name, env_path, Path(args.output), session, max(1, args.jobs),
                            reporter)
    info["seconds"] = round(time.perf_counter() - t0, 3)
    info["sha256"] = file_sha256(args.output)
    if args.json:
        _print_json(info)
    elif not args.quiet:
        print(f"wrote {info['output']}: {info['packages']} packages, {info['base_blobs']} base image blobs, "
              f"{info['size']} bytes", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# inspect and diff


def inspect_command(args: argparse.Namespace, reporter: Reporter) -> int:
    views = inspect_image(args.image)
    if args.json:
        _print_json({"image": str(args.image), "platforms": [v.to_json() for v in views]})
        return 0
    for v in views:
        print(f"{v.platform}  manifest {v.manifest_digest}")
        c = v.config.get("config") or {}
        for key in ("Entrypoint", "Cmd", "WorkingDir", "User"):
            if c.get(key):
                print(f"  {key.lower()}: {c[key]}")
        for e in c.get("Env") or []:
            print(f"  env: {e}")
        print(f"  layers ({len(v.layers)}):")
        for layer in v.layers:
            pk = ", ".join(layer.packages[:6]) + (f", ... (+{len(layer.packages) - 6})" if len(layer.packages) > 6
                                                   else "")
            print(f"    {layer.digest[:19]}  {layer.size:>12}  {pk}")
        print(f"  packages ({len(v.packages)}):")
        several = len({k[0] for k in v.packages}) > 1
        for k in sorted(v.packages):
            p = v.packages[k]
            print(f"    {p['name']} {p['version']} {p['build']}" + (f"  ({p['prefix']})" if several else ""))
    return 0


def diff_command(args: argparse.Namespace, reporter: Reporter) -> int:
    d = diff_images(args.image_a, args.image_b)
    if args.json:
        _print_json(d)
        return 0
    for plat, r in d["platforms"].items():
        print(f"{plat}:")
        for p in r["added"]:
            print(f"  + {p['name']} {p['version']} {p['build']}")
        for p in r["removed"]:
            print(f"  - {p['name']} {p['version']} {p['build']}")
        for p in r["changed"]:
            print(f"  ~ {p['name']} {p['from']} -> {p['to']}")
        print(f"  layers shared: {len(r['layers_shared'])} ({r['shared_bytes']} bytes); bytes only in A: "
              f"{r['bytes_only_in_a']}, only in B: {r['bytes_only_in_b']}")
    for plat in d["only_in_a"]:
        print(f"{plat}: only in A")
    for plat in d["only_in_b"]:
        print(f"{plat}: only in B")
    return 0


# ---------------------------------------------------------------------------------------------------------------
# push and login


def push_command(args: argparse.Namespace, reporter: Reporter) -> int:
    options = _registry(args)
    with reporter.phase("push", args.ref):
        result = push_path(args.image, args.ref, options)
    if args.json:
        _print_json(result.to_json())
    else:
        s = result.stats
        if not args.quiet:
            print(f"pushed {result.ref} ({s.uploaded} blobs uploaded, {s.mounted} mounted, {s.existing} already there)",
                  file=sys.stderr)
        print(result.digest)
    return 0


def login_command(args: argparse.Namespace, reporter: Reporter) -> int:
    options = _registry(args)
    username = args.username
    if args.password_stdin:
        if not username:
            raise SpecError("login: --password-stdin needs -u USER")
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise SpecError("login: no password on stdin")
    else:
        if not sys.stdin.isatty():
            raise SpecError(f"login {args.registry}: no terminal to prompt for the password; pipe it with "
                            "--password-stdin")
        try:
            if not username:
                print("Username: ", end="", file=sys.stderr, flush=True)
                username = sys.stdin.readline().strip()
            password = getpass.getpass("Password: ")
        except EOFError:
            raise SpecError(f"login {args.registry}: no password given") from None
        if not username or not password:
            raise SpecError(f"login {args.registry}: a user name and a password are needed")
    path = login(args.registry, username, password, options)
    if not args.quiet:
        print(f"login succeeded for {args.registry}; credentials stored in {path}", file=sys.stderr)
    return 0


def logout_command(args: argparse.Namespace, reporter: Reporter) -> int:
    path = logout(args.registry, _registry(args))
    if not args.quiet:
        print(f"removed the credentials for {args.registry} from {path}" if path is not None else
              f"no credentials stored for {args.registry}", file=sys.stderr)
    return 0


COMMANDS: dict[str, Command] = {
    "build": build_command,
    "solve": solve_command,
    "lock": lock_command,
    "bundle": bundle_command,
    "inspect": inspect_command,
    "diff": diff_command,
    "push": push_command,
    "login": login_command,
    "logout": logout_command,
}
