"""conda's version order (``VersionOrder``) and version constraints (``VersionSpec``), with conda's semantics.

Ordering follows conda: an optional integer epoch ``N!``, a main version and an optional local version after ``+``;
both split into components at ``.`` and ``_`` (``-`` counts as ``_`` when there is no ``_``), each component into runs of
digits and non-digits. Strings sort before numbers, ``dev`` before every other string, ``post`` after every number; a
missing component or atom counts as ``0`` (so ``1.0 == 1.0.0``); a trailing ``_`` stays on the last component (openssl
style ``1.0.1_ < 1.0.1a``); comparison is case-insensitive.

Speed matters: the solver compares every distinct spec with every candidate version. Each ``VersionOrder`` therefore
carries one precomputed key tuple (see ``_seq_key``) whose plain tuple ordering *is* conda's order, so ``<``/``==``/hash
are single C-level tuple operations, and ``VersionSpec`` parses each spec string once into a small class per kind.
"""

from __future__ import annotations

import functools
import operator
import re
from typing import Callable, Union

from ..errors import SpecError

__all__ = ["InvalidVersion", "VersionOrder", "parse_version", "VersionSpec", "parse_version_spec"]


class InvalidVersion(SpecError):
    """A version or version constraint string is not valid conda syntax."""


_INF = float("inf")
_VALID = re.compile(r"^[*.+!_0-9a-z]+$")
_RUNS = re.compile(r"[0-9]+|[*]+|[^0-9*]+")

# Keys are flat tuples of ints and strings (fast to compare and hash). Each non-zero atom is written as a tag, the
# count ``k`` of zero atoms in front of it, and the atom; a sequence ends with _END, which behaves exactly like the
# infinite run of zeros conda pads a shorter sequence with: above every string atom, below every positive atom.
_STR, _END, _POS = 0, 1, 2


def _seq_key(atoms: tuple) -> tuple:
    """Encode atoms so that tuple order equals conda's order under zero padding.

    Strings become ``_STR, k, s`` (more leading zeros -> greater, since 0 > any string), numbers and ``post``
    become ``_POS, -k, n`` (more leading zeros -> smaller); equal-under-padding sequences give identical keys. After
    equal leading elements both keys are at the same place of this grammar, so flat tuple order is the intended one.
    """
    out: list = []
    k = 0
    for a in atoms:
        if a.__class__ is str:
            out += (_STR, k, a)
            k = 0
        elif a == 0:
            k += 1
        else:
            out += (_POS, -k, a)
            k = 0
    out.append(_END)
    return tuple(out)


def _comps_key(comps: tuple) -> tuple:
    """Same encoding one level up: components padded with all-zero components."""
    out: list = []
    k = 0
    for c in comps:
        ck = _seq_key(c)
        if len(ck) == 1:  # all zeros
            k += 1
        elif ck[0] == _STR:  # starts below zero
            out += (_STR, k)
            out += ck
            k = 0
        else:
            out += (_POS, -k)
            out += ck
            k = 0
    out.append(_END)
    return tuple(out)


def _split_component(part: str, vstr: str) -> tuple:
    runs = _RUNS.findall(part)
    if not runs:
        raise InvalidVersion(f"invalid version {vstr!r}: empty version component")
    atoms: list = [] if part[0].isdigit() else [0]  # keep numbers and strings in phase: '1.a1' == '1.0a1'
    for r in runs:
        if r.isdigit():
            if len(r) > 1000:  # int() refuses over 4300 digits; no real version comes near
                raise InvalidVersion(f"invalid version {vstr[:60]!r}...: a number of {len(r)} digits")
            atoms.append(int(r))
        elif r == "post":
            atoms.append(_INF)
        elif r == "dev":
            atoms.append("DEV")  # upper case sorts below '_' and all lower-case strings, above '*'
        else:
            atoms.append(r)
    return tuple(atoms)


