"""conda's MatchSpec: parsing every spec form conda accepts, matching ``PackageRecord``s, and conda's canonical string.

Forms: ``name``, ``name 1.2.*``, ``name 1.2`` (exact), ``name=1.2`` (= ``1.2.*``), ``name==1.2``, ``name >=1,<2``,
``name 1.2|1.4``, ``name=1.2=build*``, ``name 1.2 py*_0``, ``channel::name``, ``channel/subdir::name``,
``name[key=value, key='value', ...]`` (brackets override what is outside them, except the name), package file URLs
and paths, ``feature@``. Build strings are globs or ``^regex$``; ``build_number`` is an int or a comparison.

Not supported (raise ``InvalidMatchSpec``): the repodata-v3 keys ``when``, ``extras``, ``flags``.
Channel names are kept as written; conda's own configuration (channel_alias, default_channels) is not consulted,
so ``pkgs/main::x`` stays ``pkgs/main`` and a package URL's channel is its URL prefix.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Callable
from urllib.parse import unquote

from ..errors import OciCondaError, SpecError
from .records import PackageRecord
from .version import InvalidVersion, VersionSpec

__all__ = ["InvalidMatchSpec", "MatchSpec", "KNOWN_SUBDIRS", "FIELD_NAMES", "parse_spec", "dep_name"]


class InvalidMatchSpec(SpecError):
    """A package spec string is not valid conda MatchSpec syntax."""


FIELD_NAMES = (
    "channel",
    "subdir",
    "name",
    "version",
    "build",
    "build_number",
    "track_features",
    "features",
    "url",
    "md5",
    "sha256",
    "license",
    "license_family",
    "fn",
)
_FIELDS = frozenset(FIELD_NAMES)
_UNSUPPORTED_KEYS = frozenset({"when", "extras", "flags"})

KNOWN_SUBDIRS = frozenset(
    {
        "noarch",
        "emscripten-wasm32",
        "wasi-wasm32",
        "freebsd-64",
        "linux-32",
        "linux-64",
        "linux-aarch64",
        "linux-armv6l",
        "linux-armv7l",
        "linux-loongarch64",
        "linux-ppc64",
        "linux-ppc64le",
        "linux-riscv64",
        "linux-s390x",
        "osx-64",
        "osx-arm64",
        "win-32",
        "win-64",
        "win-arm64",
        "zos-z",
    }
)

_PKG_EXTS = (".conda", ".tar.bz2")
_NAME_CHARS = re.compile(r"^[a-z0-9_.\-*]+$")
_NAME_SPLIT = re.compile(r"([^ =<>!~]*)(.*)$", re.S)
_KEY = re.compile(r"[A-Za-z0-9_-]+")
_OP_SPACE = re.compile(r"(==|!=|<=|>=|~=|<|>|=)\s+")
_JOIN_SPACE = re.compile(r"\s*([,|])\s*")
_NOT_IN_BUILD = frozenset("=,|<>~!-")
_OPERATOR_CHARS = frozenset("=!<>~,|")
_CHECK_REGEX_CHARS = "><$^|,"


def _bad(orig: str, why: str) -> InvalidMatchSpec:
    return InvalidMatchSpec(f"invalid package spec {orig!r}: {why}")


def _is_pattern(value: str) -> bool:
    return "*" in value or (value.startswith("^") and value.endswith("$"))


def _glob(value: str, lower: bool, orig: str) -> Callable[[str], bool] | None:
    """A matcher for a glob/``^regex$`` value, or None when ``value`` is a literal (compare with ==)."""
    if not (value.startswith("^") and value.endswith("$")) and value.count("*") == 1 and not lower:
        # the common build globs 'py39*' and '*_cpython' need no regex
        if value.endswith("*"):
            head = value[:-1]
            return lambda s: s is not None and s.startswith(head)
        if value.startswith("*"):
            tail = value[1:]
            return lambda s: s is not None and s.endswith(tail)
    try:
        if value.startswith("^") and value.endswith("$"):
            rx = re.compile(value)
        elif "*" in value:
            rx = re.compile("^(?:" + re.escape(value).replace(r"\*", ".*") + ")$")
        else:
            return None
    except re.error as e:
        raise _bad(orig, f"bad regular expression {value!r} ({e})") from None
    m = rx.match
    if lower:
        return lambda s: s is not None and m(s.lower()) is not None
    return lambda s: s is not None and m(s) is not None


# ---------------------------------------------------------------------------------------------------------------
# build_number
# ---------------------------------------------------------------------------------------------------------------

_BN_RELATION = re.compile(r"^(==|!=|<=|>=|~=|<|>|=)(?![=<>!~])(\S+)$")
_BN_OPS: dict[str, Callable[[int, int], bool]] = {
    "==": int.__eq__,
    "=": int.__eq__,  # conda: startswith on one-number versions, i.e. equality
    "!=": int.__ne__,
    "<": int.__lt__,
    "<=": int.__le__,
    ">": int.__gt__,
    ">=": int.__ge__,
    "~=": int.__ge__,  # the '~=' prefix of a one-number version is empty
}


def _build_number_matcher(raw: Any, orig: str) -> tuple[int | str, Callable[[int], bool] | None]:
    """(value as stored on the spec, matcher or None for 'anything')."""
    if isinstance(raw, int) and not isinstance(raw, bool):
        n = raw
        return n, lambda b: b == n
    text = str(raw).strip()
    if text.isdigit():
        n = int(text)
        return n, lambda b: b == n
    if text == "*":
        return text, None
    if text[:1] in ("=", "<", ">", "!", "~"):
        m = _BN_RELATION.match(text)
        if m is None or not m.group(2).isdigit():
            raise _bad(orig, f"invalid build_number {text!r}")
        op, n = _BN_OPS[m.group(1)], int(m.group(2))
        return text, lambda b: b is not None and op(int(b), n)
    if text.startswith("^") and text.endswith("$"):
        try:
            rx = re.compile(text)
        except re.error as e:
            raise _bad(orig, f"bad build_number regex ({e})") from None
        return text, lambda b: rx.match(str(b)) is not None
    raise _bad(orig, f"invalid build_number {text!r}")


# ---------------------------------------------------------------------------------------------------------------
# channels
# ---------------------------------------------------------------------------------------------------------------


def _split_channel(value: str) -> tuple[str | None, str | None]:
    """``conda-forge/linux-64`` -> (``conda-forge``, ``linux-64``); a URL keeps everything but a trailing subdir."""
    v = value.strip().rstrip("/")
    if not v:
        return None, None
    head, sep, last = v.rpartition("/")
    if sep and head and last in KNOWN_SUBDIRS and not head.endswith(":/"):
        return head, last
    return v, None


_DEFAULTS_PATHS = ("/pkgs/main", "/pkgs/r", "/pkgs/msys2")


def _channel_matcher(spec_channel: str, orig: str) -> Callable[[Any], bool] | None:
    """conda compares channels by name (``conda-forge`` matches any URL ending in ``/conda-forge``) or by full URL."""
    if spec_channel == "*":
        return None
    pattern = _glob(spec_channel, False, orig)
    if pattern is not None:

        def by_pattern(ch: Any) -> bool:
            ch = (ch or "").rstrip("/")
            return pattern(ch) or pattern(_channel_name(ch)) or pattern(ch.rsplit("/", 1)[-1])

        return by_pattern
    if "://" in spec_channel:
        url = spec_channel.rstrip("/")
        return lambda ch: ch is not None and ch.rstrip("/") == url
    name = spec_channel.strip("/")
    suffix = "/" + name

    def by_name(ch: Any) -> bool:
        if not ch:
            return False
        ch = ch.rstrip("/")
        if ch == name or ch.endswith(suffix):
            return True
        return name == "defaults" and ch.endswith(_DEFAULTS_PATHS)

    return by_name


def _channel_name(url: str) -> str:
    """The path part of a channel URL (conda's name for a channel outside its channel_alias)."""
    if "://" not in url:
        return url
    rest = url.split("://", 1)[1]
    return rest.split("/", 1)[1] if "/" in rest else ""


# ---------------------------------------------------------------------------------------------------------------
# parsing
# ---------------------------------------------------------------------------------------------------------------


def _take_brackets(s: str, orig: str) -> tuple[str, dict[str, str]]:
    """Split off the ``[key=value, ...]`` section; return the rest of the spec and the pairs."""
    start = s.find("[")
    if start < 0:
        if "]" in s:
            raise _bad(orig, "unbalanced ']'")
        return s, {}
    depth, quote, end = 0, "", -1
    for i in range(start, len(s)):
        c = s[i]
        if quote:
            if c == quote:
                quote = ""
        elif c in "'\"":
            quote = c
        elif c == "[":
            depth += 1
        elif c == "]":
            depth -= 1
            if depth == 0:
                end = i
                break
    if end < 0:
        raise _bad(orig, "unclosed '[' (invalid characters)")
    rest = s[end + 1 :]
    parens = re.match(r"^\s*\((.*)\)\s*$", rest, re.S)
    if parens and re.match(r"^\s*(target\s*=|optional)", parens.group(1)):
        rest = ""  # conda's '(target=..., optional)' section carries no match information
    if "[" in rest or "]" in rest:
        raise _bad(orig, "only one bracket section is allowed")
    if re.search(r"[{}()]", rest):
        raise _bad(orig, f"unrecognized sections {rest.strip()!r}")
    return s[:start] + " " + rest, _parse_pairs(s[start + 1 : end], orig)


def _pair(key: str, text: str) -> str:
    """``key=value`` for the brackets of a canonical spec; quoted when the bare value would not read back the same."""
    if not any(c in text for c in ", \t='\"[]"):
        return f"{key}={text}"
    return f'{key}="{text}"' if "'" in text else f"{key}='{text}'"


def _parse_pairs(body: str, orig: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    i, n = 0, len(body)
    while True:
        while i < n and (body[i] in ", \t"):
            i += 1
        if i >= n:
            break
        m = _KEY.match(body, i)
        if m is None:
            raise _bad(orig, f"expected key=value in brackets at {body[i:]!r}")
        key, i = m.group(), m.end()
        if i < n and body[i] == "=":
            i += 1
        elif key == "version" and i < n and body[i] in "<>!~":
            pass  # 'pkg[version>=1]'
        else:
            raise _bad(orig, f"a key or a value is missing for {key!r}")
        if key in _UNSUPPORTED_KEYS:
            raise _bad(orig, f"'{key}' (repodata v3 syntax) is not supported")
        if i < n and body[i] in "'\"":
            q = body[i]
            j = body.find(q, i + 1)
            if j < 0:
                raise _bad(orig, "unterminated quote in brackets")
            value, i = body[i + 1 : j], j + 1
        else:
            j = i
            while j < n and body[j] not in ", \t":
                j += 1
            value, i = body[i:j], j
        if not value.strip():
            raise _bad(orig, f"a key or a value is missing for {key!r}")
        if key not in _FIELDS:
            raise _bad(orig, f"unknown key {key!r}")
        if key in pairs:
            raise _bad(orig, f"key {key!r} can only be specified once")
        pairs[key] = value.strip()
    if not pairs:
        raise _bad(orig, "no key-value pairs found in square brackets")
    return pairs


def _split_version_build(rest: str, orig: str) -> tuple[str | None, str | None]:
    """``>=1.0 , < 2.0 py34_0`` -> (``>=1.0,<2.0``, ``py34_0``); ``1.2=py27_0`` -> (``1.2``, ``py27_0``)."""
    t = _JOIN_SPACE.sub(r"\1", _OP_SPACE.sub(r"\1", rest)).strip()
    if not t:
        return None, None
    tokens = t.split()
    if len(tokens) == 2:
        build = tokens[1].lstrip("=")
        if not build:
            raise _bad(orig, "empty build string")
        return tokens[0], build
    if len(tokens) > 2:
        raise _bad(orig, "expected at most a version and a build after the name")
    # 'V=B': the last '=' that is not part of an operator, followed by something that can only be a build
    i = t.rfind("=")
    if i > 0 and t[i - 1] not in _OPERATOR_CHARS:
        build = t[i + 1 :]
        if build and not (set(build) & _NOT_IN_BUILD):
            return t[:i], build
    return t, None


def _sanitize_version(version: str, build: str | None) -> str:
    """conda's reading of '=' forms: '=1.2' -> '1.2*' (fuzzy), '==1.2' -> '1.2' (exact), '=1.2=b' -> '1.2'."""
    if version in ("=", "==") or not version.startswith("="):
        return version
    bare = version.lstrip("=")
    if version.startswith("==") and build is None:
        return bare
    if not any(c in bare for c in "=,|"):
        if build is None and not bare.endswith("*"):
            return bare + "*"
        return bare
    return version


def _check_name(name: str, orig: str) -> None:
    if name.startswith("^") and name.endswith("$") and len(name) > 1:
        return
    if not _NAME_CHARS.match(name):
        raise _bad(orig, f"package name {name!r} has invalid characters")
    if "*" not in name and (name[0] in ".-" or ".." in name or "--" in name):
        raise _bad(orig, f"invalid package name {name!r}")


def _parse_package_file(s: str, orig: str) -> dict[str, Any]:
    if "://" not in s:
        if not s.startswith("/"):
            raise _bad(orig, "package file paths must be absolute or URLs")
        s = "file://" + s
    url = s
    path = url.split("://", 1)[1]
    segments = path.split("/")
    # The file name may be percent-encoded in any scheme (an epoch's '!' is often written %21): decode it.
    fn = unquote(segments[-1])
    parent = segments[-2] if len(segments) > 2 else ""
    if parent in KNOWN_SUBDIRS:
        stem = fn[: -len(".conda")] if fn.endswith(".conda") else fn[: -len(".tar.bz2")]
        parts = stem.rsplit("-", 2)
        if len(parts) != 3 or not all(parts):
            raise _bad(orig, f"package file name {fn!r} is not name-version-build")
        return {
            "channel": url.rsplit("/", 2)[0],
            "subdir": parent,
            "name": parts[0],
            "version": parts[1],
            "build": parts[2],
            "fn": fn,
            "url": url,
        }
    return {"name": "*", "fn": fn, "url": url}


def _parse(spec: str) -> dict[str, Any]:
    orig = spec
    s = spec.strip()
    if not s:
        raise _bad(orig, "empty spec")
    if s.endswith("@") and " " not in s:  # legacy 'feature@'
        return {"name": "*", "track_features": s[:-1]}
    if "#" in s:
        s = s[: s.index("#")].strip()
    if re.search(r"\sif\s", s):
        # conda refuses conditional specs too; dropping the condition would install what was not asked for.
        raise _bad(orig, "conditional dependencies ('NAME if CONDITION') are not supported")
    if s.endswith(_PKG_EXTS) and ("://" in s or s.startswith("/")):
        return _parse_package_file(s, orig)

    s, brackets = _take_brackets(s, orig)
    channel_str = None
    if ":" in s:
        parts = s.rsplit(":", 2)
        if len(parts) == 3:
            channel_str, _namespace, s = parts
        else:
            _namespace, s = parts
    channel, subdir = _split_channel(channel_str) if channel_str else (None, None)
    if "channel" in brackets:
        b_channel, b_subdir = _split_channel(brackets.pop("channel"))
        channel = b_channel or channel
        subdir = b_subdir or subdir
    if "subdir" in brackets:
        subdir = brackets.pop("subdir")

    m = _NAME_SPLIT.match(s.strip())
    name, rest = (m.group(1), m.group(2)) if m else ("", s)
    if not name:
        raise _bad(orig, "no package name found")
    version, build = _split_version_build(rest, orig)
    if version is not None:
        version = _sanitize_version(version, build)

    fields: dict[str, Any] = {"name": name}
    if channel is not None:
        fields["channel"] = channel
    if subdir is not None:
        fields["subdir"] = subdir
    if version is not None:
        fields["version"] = version
    if build is not None:
        fields["build"] = build
    brackets.pop("name", None)  # a name inside brackets never overrides the one outside (conda warns)
    if "version" in brackets:
        brackets["version"] = _sanitize_version(brackets["version"], None)
    fields.update(brackets)
    return fields


# ---------------------------------------------------------------------------------------------------------------
# MatchSpec
# ---------------------------------------------------------------------------------------------------------------


class _MappingRecord:
    """Lets ``MatchSpec.match`` take a plain dict (repodata entry) as well as a ``PackageRecord``."""

    __slots__ = ("_d",)

    def __init__(self, d: Mapping[str, Any]) -> None:
        self._d = d

    def __getattr__(self, key: str) -> Any:
        v = self._d.get(key)
        if key == "build_number" and v is None:
            return 0
        return v


def _feature_set(value: Any) -> frozenset[str]:
    if not value:
        return frozenset()
    if isinstance(value, str):
        value = value.replace(",", " ").split()
    return frozenset(v.strip() for v in value if v and v.strip())


class MatchSpec:
    """A parsed conda package spec; immutable and cached by its string.

    ``MatchSpec("numpy >=1.20")`` or ``MatchSpec(name="numpy", version=">=1.20")``. ``str()`` is conda's canonical
    form. ``match(rec)`` takes a ``PackageRecord`` (or a repodata-style dict).
    """

    __slots__ = (
        "name",
        "version",
        "build",
        "build_number",
        "channel",
        "subdir",
        "md5",
        "sha256",
        "track_features",
        "features",
        "license",
        "license_family",
        "fn",
        "url",
        "original",
        "_name_eq",
        "_name_m",
        "_build_eq",
        "_build_m",
        "_bn_m",
        "_extra",
        "_str",
    )
    _cache: dict[str, "MatchSpec"] = {}

    def __new__(cls, spec: "str | MatchSpec | None" = None, **fields: Any) -> "MatchSpec":
        if isinstance(spec, MatchSpec):
            if not fields:
                return spec
            merged = spec.fields()
            merged.update(fields)
            return cls._from_fields(merged, str(spec))
        if spec is None:
            return cls._from_fields(dict(fields), "")
        if not isinstance(spec, str):
            raise InvalidMatchSpec(f"invalid package spec {spec!r}: not a string")
        if not fields:
            hit = MatchSpec._cache.get(spec)
            if hit is not None:
                return hit
        parsed = _parse(spec)
        parsed.update(fields)
        obj = cls._from_fields(parsed, spec)
        if not fields:
            if len(MatchSpec._cache) > 200_000:
                MatchSpec._cache.clear()
            MatchSpec._cache[spec] = obj
        return obj

    @classmethod
    def _from_fields(cls, f: dict[str, Any], orig: str) -> "MatchSpec":
        unknown = set(f) - _FIELDS
        if unknown:
            raise _bad(orig or str(f), f"cannot match on field(s) {', '.join(sorted(unknown))}")
        self = object.__new__(cls)
        self.original = orig
        name = str(f.get("name") or "*").strip().lower()
        _check_name(name, orig or name)
        self.name = name
        self._name_m = _glob(name, True, orig) if name != "*" else None
        self._name_eq = None if _is_pattern(name) else name

        v = f.get("version")
        if v is not None and any(c in str(v) for c in "'\""):  # no way to write such a spec back
            raise _bad(orig or str(v), f"invalid character(s) in version {str(v)!r}")
        if v is not None and not isinstance(v, VersionSpec):
            try:
                v = VersionSpec(str(v))
            except InvalidVersion as e:
                raise _bad(orig or str(v), str(e)) from None
        self.version = v

        b = f.get("build")
        if b is not None and any(c in str(b) for c in "'\""):
            raise _bad(orig or str(b), f"invalid character(s) in build {str(b)!r}")
        self.build = None if b is None else str(b)
        self._build_m = None
        self._build_eq = None
        if self.build is not None and self.build != "*":
            self._build_m = _glob(self.build, False, orig)
            if self._build_m is None:
                self._build_eq = self.build

        bn = f.get("build_number")
        self.build_number, self._bn_m = (None, None) if bn is None else _build_number_matcher(bn, orig)

        extra: list[Callable[[Any], bool]] = []
        ch = f.get("channel")
        self.channel = None if ch is None else str(ch).rstrip("/") or None
        if self.channel is not None and f.get("subdir") is None:  # MatchSpec(channel="conda-forge/linux-64")
            self.channel, sub = _split_channel(self.channel)
            if sub is not None:
                f = {**f, "subdir": sub}
        if self.channel is not None:
            cm = _channel_matcher(self.channel, orig)
            if cm is not None:
                extra.append(lambda r, cm=cm: cm(r.channel))
        self.subdir = None if f.get("subdir") is None else str(f["subdir"])
        if self.subdir is not None:
            sd = self.subdir
            extra.append(lambda r: r.subdir == sd)
        for key in ("md5", "sha256", "fn", "url"):
            val = f.get(key)
            setattr(self, key, None if val is None else str(val))
            if val is not None:
                extra.append(lambda r, k=key, want=str(val): getattr(r, k, None) == want)
        for key in ("track_features", "features"):
            val = f.get(key)
            fs = None if val is None else _feature_set(val)
            if fs is not None and not fs:  # e.g. "[track_features=',']": no way to write it back
                raise _bad(orig or str(f), f"{key} names no feature")
            if fs is not None and any(c in x for x in fs for c in "'\"[]#="):
                raise _bad(orig or str(f), f"invalid character(s) in {key} {' '.join(sorted(fs))!r}")
            setattr(self, key, None if fs is None else tuple(sorted(fs)))
            if fs is not None:
                extra.append(lambda r, k=key, want=fs: _feature_set(getattr(r, k, None)) == want)
        for key in ("license", "license_family"):
            val = f.get(key)
            setattr(self, key, None if val is None else str(val))
            if val is not None:
                want = str(val).lower()
                g = _glob(want, True, orig)
                if g is not None:
                    extra.append(lambda r, k=key, g=g: g(getattr(r, k, None)))
                else:
                    extra.append(lambda r, k=key, w=want: (getattr(r, k, None) or "").lower() == w)
        self._extra = tuple(extra)
        self._str = self._canonical()
        return self

    # -- matching ------------------------------------------------------------------------------------------------
    def match(self, rec: PackageRecord | Mapping[str, Any]) -> bool:
        """Does the record satisfy every field of this spec? (A record whose version conda cannot parse never does.)"""
        if rec.__class__ is not PackageRecord and isinstance(rec, Mapping):
            rec = _MappingRecord(rec)
        if self._name_eq is not None:
            if rec.name != self._name_eq:
                return False
        elif self._name_m is not None and not self._name_m(rec.name):
            return False
        v = self.version
        if v is not None:
            try:
                if not v.match(rec.version):
                    return False
            except InvalidVersion:
                return False
        if self._build_eq is not None:
            if rec.build != self._build_eq:
                return False
        elif self._build_m is not None and not self._build_m(rec.build):
            return False
        if self._bn_m is not None and not self._bn_m(rec.build_number):
            return False
        for check in self._extra:
            if not check(rec):
                return False
        return True

    def match_version_build(self, version: str, build: str, build_number: int) -> bool:
        """Fast path for the solver: version, build string and build number only."""
        v = self.version
        if v is not None:
            try:
                if not v.match(version):
                    return False
            except InvalidVersion:
                return False
        if self._build_eq is not None:
            if build != self._build_eq:
                return False
        elif self._build_m is not None and not self._build_m(build):
            return False
        if self._bn_m is not None and not self._bn_m(build_number):
            return False
        return True

    # -- introspection -------------------------------------------------------------------------------------------
    def fields(self) -> dict[str, Any]:
        """The fields that constrain something, as plain values (round-trips through ``MatchSpec(**fields)``)."""
        out: dict[str, Any] = {}
        for key in FIELD_NAMES:
            val = getattr(self, key)
            if val is None or (key == "name" and val == "*"):
                continue
            out[key] = str(val) if key == "version" else val
        return out

    def get_exact_value(self, field: str) -> Any:
        """The field's value when it pins one exact value (no glob, range or regex), else None."""
        if field == "name":
            return self._name_eq if self.name != "*" else None
        if field == "version":
            return self.version.exact_value if self.version is not None else None
        if field == "build":
            return self._build_eq
        if field == "build_number":
            return self.build_number if isinstance(self.build_number, int) else None
        if field == "channel":
            return self.channel if self.channel and not _is_pattern(self.channel) else None
        return getattr(self, field) if field in _FIELDS else None

    @property
    def is_name_only(self) -> bool:
        return self.name != "*" and not any(getattr(self, k) is not None for k in FIELD_NAMES if k != "name")

    def _canonical(self) -> str:
        builder: list[str] = []
        brackets: list[str] = []
        channel_exact = bool(self.channel) and not _is_pattern(self.channel or "")
        if channel_exact:
            builder.append(self.channel)  # type: ignore[arg-type]
        elif self.channel and self.channel != "*":
            brackets.append(_pair("channel", self.channel))
        if self.subdir:
            if channel_exact and not _is_pattern(self.subdir) and "/" not in self.subdir:
                builder.append("/" + self.subdir)
            else:
                brackets.append(_pair("subdir", self.subdir))
        builder.append(("::" if builder else "") + self.name)

        version_exact = False
        if self.version is not None and str(self.version) != "*":
            v = str(self.version)
            if any(c in v for c in _CHECK_REGEX_CHARS + "@[]") or "*" in v[:-2]:
                # (an inner '*', e.g. '*.*' or '1.*.1', would be read back differently after '=' or '==')
                brackets.append(f"version='{v}'")
            elif v[:2] in ("!=", "~="):
                if self.build is not None:
                    brackets.append(f"version='{v}'")
                else:
                    builder.append(v)
            elif v.endswith(".*"):
                builder.append("=" + v[:-2])
            elif v.startswith("=="):
                builder.append(v)
                version_exact = True
            else:
                builder.append("==" + v)
                version_exact = True
        if self.build is not None:
            b = self.build
            if any(c in b for c in _CHECK_REGEX_CHARS + "@[]"):
                brackets.append(f"build='{b}'")
            elif "*" in b:
                brackets.append(_pair("build", b))
            elif version_exact:
                builder.append("=" + b)
            else:
                brackets.append(_pair("build", b))
        for key in ("build_number", "track_features", "features", "url", "md5", "sha256", "license", "license_family",
                    "fn"):
            val = getattr(self, key)
            if val is None:
                continue
            if key == "url" and self.channel and self.channel in val:  # the channel came from the URL
                continue
            if key == "fn" and self.url is not None:
                continue
            text = " ".join(val) if isinstance(val, tuple) else str(val)
            brackets.append(_pair(key, text))
        if brackets:
            builder.append("[" + ",".join(brackets) + "]")
        return "".join(builder)

    def __str__(self) -> str:
        return self._str

    def __repr__(self) -> str:
        return f"MatchSpec({self._str!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MatchSpec):
            return self._str == other._str
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._str)

    def __reduce__(self):
        return (MatchSpec, (self._str,))


# ---------------------------------------------------------------------------------------------------------------
# cached parsing of dependency strings (a solve sees the same few thousand strings hundreds of thousands of times)
# ---------------------------------------------------------------------------------------------------------------

_SPEC_CACHE: dict[str, MatchSpec | OciCondaError] = {}
_DEP_NAME: dict[str, str] = {}
_CACHE_LIMIT = 500_000


def parse_spec(spec: str) -> MatchSpec:
    """``MatchSpec(spec)``, memoised together with its failure (raised again each time)."""
    got = _SPEC_CACHE.get(spec)
    if got is None:
        try:
            got = MatchSpec(spec)
        except OciCondaError as e:
            got = e
        if len(_SPEC_CACHE) > _CACHE_LIMIT:
            _SPEC_CACHE.clear()
        _SPEC_CACHE[spec] = got
    if isinstance(got, OciCondaError):
        raise got
    return got


def dep_name(spec: str) -> str:
    """The package name a depends/constrains string is about (``numpy >=1.2`` -> ``numpy``); "" if it does not
    parse. The one place that answers this, for the solver, shard prefetching, install order and requests."""
    n = _DEP_NAME.get(spec)
    if n is None:
        try:
            n = parse_spec(spec).name
        except OciCondaError:
            n = ""
        if len(_DEP_NAME) > _CACHE_LIMIT:
            _DEP_NAME.clear()
        _DEP_NAME[spec] = n
    return n
