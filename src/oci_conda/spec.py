"""Read and validate environment.yml and its ``image:`` section into a ``BuildSpec``.

Errors name the file, the line and the field, because that is what a person needs to fix them. The YAML is
composed into nodes (not just loaded) so every value keeps its line; the document is then checked against
``schemas/environment.schema.json``.
"""

from __future__ import annotations

import functools
import json
import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import jsonschema
import yaml

from .errors import SpecError

DEFAULT_PREFIX = "/opt/conda"
DEFAULT_CHANNELS = ("conda-forge",)
MAX_ENV_FILE = 4 * 1024 * 1024
MAX_NODES = 1_000_000
SCHEMA_PATH = Path(__file__).with_name("schemas") / "environment.schema.json"


@dataclass(frozen=True)
class ImageSettings:
    """The ``image:`` section; ``None`` means "not set here" so the base image's value stays."""

    base: str = "scratch"
    prefix: str = DEFAULT_PREFIX
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    env: tuple[tuple[str, str], ...] = ()
    workdir: str | None = None
    user: str | None = None
    labels: tuple[tuple[str, str], ...] = ()
    annotations: tuple[tuple[str, str], ...] = ()
    tag: str | None = None
    virtual_packages: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class BuildSpec:
    """Everything the environment file says, resolved relative to its directory."""

    path: Path
    name: str | None
    channels: tuple[str, ...]
    selected_specs: tuple[tuple[str, str | None], ...]  # (spec, micromamba selector or None)
    variables: tuple[tuple[str, str], ...] = ()
    image: ImageSettings = field(default_factory=ImageSettings)

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def specs(self) -> tuple[str, ...]:
        """All specs, whatever their selector (for messages and spec digests)."""
        return tuple(s for s, _ in self.selected_specs)

    def specs_for(self, subdir: str) -> tuple[str, ...]:
        """The specs that apply to the target ``subdir`` (micromamba's ``sel(linux|osx|win|unix)``)."""
        family = subdir.split("-", 1)[0]
        ok = {None, family, "unix" if family in ("linux", "osx") else family}
        return tuple(s for s, sel in self.selected_specs if sel in ok)


@functools.lru_cache(maxsize=1)
def _schema_validator() -> jsonschema.protocols.Validator:
    schema = json.loads(SCHEMA_PATH.read_text())
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


class _Located:
    """Maps a JSON path (tuple of keys/indices) to the 1-based line where that value starts."""

    def __init__(self) -> None:
        self.lines: dict[tuple, int] = {}
        self.nodes = 0  # values constructed; aliases make a small file a huge document ("billion laughs")

    def line(self, path: Sequence[Any]) -> int | None:
        path = tuple(path)
        while path not in self.lines and path:
            path = path[:-1]
        return self.lines.get(path)


def _construct(node: yaml.Node, path: tuple, loc: _Located, where: str, depth: int = 0) -> Any:
    """Turn composed YAML nodes into plain data, recording lines and refusing duplicate keys."""
    if depth > 64:
        raise SpecError(f"{where}:{node.start_mark.line + 1}: nesting too deep")
    loc.nodes += 1
    if loc.nodes > MAX_NODES:
        raise SpecError(f"{where}:{node.start_mark.line + 1}: more than {MAX_NODES} values (aliases expanding?)")
    loc.lines[path] = node.start_mark.line + 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in _PLAIN_TAGS:
        raise SpecError(f"{where}:{node.start_mark.line + 1}: unsupported YAML tag {node.tag!r}")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, Any] = {}
        for knode, vnode in node.value:
            if not isinstance(knode, yaml.ScalarNode):
                raise SpecError(f"{where}:{knode.start_mark.line + 1}: mapping keys must be plain strings")
            key = knode.value
            if key in out:
                raise SpecError(f"{where}:{knode.start_mark.line + 1}: duplicate key {key!r}")
            out[key] = _construct(vnode, path + (key,), loc, where, depth + 1)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, path + (i,), loc, where, depth + 1) for i, v in enumerate(node.value)]
    # Scalars: let PyYAML's safe constructor decide the type (so `3.10` is a float we can flag, 'yes' a bool ...).
    return yaml.SafeLoader.construct_object(_SCALAR_LOADER, node, deep=True)


