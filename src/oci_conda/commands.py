"""One function per subcommand: parsed arguments stop here and become typed options and plain calls.

cli.py builds the parser and calls :data:`COMMANDS`; each ``*_command(args, reporter)`` turns ``args`` into a
:class:`~oci_conda.options.BuildOptions` / :class:`~oci_conda.spec.BuildSpec`, calls the stage modules
(resolve, build, lockfile, bundle, inspect_image, oci.registry), prints the result and returns the exit code.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
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
from .credentials import redact_url, strip_credentials
from .errors import SpecError
from .inspect_image import diff_images, inspect_image
from .lockfile import Lock, LockError, check_fresh, dump_lock, file_sha256, read_lock, sniff_file, write_bytes
from .oci.registry.client import RegistryOptions
from .oci.registry.login import login
from .oci.registry.push import push_path
from .options import BuildOptions, apply_lock
from .platforms import default_platforms, image_platforms, parse_platforms
from .progress import Reporter
from .registry_options import registry_options
from .resolve import create_lock, default_session, refuse_pypi, solve_environment
from .spec import BuildSpec, load_spec, with_overrides

Command = Callable[[argparse.Namespace, Reporter], int]


def _given_platforms(args: argparse.Namespace) -> tuple[str, ...] | None:
    """``--platform`` values as conda subdirs (any spelling, comma lists), or None when none was given."""
    return tuple(parse_platforms(args.platforms)) if getattr(args, "platforms", None) else None


def _platforms(args: argparse.Namespace, spec: BuildSpec) -> tuple[str, ...]:
    """``--platform``, else the environment file's ``platforms:``, else ``$CONDA_SUBDIR``, else linux-64."""
    return _given_platforms(args) or tuple(default_platforms(spec.platforms, os.environ))


def _load_spec(path: str, reporter: Reporter) -> BuildSpec:
    """The environment file, its warnings (sections it ignores) shown one line each."""
    spec = load_spec(path)
    for w in spec.warnings:
        reporter.warn(w)
    return spec


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


@dataclasses.dataclass(frozen=True)
class LockInputs:
    """What ``build`` builds from: an environment file, a lock, or both (then the file is checked for staleness)."""

    env_file: str | None
    lock: Lock | None
    offline: bool = False  # a bundle: everything is in it
    stale: bool = False  # the env file changed since locking and --allow-stale was given: its settings win


def _checked(env_file: str | None, lock: Lock, args: argparse.Namespace, reporter: Reporter) -> bool:
    """Whether ``env_file`` is stale against ``lock`` (allowed; a warning is shown); a stale file without
    ``--allow-stale`` raises. A version 1 lock has no environment of its own and needs the file."""
    if env_file is None:
        if lock.kind == "oci-conda" and lock.environment is None:
            raise LockError(f"{lock.path}: a version 1 lock does not carry its environment and {lock.env_file} is "
                            "not beside it; give ENV.yml or relock")
        return False
    w = check_fresh(lock, env_file, args.allow_stale)
    if w:
        reporter.warn(w)
    return w is not None


@contextlib.contextmanager
def lock_inputs(args: argparse.Namespace, reporter: Reporter) -> Iterator[LockInputs]:
    """The inputs of ``build``: from ``--from-bundle`` (with ENV.yml checked against the bundle's lock), ``--lock``,
    or an ENV.yml that is itself a lockfile. A bundle is unpacked into a temporary directory for the build."""
    environment = getattr(args, "environment", None)
    if args.from_bundle:
        if args.lock:
            raise SpecError("build --from-bundle takes no --lock: the bundle carries its lock")
        with open_bundle(Path(args.from_bundle)) as ub:
            if args.base is None and ub.base_ref is not None:
                args.base = ub.base_ref
            env_file = args.env_file if args.env_file is not None else (str(ub.env_file) if ub.env_file else None)
            stale = _checked(env_file, ub.lock, args, reporter)
            yield LockInputs(env_file, ub.lock, True, stale)
        return
    env_file = args.env_file
    if args.lock:
        lock = read_lock(args.lock, environment)
    elif env_file is not None and sniff_file(env_file) is not None:
        lock = read_lock(env_file, environment)
        env_file = None
    elif env_file is None:
        raise SpecError("build: give ENV.yml, --lock LOCKFILE or --from-bundle BUNDLE.tar")
    else:
        if environment is not None:
            raise SpecError("build --environment picks an environment of a pixi.lock given as --lock")
        yield LockInputs(env_file, None)
        return
    if env_file is None:
        env_file = _env_beside(lock)
    yield LockInputs(env_file, lock, False, _checked(env_file, lock, args, reporter))


