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
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from .build import BuildResult, build_image
from .bundle import open_bundle, write_bundle
from .conda.explicit import write_explicit
from .conda.records import PackageRecord
from .conda.order import dependency_order
from .credentials import redact_url, strip_credentials
from .errors import ImageError, SpecError
from .image_labels import merge, parse_pairs, provenance
from .image_names import image_tags
from .inspect_image import ImageView, diff_images, inspect_image, inspect_registry, registry_attachments
from .lockfile import Lock, LockError, check_fresh, dump_lock, file_sha256, read_lock, sniff_file, write_bytes
from .oci.local import open_local, parse_local
from .oci.registry.client import RegistryClient, RegistryOptions
from .oci.registry.login import login, logout
from .oci.registry.push import PushResult, push_path
from .oci.registry.reference import parse_reference
from .oci.registry.referrers import attach, local_artifacts
from .oci.source import local_image_ref, parse_image_ref, registry_destination
from .options import BuildOptions, apply_lock
from .pack_prefix import pack_environment, pack_options
from .platforms import default_platforms, image_platforms, parse_platforms
from .progress import Reporter
from .registry_options import registry_options
from .resolve import create_lock, default_session, pip_credentials, solve_environment
from .sbom.attach import parse_formats
from .sign import remote
from .sign.errors import SignError
from .sign.keys import generate_key_pair, load_private_key, load_public_key, read_passphrase, write_key_pair
from .spec import BuildSpec, load_spec, with_overrides

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec

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
    sign_key = _build_sign_key(args)  # asked for (and checked) before the slow work, not after it
    with lock_inputs(args, reporter) as inputs:
        lock = inputs.lock
        spec = lock_spec(inputs, reporter, base=args.base, prefix=args.prefix, channels=args.channels)
        given = _given_platforms(args)
        parse_image_ref(spec.image.base)  # a base reference we cannot read fails before any work
        tags = image_tags(args.tag or (), spec.image.tag, spec.name, f"{spec.path}: image.tag")
        spec = with_cli_labels(spec, args)
        opts = BuildOptions.from_values(
            vars(args),
            output=output,
            push=args.push,
            platforms=given or (() if lock is not None else tuple(default_platforms(spec.platforms, os.environ))),
            offline=args.offline or inputs.offline,
            channel_alias=args.channel_alias,
            jobs=max(1, args.jobs),
            registry=registry,
            sbom=parse_formats(args.sbom) if args.sbom else (),
            tags=tags if args.tag else (),
            created_label=args.oci_labels,  # the file's tag or the default are build.py's fallback
        )
        if lock is not None:
            opts = apply_lock(opts, lock, platforms_given=given is not None)
        result = build_image(spec, opts, reporter)
    signed = _sign_pushed(result, sign_key, registry, reporter) if sign_key is not None else None
    if args.json:
        _print_json({**result.to_json(), "signature": signed} if signed else result.to_json())
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
        if pl.wheels:
            raise SpecError(f"lock --format explicit: an @EXPLICIT file cannot pin the pip: section's "
                            f"{len(pl.wheels)} wheels; use the default format")
        data = write_explicit(dependency_order(pl.packages), subdir).encode()
    else:
        data = dump_lock(lock)
    write_bytes(data, args.output)
    if args.json:
        _print_json({"output": str(args.output), "sha256": hashlib.sha256(data).hexdigest(),
                     "platforms": {k: len(v.packages) for k, v in sorted(lock.platforms.items())}})
    elif not args.quiet:
        for k, v in sorted(lock.platforms.items()):
            wheels = f" + {len(v.wheels)} pip packages" if v.wheels else ""
            print(f"{k}: {len(v.packages)} packages{wheels}, base {v.base}"
                  f"{' @ ' + v.base_digest if v.base_digest else ''}", file=sys.stderr)
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
    t0 = time.perf_counter()
    session = default_session(BuildOptions(offline=args.offline))
    with reporter.phase("bundle", str(args.output)):
        info = write_bundle(lock, lock_bytes, lock_name, env_path, Path(args.output), session, max(1, args.jobs),
                            reporter, credentials=pip_credentials(env_path))
    info["seconds"] = round(time.perf_counter() - t0, 3)
    info["sha256"] = file_sha256(args.output)
    if args.json:
        _print_json(info)
    elif not args.quiet:
        print(f"wrote {info['output']}: {info['packages']} packages, {info['wheels']} wheels, "
              f"{info['base_blobs']} base image blobs, "
              f"{info['size']} bytes", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# inspect and diff


def _names_a_registry(image: str) -> bool:
    """Whether ``inspect`` was given a registry reference (read remotely) rather than a local image form or path."""
    if Path(image).exists():
        return False
    try:
        return parse_image_ref(image, "inspect").transport == "registry"
    except ImageError:
        return False


def _open_views(image: str, options: RegistryOptions) -> list[ImageView]:
    """Any reference ``--base`` accepts: a registry image read remotely, every local form read from disk."""
    if _names_a_registry(image):
        return inspect_registry(image, options)
    return inspect_image(local_image_ref(image, "inspect"))


def inspect_command(args: argparse.Namespace, reporter: Reporter) -> int:
    options = _registry(args)
    remote_doc: dict[str, Any] = {}
    if _names_a_registry(args.image):
        remote_doc = registry_attachments(args.image, options)  # signatures and referrers per manifest
        views = inspect_registry(args.image, options, remote_doc["subjects"])
    else:
        views = inspect_image(local_image_ref(str(args.image), "inspect"))
    if args.json:
        _print_json({**remote_doc, "image": str(args.image), "platforms": [v.to_json() for v in views]})
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
        if v.pip_packages:
            print(f"  pip packages ({len(v.pip_packages)}):")
            for k in sorted(v.pip_packages):
                p = v.pip_packages[k]
                print(f"    {p['name']} {p['version']}" + (f"  ({p['prefix']})" if several else ""))
        for a in v.referrers:
            print(f"  attached: {a['artifact_type']}  {a['digest']}  {a['size']} bytes")
        signatures = remote_doc.get("subjects", {}).get(v.manifest_digest, {}).get("cosign_signatures")
        if signatures:
            print(f"  cosign signatures: {signatures}")
    return 0


def diff_command(args: argparse.Namespace, reporter: Reporter) -> int:
    options = _registry(args)
    d = diff_images(args.image_a, args.image_b, open_views=lambda ref: _open_views(ref, options))
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
        for p in r.get("pip_added", []):
            print(f"  + pip:{p['name']} {p['version']}")
        for p in r.get("pip_removed", []):
            print(f"  - pip:{p['name']} {p['version']}")
        for p in r.get("pip_changed", []):
            print(f"  ~ pip:{p['name']} {p['from']} -> {p['to']}")
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
    local_image_ref(args.image, "push")
    registry_destination(args.ref)
    with reporter.phase("push", args.ref):
        result = push_path(args.image, args.ref, options)
        attached = _push_attached(args.image, result, options)
    if args.json:
        _print_json(result.to_json())
    else:
        s = result.stats
        if not args.quiet:
            print(f"pushed {result.ref} ({s.uploaded} blobs uploaded, {s.mounted} mounted, {s.existing} already there)"
                  + (f", {len(attached)} attached artifact(s)" if attached else ""), file=sys.stderr)
        print(result.digest)
    return 0


def _push_attached(image: str, result: PushResult, options: RegistryOptions) -> list[str]:
    """The SBOMs an archive or layout holds about the pushed manifests go to the registry with them."""
    path, _name = parse_local(image)
    src = open_local(path)
    arts = local_artifacts(src, src.index(), result.manifests, src.what)
    if not arts:
        return []
    r = parse_reference(result.ref)
    client = RegistryClient(r.host, options)
    return [attach(client, r.repository, art, subject) for art, subject in arts]


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


# ---------------------------------------------------------------------------------------------------------------
# pack


def pack_command(args: argparse.Namespace, reporter: Reporter) -> int:
    opts = pack_options(Path(args.source), Path(args.output), prefix=args.prefix, base=args.base, tag=args.tag,
                        compression=args.compression, max_layers=args.max_layers, registry=_registry(args))
    result = pack_environment(opts, reporter)
    if args.json:
        _print_json(result.to_json())
    elif not args.quiet:
        print(f"packed {len(result.packages)} packages in {len(result.layers)} layers into {result.output} "
              f"({result.digest})", file=sys.stderr)
    return 0


# ---------------------------------------------------------------------------------------------------------------
# keygen, sign, verify


def _passphrase_key(path: str) -> ec.EllipticCurvePrivateKey:
    return load_private_key(path, read_passphrase())


def _build_sign_key(args: argparse.Namespace) -> ec.EllipticCurvePrivateKey | None:
    if not getattr(args, "sign_key", None):
        return None
    if not args.push:
        raise SpecError("build --sign-key: signatures live in a registry; give --push REGISTRY/REPO:TAG too")
    return _passphrase_key(args.sign_key)


def _sign_pushed(result: BuildResult, key: ec.EllipticCurvePrivateKey, registry: RegistryOptions,
                 reporter: Reporter) -> dict[str, Any]:
    """Sign what ``build --push`` just pushed (the digest its tag names), timed for the report."""
    assert result.pushed is not None
    ref = parse_reference(result.pushed["ref"])
    t0 = time.perf_counter()
    with reporter.phase("sign", str(ref)):
        target = remote.Target(ref, RegistryClient(ref.host, registry), result.pushed["digest"])
        tag = remote.cosign_sign(target, key)
    seconds = time.perf_counter() - t0
    if not _quiet(reporter):
        print(f"signed {target.repository}@{target.digest} ({tag}) in {seconds:.2f}s", file=sys.stderr)
    return {"digest": target.digest, "tag": tag, "seconds": round(seconds, 3)}


def _quiet(reporter: Reporter) -> bool:
    return reporter.mode in ("quiet", "json")


def keygen_command(args: argparse.Namespace, reporter: Reporter) -> int:
    pair = generate_key_pair(read_passphrase(confirm=True))
    priv, pub = write_key_pair(args.output_dir, pair, force=args.force)
    if not args.quiet:
        print(f"Private key written to {priv}\nPublic key written to {pub}", file=sys.stderr)
    return 0


def sign_command(args: argparse.Namespace, reporter: Reporter) -> int:
    if bool(args.key) == bool(args.gpg_key):
        raise SpecError("sign: give --key cosign.key or --gpg-key FINGERPRINT (one of them)")
    if args.gpg_key and not args.lookaside:
        raise SpecError("sign --gpg-key: give --lookaside DIR (where skopeo's registries.d lookaside reads)")
    key = _passphrase_key(args.key) if args.key else None
    target = remote.resolve(args.ref, _registry(args))
    if key is not None:
        where = remote.cosign_sign(target, key)
    else:
        where = remote.gpg_sign(target, args.gpg_key, args.lookaside)
    if args.json:
        _print_json({"ref": args.ref, "digest": target.digest, "signature": where})
    elif not args.quiet:
        print(f"signed {target.repository}@{target.digest}: {where}", file=sys.stderr)
    return 0


def verify_command(args: argparse.Namespace, reporter: Reporter) -> int:
    if bool(args.key) == bool(args.gpg_keyring):
        raise SpecError("verify: give --key cosign.pub or --gpg-keyring KEYS.gpg (one of them)")
    if args.gpg_keyring and not args.lookaside:
        raise SpecError("verify --gpg-keyring: give --lookaside DIR")
    target = remote.resolve(args.ref, _registry(args))
    if args.key:
        try:
            pub = load_public_key(Path(args.key).read_bytes(), args.key)
        except OSError as e:
            raise SignError(f"{args.key}: cannot read ({e.strerror})") from None
        claims = [{"reference": c.reference, "digest": c.digest} for c in remote.cosign_verify(target, pub)]
    else:
        claims = [{"reference": v.claim.reference, "digest": v.claim.digest, "fingerprint": v.fingerprint,
                   "file": str(v.path)} for v in remote.gpg_verify(target, args.gpg_keyring, args.lookaside)]
    if args.json:
        _print_json({"ref": args.ref, "digest": target.digest, "verified": claims})
    elif not args.quiet:
        print(f"verified {len(claims)} signature(s) for {target.repository}@{target.digest}", file=sys.stderr)
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
    "pack": pack_command,
    "keygen": keygen_command,
    "sign": sign_command,
    "verify": verify_command,
    "logout": logout_command,
}
