"""Read and validate environment.yml and its ``image:`` section into a ``BuildSpec``.

Errors name the file, the line and the field, because that is what a person needs to fix them. The YAML is
composed into nodes (not just loaded) so every value keeps its line; the document is then checked against
``schemas/environment.schema.json``.

Files made for other tools load too: conda-lock's ``platforms:`` (the default targets) and ``category:`` keys and its
``# [linux64]`` selector comments, micromamba's ``sel(linux):``, and ``pip:`` sections (carried as raw lines with
their location for the pip stage). Sections nobody here uses are ignored with a warning naming file:line, as conda
does.
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import yaml

from .errors import SpecError
from .platforms import parse_conda_subdir
from .schema_check import is_valid

if TYPE_CHECKING:
    import jsonschema


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
    activate: str = "env"  # "env": static activation into Env; "script": also an entrypoint sourcing dynamic scripts
    owner: str | None = None  # "UID:GID" owning the environment's files (None: 0:0)


@dataclass(frozen=True)
class PipLine:
    """One entry of a ``pip:`` section, as written; the pypi stage interprets it (requirement, ``-e``, options)."""

    text: str
    where: str  # "FILE:LINE", for that stage's error messages
    selector: str | None = None  # conda-lock ``# [linux64]`` selector expression, or None

    def applies_to(self, subdir: str) -> bool:
        return self.selector is None or selector_applies(self.selector, subdir)


@dataclass(frozen=True)
class BuildSpec:
    """Everything the environment file says, resolved relative to its directory."""

    path: Path
    name: str | None
    channels: tuple[str, ...]
    # (spec, selector or None); a selector is a platform expression: micromamba's sel(linux) becomes "linux",
    # conda-lock's "# [linux64 or osx]" comment becomes "linux64 or osx".
    selected_specs: tuple[tuple[str, str | None], ...]
    variables: tuple[tuple[str, str], ...] = ()
    image: ImageSettings = field(default_factory=ImageSettings)
    platforms: tuple[str, ...] = ()  # conda-lock's platforms: as conda subdirs (may list osx/win); () = not given
    pip: tuple[PipLine, ...] = ()  # every pip: entry of the file, in order
    warnings: tuple[str, ...] = ()  # one line each, "FILE:LINE: ...", for the caller to show

    @property
    def base_dir(self) -> Path:
        return self.path.parent

    @property
    def specs(self) -> tuple[str, ...]:
        """All specs, whatever their selector (for messages and spec digests)."""
        return tuple(s for s, _ in self.selected_specs)

    def specs_for(self, subdir: str) -> tuple[str, ...]:
        """The specs that apply to the target ``subdir`` (micromamba's ``sel(...)``, conda-lock's ``# [...]``)."""
        return tuple(s for s, sel in self.selected_specs if sel is None or selector_applies(sel, subdir))

    def pip_for(self, subdir: str) -> tuple[PipLine, ...]:
        """The ``pip:`` entries that apply to the target ``subdir``."""
        return tuple(p for p in self.pip if p.applies_to(subdir))


# conda-build's platform selector names, true per target subdir (conda-lock uses the same names).
_SELECTOR_TRUE: dict[str, frozenset[str]] = {
    "linux-64": frozenset({"linux", "linux64", "unix", "x86", "x86_64"}),
    "linux-32": frozenset({"linux", "linux32", "unix", "x86"}),
    "linux-aarch64": frozenset({"linux", "aarch64", "unix"}),
    "linux-armv6l": frozenset({"linux", "armv6l", "unix"}),
    "linux-armv7l": frozenset({"linux", "armv7l", "unix"}),
    "linux-ppc64": frozenset({"linux", "ppc64", "unix"}),
    "linux-ppc64le": frozenset({"linux", "ppc64le", "unix"}),
    "linux-riscv64": frozenset({"linux", "riscv64", "unix"}),
    "linux-s390x": frozenset({"linux", "s390x", "unix"}),
    "osx-64": frozenset({"osx", "osx64", "unix", "x86", "x86_64"}),
    "osx-arm64": frozenset({"osx", "arm64", "unix"}),
    "win-32": frozenset({"win", "win32", "x86"}),
    "win-64": frozenset({"win", "win64", "x86", "x86_64"}),
    "win-arm64": frozenset({"win", "arm64"}),
}
SELECTOR_NAMES = frozenset().union(*_SELECTOR_TRUE.values())
_SEL_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z_][A-Za-z0-9_]*)")


def _selector_tokens(expr: str) -> list[str]:
    tokens, i = [], 0
    while i < len(expr):
        m = _SEL_TOKEN.match(expr, i)
        if m is None:
            if expr[i:].strip():
                raise ValueError(f"unexpected {expr[i:].strip()[:20]!r}")
            break
        tokens.append(m.group(1))
        i = m.end()
    return tokens