class VersionOrder:
    """A parsed conda version; ordered, hashable and equal exactly as conda's ``VersionOrder``.

    ``version`` and ``local`` hold conda's parsed form (epoch first; ``inf`` for ``post``, ``'DEV'`` for ``dev``);
    ``norm`` is the lower-cased, stripped text conda prints; ``str()`` gives the string as it was given.
    """

    __slots__ = ("_s", "norm", "version", "local", "_key", "_hash", "_nv", "_nl")

    def __init__(self, s: str) -> None:
        if not isinstance(s, str):
            raise InvalidVersion(f"invalid version {s!r}: not a string")
        v = s.strip().lower()
        if not v:
            raise InvalidVersion(f"invalid version {s!r}: empty version string")
        if not _VALID.match(v):
            if "-" in v and "_" not in v:
                v = v.replace("-", "_")
            if not _VALID.match(v):
                raise InvalidVersion(f"invalid version {s!r}: invalid character(s)")
        self._s = s
        self.norm = v
        parts = v.split("!")
        if len(parts) == 1:
            epoch = "0"
        elif len(parts) == 2:
            epoch = parts[0]
            if not epoch.isdigit():
                raise InvalidVersion(f"invalid version {s!r}: epoch must be an integer")
        else:
            raise InvalidVersion(f"invalid version {s!r}: duplicated epoch separator '!'")
        parts = parts[-1].split("+")
        if len(parts) > 2:
            raise InvalidVersion(f"invalid version {s!r}: duplicated local version separator '+'")
        main = parts[0]
        if not main:
            raise InvalidVersion(f"invalid version {s!r}: missing version before '+'")
        if main[-1] == "_":  # openssl-style trailing underscore belongs to the last component
            pieces = main[:-1].replace("_", ".").split(".")
            pieces[-1] += "_"
        else:
            pieces = main.replace("_", ".").split(".")
        local = parts[1].replace("_", ".").split(".") if len(parts) == 2 else []
        self.version = tuple(_split_component(p, s) for p in [epoch, *pieces])
        self.local = tuple(_split_component(p, s) for p in local)
        self._key = _comps_key(self.version) + _comps_key(self.local)
        self._hash = hash(self._key)
        self._nv = tuple(_strip0(c) for c in self.version)
        self._nl = tuple(_strip0(c) for c in self.local)

    # -- ordering ------------------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if other.__class__ is VersionOrder:
            return self._key == other._key  # type: ignore[union-attr]
        return NotImplemented

    def __ne__(self, other: object) -> bool:
        if other.__class__ is VersionOrder:
            return self._key != other._key  # type: ignore[union-attr]
        return NotImplemented

    def __lt__(self, other: "VersionOrder") -> bool:
        return self._key < other._key

    def __le__(self, other: "VersionOrder") -> bool:
        return self._key <= other._key

    def __gt__(self, other: "VersionOrder") -> bool:
        return self._key > other._key

    def __ge__(self, other: "VersionOrder") -> bool:
        return self._key >= other._key

    def __hash__(self) -> int:
        return self._hash

    def __str__(self) -> str:
        return self._s

    def __repr__(self) -> str:
        return f"VersionOrder({self._s!r})"

    def __reduce__(self):
        return (VersionOrder, (self._s,))

    # -- prefix test used by '=1.2', '1.2.*' and '~=' -------------------------------------------------------------
    def startswith(self, prefix: "VersionOrder") -> bool:
        """conda's prefix test: equal up to the last component/atom of ``prefix``, whose last atom may be a
        string prefix (``1.0.1post.za`` starts with ``1.0.1post.z``)."""
        return _PrefixTest(prefix)(self)


def _strip0(atoms: tuple) -> tuple:
    """Drop trailing zero atoms: two components are equal under conda's zero padding iff these are equal."""
    n = len(atoms)
    while n and atoms[n - 1].__class__ is not str and atoms[n - 1] == 0:
        n -= 1
    return atoms[:n]


def _pad(comps: tuple, n: int) -> tuple:
    comps = comps[:n]
    return comps + ((),) * (n - len(comps)) if len(comps) < n else comps