_SCALAR_LOADER = yaml.SafeLoader("")
_PLAIN_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")


def _field_name(path: Sequence[Any]) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def _parse_yaml(text: str, where: str) -> tuple[Any, _Located]:
    loc = _Located()
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise SpecError(f"{where}{line}: invalid YAML: {e.problem or e.context}") from None
    except yaml.YAMLError as e:
        raise SpecError(f"{where}: invalid YAML: {e}") from None
    except RecursionError:
        raise SpecError(f"{where}: invalid YAML: nesting too deep") from None
    if node is None:
        raise SpecError(f"{where}: the file is empty")
    try:
        return _construct(node, (), loc, where), loc
    except yaml.MarkedYAMLError as e:  # a scalar no safe constructor takes ('=', '!!python/...', bad timestamps)
        mark = e.problem_mark or e.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise SpecError(f"{where}{line}: invalid YAML: {e.problem or e.context}") from None
    except (yaml.YAMLError, ValueError, OverflowError) as e:
        raise SpecError(f"{where}: invalid YAML value: {str(e)[:200]}") from None


def _scalar_str(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


_ENV_REF = re.compile(r"\$\{(\w+)\}|\$(\w+)")


def _expand_env(value: str, where: str, env: Mapping[str, str]) -> str:
    """conda expands ``${VAR}`` in channel URLs (tokens); an unset variable is an error, not an empty string."""

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in env:
            raise SpecError(f"{where}: environment variable {name} is not set (used in {value!r})")
        return env[name]

    return _ENV_REF.sub(sub, value)


def load_spec(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> BuildSpec:
    """Read an environment file; every problem raises ``SpecError`` naming file, line and field."""
    path = Path(path)
    where = str(path)
    env = os.environ if env is None else env
    try:
        if path.stat().st_size > MAX_ENV_FILE:
            raise SpecError(f"{where}: file is larger than {MAX_ENV_FILE // (1024 * 1024)} MiB")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{where}: no such file") from None
    except IsADirectoryError:
        raise SpecError(f"{where}: is a directory, expected an environment.yml") from None
    except OSError as e:
        raise SpecError(f"{where}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{where}: not UTF-8 text (byte {e.start})") from None

    doc, loc = _parse_yaml(text, where)
    if not isinstance(doc, dict):
        raise SpecError(f"{where}:{loc.line(()) or 1}: expected a mapping with 'dependencies', got {type(doc).__name__}")

    errors = [(_error_path(e), e) for e in _schema_validator().iter_errors(doc)]
    if errors:
        p, e = min(errors, key=lambda pe: (loc.line(pe[0]) or 0, len(pe[0])))
        raise SpecError(f"{where}:{loc.line(p)}: {_field_name(p)}: {_schema_message(e)}")

    deps = doc.get("dependencies") or []
    specs: list[tuple[str, str | None]] = []
    for i, d in enumerate(deps):
        selector = None
        if isinstance(d, dict):
            if "pip" in d:
                raise SpecError(
                    f"{where}:{loc.line(['dependencies', i])}: dependencies[{i}].pip: pip packages are not supported "
                    "yet; install them from conda packages or remove the pip: section"
                )
            (key, d), = d.items()
            selector = key[4:-1]
        s = d.strip()
        if not s:
            raise SpecError(f"{where}:{loc.line(['dependencies', i])}: dependencies[{i}]: empty spec")
        specs.append((s, selector))
    if not specs:
        raise SpecError(f"{where}:{loc.line(['dependencies']) or 1}: dependencies: nothing to install")

    channels = []
    for i, c in enumerate(doc.get("channels") or DEFAULT_CHANNELS):
        channels.append(_expand_env(c.strip(), f"{where}:{loc.line(['channels', i])}: channels[{i}]", env))

    img = doc.get("image") or {}
    prefix = img.get("prefix", DEFAULT_PREFIX)
    check_prefix(prefix, f"{where}:{loc.line(['image', 'prefix'])}: image.prefix")
    base = img.get("base", "scratch")
    base = resolve_base_ref(base, path.parent)

    def pairs(m: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
        return tuple(sorted((k, _scalar_str(v)) for k, v in (m or {}).items()))

    image = ImageSettings(
        base=base,
        prefix=prefix,
        entrypoint=tuple(img["entrypoint"]) if "entrypoint" in img else None,
        cmd=tuple(img["cmd"]) if "cmd" in img else None,
        env=tuple((k, _scalar_str(v)) for k, v in (img.get("env") or {}).items()),
        workdir=img.get("workdir"),
        user=img.get("user"),
        labels=pairs(img.get("labels")),
        annotations=pairs(img.get("annotations")),
        tag=img.get("tag"),
        virtual_packages=pairs(img.get("virtual_packages")),
    )
    variables = tuple((k, _scalar_str(v)) for k, v in (doc.get("variables") or {}).items())
    return BuildSpec(
        path=path.resolve(),
        name=doc.get("name"),
        channels=tuple(channels),
        selected_specs=tuple(specs),
        variables=variables,
        image=image,
    )


def _error_path(e: jsonschema.ValidationError) -> list[Any]:
    """Where the error is: for an unknown key, the key itself, so the line points at it."""
    p = list(e.absolute_path)
    if e.validator == "additionalProperties" and isinstance(e.instance, dict):
        extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
        if extra:
            p.append(extra[0])
    return p


def _schema_message(e: jsonschema.ValidationError) -> str:
    if e.validator == "additionalProperties":
        extra = sorted(set(e.instance) - set(e.schema.get("properties", {})))
        allowed = ", ".join(sorted(e.schema.get("properties", {})))
        return f"unknown field {extra[0]!r} (allowed: {allowed})" if extra else e.message
    if e.validator == "type":
        want = e.validator_value if isinstance(e.validator_value, str) else " or ".join(e.validator_value)
        return f"expected {want}, got {type(e.instance).__name__} {e.instance!r}"[:200]
    if e.validator == "oneOf" and isinstance(e.instance, (int, float)):
        return f"expected a string spec, got number {e.instance!r} (quote it)"
    if e.validator == "propertyNames":
        return f"invalid name {e.instance!r}" if not isinstance(e.instance, dict) else e.message[:200]
    return e.message[:200]


def check_prefix(prefix: str, where: str) -> None:
    """The prefix is baked into files of the image; it must be absolute, normalised and printable."""
    if not prefix.startswith("/") or prefix == "/":
        raise SpecError(f"{where}: prefix must be an absolute path below /, got {prefix!r}")
    parts = prefix.split("/")[1:]
    if any(p in ("", ".", "..") for p in parts) or any(ord(ch) < 32 for ch in prefix) or " " in prefix:
        raise SpecError(f"{where}: prefix {prefix!r} must be a normalised absolute path without spaces")


def resolve_base_ref(ref: str, base_dir: Path) -> str:
    """Make the path in ``oci-archive:PATH`` / ``oci:DIR`` absolute, relative to the env file's directory."""
    for scheme in ("oci-archive:", "oci:"):
        if ref.startswith(scheme):
            rest = ref[len(scheme):]
            path, sep, tag = rest, "", ""
            # PATH[:REF]: a ':' after the last '/' separates the reference.
            slash = rest.rfind("/")
            colon = rest.find(":", slash + 1)
            if colon != -1:
                path, sep, tag = rest[:colon], ":", rest[colon + 1:]
            p = Path(path)
            if not p.is_absolute():
                p = (base_dir / p).resolve()
            return f"{scheme}{p}{sep}{tag}"
    return ref


def with_overrides(spec: BuildSpec, **kw: Any) -> BuildSpec:
    """Apply command-line options on top of the file: CLI wins; ``-c`` channels come first, like conda."""
    image = spec.image
    changes: dict[str, Any] = {}
    for key in ("base", "prefix", "tag"):
        v = kw.get(key)
        if v is not None:
            changes[key] = resolve_base_ref(v, Path.cwd()) if key == "base" else v
    if "prefix" in changes:
        check_prefix(changes["prefix"], "--prefix")
    if changes:
        image = replace(image, **changes)
    channels = spec.channels
    extra = kw.get("channels") or ()
    if extra:
        channels = tuple(dict.fromkeys([*extra, *channels]))
    return replace(spec, image=image, channels=channels)