def _eval_selector(expr: str, true: frozenset[str]) -> bool:
    """``name``, ``not``, ``and``, ``or`` and parentheses over the platform names; ValueError when malformed."""
    tokens = _selector_tokens(expr)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise ValueError("incomplete expression")
        pos += 1
        return tokens[pos - 1]

    def disjunction() -> bool:
        v = conjunction()
        while peek() == "or":
            take()
            v = conjunction() or v
        return v

    def conjunction() -> bool:
        v = negation()
        while peek() == "and":
            take()
            v = negation() and v
        return v

    def negation() -> bool:
        if peek() == "not":
            take()
            return not negation()
        t = take()
        if t == "(":
            v = disjunction()
            if take() != ")":
                raise ValueError("missing ')'")
            return v
        if t in (")", "and", "or"):
            raise ValueError(f"unexpected {t!r}")
        if t not in SELECTOR_NAMES:
            raise ValueError(f"{t!r} is not a platform selector (known: {', '.join(sorted(SELECTOR_NAMES))})")
        return t in true

    value = disjunction()
    if pos != len(tokens):
        raise ValueError(f"unexpected {tokens[pos]!r}")
    return value


def selector_applies(selector: str, subdir: str) -> bool:
    """Whether a (validated) selector expression is true for the target ``subdir``."""
    return _eval_selector(selector, _SELECTOR_TRUE.get(subdir, frozenset()))


def _check_selector(selector: str, where: str) -> str:
    try:
        _eval_selector(selector, frozenset())
    except ValueError as e:
        raise SpecError(f"{where}: invalid selector [{selector}]: {e}") from None
    return selector


_COMMENT_SELECTOR = re.compile(r"^\s*#.*\[([^\[\]]+)\][^()\[\]]*$")


def _comment_selector(lines: Sequence[str], end: tuple[int, int] | None) -> str | None:
    """conda-lock's ``- pkg  # [linux64]``: the bracket at the end of the comment after a dependency."""
    if end is None or end[0] >= len(lines):
        return None
    m = _COMMENT_SELECTOR.match(lines[end[0]][end[1]:])
    return m.group(1).strip() if m else None


@functools.lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text())


@functools.lru_cache(maxsize=1)
def _schema_validator() -> jsonschema.protocols.Validator:
    # imported here: ~0.25 s (2 s more with rfc3987_syntax, which builds a lark grammar at import for the
    # 'iri' format our schemas never use), paid only for a file schema_check.is_valid does not pass
    sys.modules.setdefault("rfc3987_syntax", None)  # type: ignore[arg-type]
    import jsonschema

    schema = _schema()
    cls = jsonschema.validators.validator_for(schema)
    return cls(schema)


class _Located:
    """Maps a JSON path (tuple of keys/indices) to the 1-based line where that value starts."""

    def __init__(self) -> None:
        self.lines: dict[tuple, int] = {}
        self.ends: dict[tuple, tuple[int, int]] = {}  # scalar path -> 0-based (line, column) just after it
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
    loc.ends[path] = (node.end_mark.line, node.end_mark.column)
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

    errors = [] if is_valid(_schema(), doc) else [
        (_error_path(e), e) for e in map(_innermost, _schema_validator().iter_errors(doc))]
    if errors:
        p, e = min(errors, key=lambda pe: (loc.line(pe[0]) or 0, len(pe[0])))
        raise SpecError(f"{where}:{loc.line(p)}: {_field_name(p)}: {_schema_message(e)}")

    lines = text.splitlines()
    warnings = _unused_sections(doc, loc, where)
    deps = doc.get("dependencies") or []
    specs: list[tuple[str, str | None]] = []
    pip: list[PipLine] = []
    for i, d in enumerate(deps):
        at = f"{where}:{loc.line(['dependencies', i])}: dependencies[{i}]"
        selector = None
        node: tuple[Any, ...] = ("dependencies", i)
        if isinstance(d, dict):
            if "pip" in d:
                pip.extend(_pip_lines(d["pip"], ("dependencies", i, "pip"), loc, lines, where))
                continue
            (key, d), = d.items()
            selector = key[4:-1]
            node += (key,)
        comment = _comment_selector(lines, loc.ends.get(node))
        if comment is not None:
            _check_selector(comment, at)
            selector = comment if selector is None else f"({selector}) and ({comment})"
        s = d.strip()
        if not s:
            raise SpecError(f"{at}: empty spec")
        specs.append((s, selector))
    if not specs:
        why = " with conda (pip: entries need python and pip from conda)" if pip else ""
        raise SpecError(f"{where}:{loc.line(['dependencies']) or 1}: dependencies: nothing to install{why}")

    platforms: list[str] = []
    for i, p in enumerate(doc.get("platforms") or ()):
        subdir = parse_conda_subdir(p, f"{where}:{loc.line(['platforms', i])}: platforms[{i}]")
        if subdir not in platforms:
            platforms.append(subdir)

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
        activate=img.get("activate", "env"),
        owner=_scalar_str(img["owner"]) if "owner" in img else None,
    )
    variables = tuple((k, _scalar_str(v)) for k, v in (doc.get("variables") or {}).items())
    return BuildSpec(
        path=path.resolve(),
        name=doc.get("name"),
        channels=tuple(channels),
        selected_specs=tuple(specs),
        variables=variables,
        image=image,
        platforms=tuple(platforms),
        pip=tuple(pip),
        warnings=tuple(warnings),
    )