class _PrefixTest:
    """``startswith`` with everything about the prefix precomputed (it is the hot path of ``1.2.*`` specs)."""

    __slots__ = ("local", "main", "nt", "head", "na", "atoms", "last")

    def __init__(self, p: VersionOrder) -> None:
        self.local = bool(p.local)
        comps, norm = (p.local, p._nl) if p.local else (p.version, p._nv)
        self.main = p._nv
        self.nt = nt = len(comps) - 1
        self.head = _pad(norm, nt)
        v2 = comps[nt]
        self.na = na = len(v2) - 1
        self.atoms = _strip0(v2[:na])
        self.last = v2[na]

    def __call__(self, v: VersionOrder) -> bool:
        if self.local:
            n = max(len(v._nv), len(self.main))
            if _pad(v._nv, n) != _pad(self.main, n):
                return False
            t1, n1 = v.local, v._nl
        else:
            t1, n1 = v.version, v._nv
        nt = self.nt
        if _pad(n1, nt) != self.head:
            return False
        v1 = t1[nt] if len(t1) > nt else ()
        na = self.na
        if _strip0(v1[:na]) != self.atoms:
            return False
        c1 = v1[na] if len(v1) > na else 0
        c2 = self.last
        if c2.__class__ is str:
            return c1.__class__ is str and c1.startswith(c2)
        return c1.__class__ is not str and c1 == c2


@functools.lru_cache(maxsize=1 << 17)
def parse_version(s: str) -> VersionOrder:
    """Cached ``VersionOrder(s)`` for hot paths (repodata holds few distinct versions, used many times)."""
    return VersionOrder(s)


# ---------------------------------------------------------------------------------------------------------------
# VersionSpec
# ---------------------------------------------------------------------------------------------------------------

VersionLike = Union[str, VersionOrder]