def lock_spec(inputs: LockInputs, reporter: Reporter, **overrides: Any) -> BuildSpec:
    """The BuildSpec for a build. From a lock that carries its environment: that environment (the lock is enough;
    an env file given only anchors relative channels and lends its channel credentials); from a stale env file
    (``--allow-stale``): that file, on the locked base; a version 1 lock or no lock: the env file; a foreign lock
    alone: image defaults."""
    env_file, lock = inputs.env_file, inputs.lock
    if lock is not None and lock.environment is not None and not inputs.stale:
        assert lock.path is not None
        path = lock.path.resolve()
        spec = lock.environment.to_spec(path)
        if env_file is not None:
            env_spec = _load_spec(env_file, reporter)
            spec = locked_with_env(spec, env_spec)
    elif env_file is not None:
        spec = _load_spec(env_file, reporter)
        if lock is not None and lock.environment is not None:  # stale, allowed: the base stays the locked one
            spec = dataclasses.replace(spec, image=dataclasses.replace(spec.image, base=lock.environment.image.base))
    else:
        assert lock is not None and lock.path is not None
        spec = BuildSpec(path=lock.path.resolve(), name=None, channels=(), selected_specs=())
    if lock is not None and lock.options.get("prefix"):
        locked = lock.options["prefix"]
        if overrides.get("prefix") not in (None, locked):
            raise LockError(f"{lock.path}: locked with prefix {locked}; --prefix {overrides['prefix']} needs a relock")
        overrides["prefix"] = locked
    return with_overrides(spec, **overrides)


def locked_with_env(locked: BuildSpec, env_spec: BuildSpec) -> BuildSpec:
    """The lock's environment, anchored at the env file's directory and with its channels' credentials (a lock
    never stores them)."""
    creds = {strip_credentials(c): c for c in env_spec.channels}
    return dataclasses.replace(locked, path=env_spec.path, channels=tuple(creds.get(c, c) for c in locked.channels))


def build_command(args: argparse.Namespace, reporter: Reporter) -> int:
    if args.output is None and args.push is None:
        raise SpecError("build: give -o OUT, --push REGISTRY/REPO:TAG, or both")
    registry = _registry(args)
    with lock_inputs(args, reporter) as inputs:
        lock = inputs.lock
        spec = lock_spec(inputs, reporter, base=args.base, prefix=args.prefix, tag=args.tag, channels=args.channels)
        given = _given_platforms(args)
        opts = BuildOptions.from_values(
            vars(args),
            output=Path(args.output) if args.output is not None else None,
            push=args.push,
            platforms=given or (() if lock is not None else tuple(default_platforms(spec.platforms, os.environ))),
            offline=args.offline or inputs.offline,
            channel_alias=args.channel_alias,
            jobs=max(1, args.jobs),
            registry=registry,
        )
        if lock is not None:
            opts = apply_lock(opts, lock, platforms_given=given is not None)
        result = build_image(spec, opts, reporter)
    if args.json:
        _print_json(result.to_json())
    elif not args.quiet:
        for line in result.summary_lines():
            print(line, file=sys.stderr)
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
    spec = with_overrides(_load_spec(args.env_file, reporter), channels=args.channels)
    opts = BuildOptions(platforms=_platforms(args, spec), offline=args.offline, channel_alias=args.channel_alias)
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
    spec = with_overrides(_load_spec(env_file, reporter), base=args.base, prefix=args.prefix, channels=args.channels)
    opts = BuildOptions.from_values(vars(args), platforms=_platforms(args, spec), offline=args.offline,
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
    keep = list(wanted) if wanted else sorted(image_platforms(list(lock.platforms)))
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
        lock = read_lock(src, getattr(args, "environment", None))
        lock_bytes, lock_name = Path(src).read_bytes(), Path(src).name
        env_path = Path(args.env) if args.env else None
        if env_path is None and lock.kind == "oci-conda" and lock.env_file:
            cand = Path(src).parent / lock.env_file
            env_path = cand if cand.is_file() else None
        if lock.kind == "oci-conda" and lock.environment is None and env_path is None:
            raise LockError(f"{src}: a version 1 lock does not carry its environment and {lock.env_file} is not "
                            "beside it; give --env ENV.yml or relock")
        if env_path is not None:
            check_fresh(lock, env_path)
    lock = _bundle_platforms(lock, _given_platforms(args))
    for subdir in lock.platforms:
        refuse_pypi(lock, subdir)  # a bundle that cannot build is refused now, not when offline
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
    password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        raise SpecError("login: no password on stdin")
    path = login(args.registry, args.username, password, options)
    if not args.quiet:
        print(f"login succeeded for {args.registry}; credentials stored in {path}", file=sys.stderr)
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
}