# Top-level keys this loader reads; conda's own name/channels/dependencies/variables/prefix, conda-lock's
# platforms/category, and our image.
_USED_KEYS = frozenset({"name", "channels", "dependencies", "variables", "image", "platforms"})


def _unused_sections(doc: Mapping[str, Any], loc: _Located, where: str) -> list[str]:
    """One warning line per section that changes nothing here, like conda's "section ... will be ignored"."""
    out = []
    for key in doc:
        at = f"{where}:{loc.line([key])}: {key}"
        if key in _USED_KEYS:
            continue
        if key == "prefix":
            if doc[key] is not None:
                image_prefix = (doc.get("image") or {}).get("prefix", DEFAULT_PREFIX)
                out.append(f"{at}: conda's local install path is ignored; the image's environment lives at "
                           f"image.prefix ({image_prefix})")
        elif key == "category":
            out.append(f"{at}: conda-lock's category {doc[key]!r} is ignored; every dependency of this file is "
                       "installed")
        else:
            out.append(f"{at}: section not used by oci-conda; ignored")
    return out


def _pip_lines(entries: Sequence[str], path: tuple[Any, ...], loc: _Located, lines: Sequence[str],
               where: str) -> list[PipLine]:
    """Each ``pip:`` entry as written, with FILE:LINE and its conda-lock selector comment; only blank is refused."""
    out = []
    for j, text in enumerate(entries):
        at = f"{where}:{loc.line(path + (j,))}"
        if not text.strip():
            raise SpecError(f"{at}: {_field_name(path + (j,))}: empty pip entry")
        selector = _comment_selector(lines, loc.ends.get(path + (j,)))
        if selector is not None:
            _check_selector(selector, f"{at}: {_field_name(path + (j,))}")
        out.append(PipLine(text=text.strip(), where=at, selector=selector))
    return out


def _innermost(e: jsonschema.ValidationError) -> jsonschema.ValidationError:
    """For a dependency mapping that fits no ``oneOf`` branch, the error of the branch it was meant for
    (``pip[0]: expected string``, ``unknown selector``), not "is not valid under any of the given schemas"."""
    if e.validator == "oneOf" and isinstance(e.instance, dict) and e.context:
        branch = 1 if "pip" in e.instance else 2  # dependencies.items.oneOf: string, pip mapping, selector
        mine = [c for c in e.context if c.relative_schema_path and c.relative_schema_path[0] == branch]
        if mine:
            return max(mine, key=lambda c: (len(c.relative_path), c.validator != "required"))
    return e


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
        if "patternProperties" in e.schema and extra:
            return f"unknown selector {extra[0]!r} (expected sel(linux), sel(osx), sel(win) or sel(unix))"
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
    if not isinstance(prefix, str):
        raise SpecError(f"{where}: prefix must be a string")
    validate_prefix(prefix, where)  # lengths first: a huge prefix is never echoed below
    if not prefix.startswith("/") or prefix == "/":
        raise SpecError(f"{where}: prefix must be an absolute path below /, got {prefix!r}")
    parts = prefix.split("/")[1:]
    if any(p in ("", ".", "..") for p in parts) or any(ord(ch) < 32 for ch in prefix) or " " in prefix:
        raise SpecError(f"{where}: prefix {prefix!r} must be a normalised absolute path without spaces")


#: a file name (one path component) on Linux file systems, and what a tar path and PATH_MAX leave for the prefix
MAX_PREFIX_COMPONENT = 255
MAX_PREFIX = 1024


def validate_prefix(prefix: str, where: str) -> None:
    """Lengths that every runtime can unpack: no component over 255 bytes (``podman load`` and the kernel refuse a
    300-character one), the whole prefix at most 1024 bytes, no DEL or non-UTF-8-encodable character."""
    try:
        encoded = prefix.encode("utf-8")
    except UnicodeEncodeError:
        raise SpecError(f"{where}: prefix is not valid UTF-8") from None
    if len(encoded) > MAX_PREFIX:
        raise SpecError(f"{where}: prefix is {len(encoded)} bytes long, over the {MAX_PREFIX}-byte limit")
    for part in prefix.split("/"):
        if len(part.encode("utf-8")) > MAX_PREFIX_COMPONENT:
            raise SpecError(f"{where}: prefix component {part[:40]!r}... is {len(part.encode('utf-8'))} bytes long, "
                            f"over the {MAX_PREFIX_COMPONENT}-byte limit of a file name")
    if "\x7f" in prefix:
        raise SpecError(f"{where}: prefix contains a DEL character")


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