_RELATION = re.compile(r"^(==|!=|<=|>=|~=|<|>|=)(?![=<>!~])(\S+)$")
_OP_SPACE = re.compile(r"(==|!=|<=|>=|~=|<|>|=)\s+")
_TREE_CHARS = re.compile(r"[()|,^$]")
_TOKENS = re.compile(r"\s*\^[^$]*\$|\s*[()|,]|[^()|,]+")
_CMP: dict[str, Callable[[tuple, tuple], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def _vo(v: VersionLike) -> VersionOrder:
    return v if v.__class__ is VersionOrder else parse_version(v)  # type: ignore[return-value]


class VersionSpec:
    """A conda version constraint (``1.2.*``, ``>=1,<2``, ``1.2|1.4``, ``~=1.2``, ``^regex$``, ``*`` ...).

    ``VersionSpec(s)`` returns a cached, immutable matcher; ``.match(version)`` takes a version string or a
    ``VersionOrder``. A bare version (``1.2``) is an exact match here; MatchSpec turns its ``=1.2`` forms into ``1.2*``.
    """

    __slots__ = ("spec", "is_exact")
    _cache: dict[str, "VersionSpec"] = {}

    def __new__(cls, s: "str | VersionSpec") -> "VersionSpec":
        if isinstance(s, VersionSpec):
            return s
        hit = VersionSpec._cache.get(s)
        if hit is not None:
            return hit
        if not isinstance(s, str):
            raise InvalidVersion(f"invalid version spec {s!r}: not a string")
        spec = _build(s)
        if len(VersionSpec._cache) > 200_000:  # bound memory for pathological inputs
            VersionSpec._cache.clear()
        VersionSpec._cache[s] = spec
        return spec

    def match(self, version: VersionLike) -> bool:  # pragma: no cover - every kind overrides it
        raise NotImplementedError

    @property
    def exact_value(self) -> str | None:
        """The version string when the spec pins one version exactly, else None."""
        if not self.is_exact:
            return None
        return self.spec[2:] if self.spec.startswith("==") else self.spec

    def __str__(self) -> str:
        return self.spec

    def __repr__(self) -> str:
        return f"VersionSpec({self.spec!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, VersionSpec):
            return self.spec == other.spec
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.spec)

    def __reduce__(self):
        return (VersionSpec, (self.spec,))


def _init(obj: VersionSpec, spec: str, exact: bool = False) -> VersionSpec:
    object.__setattr__(obj, "spec", spec)
    object.__setattr__(obj, "is_exact", exact)
    return obj


class _Any(VersionSpec):
    __slots__ = ()

    def match(self, version: VersionLike) -> bool:
        return True


class _Cmp(VersionSpec):
    __slots__ = ("_key", "_op")

    def match(self, version: VersionLike) -> bool:
        v = version if version.__class__ is VersionOrder else parse_version(version)  # type: ignore[arg-type]
        return self._op(v._key, self._key)  # type: ignore[union-attr]


class _Prefix(VersionSpec):
    __slots__ = ("_test", "_negate")

    def match(self, version: VersionLike) -> bool:
        v = version if version.__class__ is VersionOrder else parse_version(version)  # type: ignore[arg-type]
        return self._test(v) != self._negate


class _Compatible(VersionSpec):
    """``~=X.Y``: ``>= X.Y`` and starts with ``X``."""

    __slots__ = ("_key", "_prefix")

    def match(self, version: VersionLike) -> bool:
        v = _vo(version)
        return v._key >= self._key and (self._prefix is None or self._prefix(v))


class _Regex(VersionSpec):
    __slots__ = ("_re",)

    def match(self, version: VersionLike) -> bool:
        return self._re.match(version if version.__class__ is str else str(version)) is not None  # type: ignore


class _Literal(VersionSpec):
    """Versions with '@' cannot be parsed; conda compares them as plain strings."""

    __slots__ = ()

    def match(self, version: VersionLike) -> bool:
        return str(version) == self.spec


class _And(VersionSpec):
    __slots__ = ("parts", "_cmps")

    def match(self, version: VersionLike) -> bool:
        cmps = self._cmps
        if cmps is not None:  # all parts are plain comparisons ('>=1,<2'): compare keys inline
            v = version if version.__class__ is VersionOrder else parse_version(version)  # type: ignore[arg-type]
            k = v._key  # type: ignore[union-attr]
            for op, key in cmps:
                if not op(k, key):
                    return False
            return True
        if version.__class__ is not VersionOrder:
            try:
                version = parse_version(version)  # type: ignore[arg-type]
            except InvalidVersion:
                pass
        for p in self.parts:
            if not p.match(version):
                return False
        return True


class _Or(VersionSpec):
    __slots__ = ("parts", "_cmps")

    def match(self, version: VersionLike) -> bool:
        if version.__class__ is not VersionOrder:
            try:
                version = parse_version(version)  # type: ignore[arg-type]
            except InvalidVersion:
                pass
        for p in self.parts:
            if p.match(version):
                return True
        return False


def _bad(s: str, why: str) -> InvalidVersion:
    return InvalidVersion(f"invalid version spec {s!r}: {why}")


def _build(s: str) -> VersionSpec:
    # Lenient like mamba/rattler (conda rejects these): spaces after an operator, and an empty spec meaning '*'.
    t = _OP_SPACE.sub(r"\1", s).strip()
    if not t:
        return _init(object.__new__(_Any), "*")
    if _TREE_CHARS.search(t):
        tree = _treeify(t, s)
        if isinstance(tree, tuple):
            return _from_tree(tree)
        t = tree
    return _leaf(t, s)


def _from_tree(tree: tuple) -> VersionSpec:
    parts = tuple(_from_tree(c) if isinstance(c, tuple) else VersionSpec(c) for c in tree[1:])
    obj = object.__new__(_Or if tree[0] == "|" else _And)
    object.__setattr__(obj, "parts", parts)
    simple = all(p.__class__ is _Cmp for p in parts)
    object.__setattr__(obj, "_cmps", tuple((p._op, p._key) for p in parts) if simple else None)  # type: ignore
    return _init(obj, _untreeify(tree))


def _treeify(t: str, orig: str) -> "str | tuple":
    """Parse ``a,b|(c,d)`` into ``('|', (',', a, b), (',', c, d))``; ',' binds tighter than '|'."""
    output: list = []
    stack: list[str] = []

    def reduce_until(stop: str) -> None:
        while stack and stack[-1] not in stop:
            if len(output) < 2:
                raise _bad(orig, "operator without two operands")
            op = stack.pop()
            right = output.pop()
            left = output.pop()
            # nodes are lists while building, extended in place: a chain of n ',' stays linear, not quadratic
            node = left if isinstance(left, list) and left[0] == op else [op, left]
            if isinstance(right, list) and right[0] == op:
                node.extend(right[1:])
            else:
                node.append(right)
            output.append(node)

    for tok in _TOKENS.findall(f"({t})"):
        tok = tok.strip()
        if tok == "|":
            reduce_until("(")
            stack.append("|")
        elif tok == ",":
            reduce_until("|(")
            stack.append(",")
        elif tok == "(":
            stack.append("(")
        elif tok == ")":
            reduce_until("(")
            if not stack:
                raise _bad(orig, "unbalanced ')'")
            stack.pop()
        elif tok:
            output.append(tok)
    if stack:
        raise _bad(orig, "unbalanced '('")
    if len(output) != 1:
        raise _bad(orig, "cannot make an expression of it")
    return _frozen(output[0])


def _frozen(node: "str | list") -> "str | tuple":
    """The built tree with its lists as tuples (``(op, operand, ...)``), as the rest of the module reads it."""
    if isinstance(node, list):
        return (node[0], *(_frozen(c) for c in node[1:]))
    return node


def _untreeify(tree: "str | tuple", inside: str | None = None) -> str:
    if not isinstance(tree, tuple):
        return str(VersionSpec(tree))
    op = tree[0]
    text = op.join(_untreeify(c, op) for c in tree[1:])
    return f"({text})" if inside is not None else text


def _leaf(t: str, orig: str) -> VersionSpec:
    if t[0] == "^" or t[-1] == "$":
        if t[0] != "^" or t[-1] != "$":
            raise _bad(orig, "regex specs must start with '^' and end with '$'")
        try:
            rx = re.compile(t)
        except re.error as e:
            raise _bad(orig, f"bad regex ({e})") from None
        obj = object.__new__(_Regex)
        object.__setattr__(obj, "_re", rx)
        return _init(obj, t)
    if t == "*":
        return _init(object.__new__(_Any), t)
    if t[0] in "=<>!~":
        m = _RELATION.match(t)
        if m is None:
            raise _bad(orig, "invalid operator")
        op, vs = m.groups()
        if vs == "*" and op in ("=", "=="):  # '=*' (what 'pkg=*' means): anything
            return _init(object.__new__(_Any), t)
        if vs.endswith(".*"):
            if op == "~=":
                raise _bad(orig, "'.*' cannot be used with '~='")
            vs = vs[:-2]
            if op in ("=", "=="):  # '==1.2.*' as conda's MatchSpec, mamba and rattler read it: a prefix
                return _prefix(t, vs, orig, negate=False)
            if op == "!=":
                return _prefix(t, vs, orig, negate=True)
            # '>=1.2.*', '<1.2.*' ...: conda ignores the '.*'
        if op == "=":
            return _prefix(t, vs, orig, negate=False)
        if op == "~=":
            obj = object.__new__(_Compatible)
            vo = _spec_version(vs, orig)
            head = ".".join(vo.norm.split(".")[:-1])
            object.__setattr__(obj, "_key", vo._key)
            object.__setattr__(obj, "_prefix", _PrefixTest(_spec_version(head, orig)) if head else None)
            return _init(obj, t)
        obj = object.__new__(_Cmp)
        object.__setattr__(obj, "_key", _spec_version(vs, orig)._key)
        object.__setattr__(obj, "_op", _CMP[op])
        return _init(obj, t, exact=(op == "=="))
    if "*" in t.rstrip("*"):  # a glob with an inner '*': match the version text
        rx = re.compile("^(?:" + re.escape(t).replace(r"\*", ".*") + ")$")
        obj = object.__new__(_Regex)
        object.__setattr__(obj, "_re", rx)
        return _init(obj, t)
    if t[-1] == "*":  # '1.2*' and '1.2.*' are both the prefix 1.2
        head = t.rstrip("*").rstrip(".")
        canon = head + ".*"
        return _prefix(canon, head, orig, negate=False)
    if "@" in t:
        return _init(object.__new__(_Literal), t, exact=True)
    obj = object.__new__(_Cmp)
    object.__setattr__(obj, "_key", _spec_version(t, orig)._key)
    object.__setattr__(obj, "_op", operator.eq)
    return _init(obj, t, exact=True)


def _prefix(spec: str, vs: str, orig: str, negate: bool) -> VersionSpec:
    obj = object.__new__(_Prefix)
    object.__setattr__(obj, "_test", _PrefixTest(_spec_version(vs, orig)))
    object.__setattr__(obj, "_negate", negate)
    return _init(obj, spec)


def _spec_version(vs: str, orig: str) -> VersionOrder:
    try:
        return parse_version(vs)
    except InvalidVersion as e:
        raise _bad(orig, str(e)) from None


def parse_version_spec(s: str) -> VersionSpec:
    """Alias of ``VersionSpec(s)`` (cached)."""
    return VersionSpec(s)
