"""conda version order and VersionSpec against conda's own test vectors, conda's parse of 28k real versions,
a straightforward re-statement of conda's comparison rules (property test), and py-rattler as an oracle."""

from __future__ import annotations

import json
import math
import os
import pickle
import random
from itertools import zip_longest
from pathlib import Path

import pytest

from oci_conda.conda.version import InvalidVersion, VersionOrder, VersionSpec, parse_version
from oci_conda.errors import SpecError

VECTORS = Path(os.environ.get("OCI_CONDA_SHARED", Path(__file__).resolve().parents[2] / "shared")) / "realdata" / "vectors"


def _load(name: str):
    p = VECTORS / name
    return json.loads(p.read_text(encoding="utf-8")) if p.is_file() else None


def _missing(name: str, arity: int = 1) -> list:
    return [pytest.param(*[None] * arity, id="no-realdata", marks=pytest.mark.skip(reason=f"{VECTORS / name} not found"))]


# Cases we knowingly decide differently from the vector's source, each with the reason (conda is the referee).
SKIP = {
    # mamba reads '=1.*.3' / '!=1.*.3' as a glob; conda treats the text after '='/'!=' as one version whose
    # component is the string '*', so '=1.*.3' matches nothing numeric and '!=1.*.3' matches everything. We follow conda.
    "mamba- =1.*.3-1.7.3": "conda: '=1.*.3' is startswith(VersionOrder('1.*.3')), not a glob (mamba differs)",
    "mamba- =1.*.3-1.7.0.3": "conda: '=1.*.3' is startswith(VersionOrder('1.*.3')), not a glob (mamba differs)",
    "mamba-!=1.*.3 -1.7.3": "conda: '!=1.*.3' compares with VersionOrder('1.*.3'), not a glob (mamba differs)",
    "mamba-!=1.*.3 -1.7.0.3": "conda: '!=1.*.3' compares with VersionOrder('1.*.3'), not a glob (mamba differs)",
}


def _param(values: tuple, cid: str):
    if cid in SKIP:
        return pytest.param(*values, id=cid, marks=pytest.mark.skip(reason=SKIP[cid]))
    return pytest.param(*values, id=cid)


def _conda_form(parsed: list) -> tuple:
    """The vectors write conda's float('inf') ('post') as the string 'inf'."""
    return tuple(tuple(math.inf if a == "inf" else a for a in comp) for comp in parsed)


# ---------------------------------------------------------------------------------------------------------------
# parse form
# ---------------------------------------------------------------------------------------------------------------


_CHUNK = 500  # 28k real versions: one test id per chunk keeps the suite fast; a failure lists every mismatch


def _parsed_cases() -> list:
    order = _load("version_order.json")
    real = _load("conda_parsed_versions.json")
    if order is None or real is None:
        return _missing("conda_parsed_versions.json")
    out = []
    for lst in order["ordered_ascending"].values():
        out += [
            _param(([(e["version"], e["conda_parsed"])],), f"order-{e['version']}") for e in lst if "conda_parsed" in e
        ]
    rows = [(e["version"], e["conda_parsed"]) for e in real["versions"]]
    for i in range(0, len(rows), _CHUNK):
        chunk = rows[i : i + _CHUNK]
        out.append(_param((chunk,), f"real-{i}-{chunk[0][0]}..{chunk[-1][0]}"))
    return out


@pytest.mark.parametrize("rows", _parsed_cases())
def test_parse_matches_conda(rows: list) -> None:
    wrong = []
    for version, conda_parsed in rows:
        vo = parse_version(version)
        if vo.version != _conda_form(conda_parsed) or str(vo) != version:
            wrong.append((version, vo.version, conda_parsed))
    assert wrong == []


def test_all_real_versions_parse() -> None:
    data = _load("conda_parsed_versions.json")
    if data is None:
        pytest.skip("realdata vectors not found")
    assert len(data["versions"]) == 28530
    assert len({parse_version(e["version"]) for e in data["versions"]}) > 20000


# ---------------------------------------------------------------------------------------------------------------
# order
# ---------------------------------------------------------------------------------------------------------------


def _chain_cases() -> list:
    data = _load("version_order.json")
    if data is None:
        return _missing("version_order.json", 3)
    out = []
    for name, lst in data["ordered_ascending"].items():
        tag = name.split(" ")[0]
        for prev, cur in zip(lst, lst[1:]):
            rel = cur.get("relation_to_previous", "not-less")
            if "conda_parsed" in cur and _conda_form(prev["conda_parsed"]) != _conda_form(cur["conda_parsed"]):
                # conda's list is non-decreasing; where the parsed forms differ it is strictly ascending
                rel = "greater" if not _padded_equal(prev["conda_parsed"], cur["conda_parsed"]) else "equal"
            out.append(_param((prev["version"], cur["version"], rel), f"{tag}-{prev['version']}-{cur['version']}"))
    return out


def _padded_equal(a: list, b: list) -> bool:
    """conda's equality on parsed forms: missing components and atoms count as 0."""
    a, b = _conda_form(a), _conda_form(b)
    return all(
        x == y for ca, cb in zip_longest(a, b, fillvalue=()) for x, y in zip_longest(ca, cb, fillvalue=0)
    )


@pytest.mark.parametrize(("lower", "higher", "relation"), _chain_cases())
def test_order_chain(lower: str, higher: str, relation: str) -> None:
    a, b = VersionOrder(lower), VersionOrder(higher)
    if relation == "equal":
        assert a == b and hash(a) == hash(b) and not a < b and a <= b and a >= b
    elif relation == "greater":
        assert a < b and b > a and a != b and not b <= a
    else:
        assert a <= b


def _equal_pair_cases() -> list:
    data = _load("version_order.json")
    if data is None:
        return _missing("version_order.json", 3)
    return [_param((e["a"], e["b"], e["equal"]), f"{i}-{e['a']}-{e['b']}") for i, e in enumerate(data["equal_pairs"])]


@pytest.mark.parametrize(("a", "b", "equal"), _equal_pair_cases())
def test_equal_pairs(a: str, b: str, equal: bool) -> None:
    va, vb = VersionOrder(a), VersionOrder(b)
    assert (va == vb) is equal
    assert (va != vb) is not equal
    if equal:
        assert hash(va) == hash(vb)


def _startswith_cases() -> list:
    data = _load("version_order.json")
    if data is None:
        return _missing("version_order.json", 3)
    return [
        _param((e["version"], e["prefix"], e["expected"]), f"{e['version']}-{e['prefix']}") for e in data["startswith"]
    ]


@pytest.mark.parametrize(("version", "prefix", "expected"), _startswith_cases())
def test_startswith(version: str, prefix: str, expected: bool) -> None:
    assert VersionOrder(version).startswith(VersionOrder(prefix)) is expected


def _invalid_version_cases() -> list:
    data = _load("version_order.json")
    if data is None:
        return _missing("version_order.json")
    return [_param((e["version"],), f"{i}-{e['version']!r}") for i, e in enumerate(data["invalid_versions"])]


@pytest.mark.parametrize("version", _invalid_version_cases())
def test_invalid_versions(version: str) -> None:
    with pytest.raises(InvalidVersion) as exc:
        VersionOrder(version)
    assert isinstance(exc.value, SpecError)
    assert "\n" not in str(exc.value) and repr(version) in str(exc.value)


def test_sorting_conda_lists_reproduces_them() -> None:
    data = _load("version_order.json")
    if data is None:
        pytest.skip("realdata vectors not found")
    for name, lst in data["ordered_ascending"].items():
        given = [VersionOrder(e["version"]) for e in lst]
        shuffled = given[:]
        random.Random(7).shuffle(shuffled)
        # equal versions may swap places; compare the sorted keys, not the objects
        assert [v._key for v in sorted(shuffled)] == [v._key for v in given], name


# ---------------------------------------------------------------------------------------------------------------
# a direct re-statement of conda's comparison (padding with 0 at both levels) as an independent oracle
# ---------------------------------------------------------------------------------------------------------------


def _conda_lt(a: VersionOrder, b: VersionOrder) -> bool:
    for t1, t2 in ((a.version, b.version), (a.local, b.local)):
        for c1s, c2s in zip_longest(t1, t2, fillvalue=()):
            for c1, c2 in zip_longest(c1s, c2s, fillvalue=0):
                if c1 == c2:
                    continue
                if isinstance(c1, str) != isinstance(c2, str):
                    return isinstance(c1, str)  # strings sort below numbers
                return c1 < c2
    return False


_ATOMS = ["0", "1", "2", "10", "a", "b", "rc", "dev", "post", "_", "*", "z"]


def _random_version(rnd: random.Random) -> str:
    comps = []
    for _ in range(rnd.randint(1, 4)):
        comps.append("".join(rnd.choice(_ATOMS) for _ in range(rnd.randint(1, 3))))
    s = ".".join(comps)
    if rnd.random() < 0.2:
        s = f"{rnd.randint(0, 2)}!{s}"
    if rnd.random() < 0.2:
        s += "+" + rnd.choice(["1", "a", "1.0", "0"])
    return s


def test_key_order_equals_conda_rules() -> None:
    rnd = random.Random(20261123)
    vs = []
    while len(vs) < 400:
        try:
            vs.append(VersionOrder(_random_version(rnd)))
        except InvalidVersion:
            continue
    for a in vs:
        for b in rnd.sample(vs, 40):
            assert (a < b) is _conda_lt(a, b), (str(a), str(b))
            assert (a == b) is (not _conda_lt(a, b) and not _conda_lt(b, a)), (str(a), str(b))
            if a == b:
                assert hash(a) == hash(b)


def test_documented_conda_semantics() -> None:
    v = VersionOrder
    assert v("1.0") == v("1.0.0") and hash(v("1.0")) == hash(v("1.0.0"))
    assert v("1.1dev1") < v("1.1_") < v("1.1a1") < v("1.1b1") < v("1.1rc1") < v("1.1") < v("1.1post1")
    assert v("1.0.1_") < v("1.0.1a")  # openssl convention
    assert v("1.0.1a") < v("1.0.1")
    assert v("1!0.1") > v("99.0")  # epoch
    assert v("1.2+1") > v("1.2") > v("1.2+abc")  # local version: compared like the main part, strings below 0
    assert v("1.2.A") == v("1.2.a") and v("1-2") == v("1_2") == v("1.2")
    assert v("1.0.*") < v("1.0.dev") < v("1.0")
    assert str(v(" 1.2.RC1 ")) == " 1.2.RC1 " and v(" 1.2.RC1 ").norm == "1.2.rc1"
    assert pickle.loads(pickle.dumps(v("1.2"))) == v("1.2")
    assert parse_version("1.2") is parse_version("1.2")


# ---------------------------------------------------------------------------------------------------------------
# VersionSpec
# ---------------------------------------------------------------------------------------------------------------


def _spec_cases() -> list:
    data = _load("version_spec_match.json")
    if data is None:
        return _missing("version_spec_match.json", 3)
    out = []
    for e in data["cases"]:
        tag = e["source"].split(":")[0]
        out.append(_param((e["spec"], e["version"], e["expected"]), f"{tag}-{e['spec']}-{e['version']}"))
    return out


@pytest.mark.parametrize(("spec", "version", "expected"), _spec_cases())
def test_version_spec_match(spec: str, version: str, expected: bool) -> None:
    vs = VersionSpec(spec)
    assert vs.match(version) is expected
    assert vs.match(VersionOrder(version)) is expected
    # the canonical string means the same thing
    assert VersionSpec(str(vs)).match(version) is expected


def _invalid_spec_cases() -> list:
    data = _load("version_spec_match.json")
    if data is None:
        return _missing("version_spec_match.json")
    return [_param((e["spec"],), f"{i}-{e['spec']}") for i, e in enumerate(data["invalid_specs"])]


@pytest.mark.parametrize("spec", _invalid_spec_cases())
def test_invalid_version_specs(spec: str) -> None:
    with pytest.raises(InvalidVersion) as exc:
        VersionSpec(spec)
    assert "\n" not in str(exc.value)


@pytest.mark.parametrize(
    ("spec", "canonical"),
    [
        ("1.2*", "1.2.*"),
        ("1.2.*", "1.2.*"),
        (">=1, <2", ">=1,<2"),
        (">= 1.7", ">=1.7"),
        ("(>=1,<2)|>3", "(>=1,<2)|>3"),
        (">=3,(<4|<5)", ">=3,(<4|<5)"),
        ("1.5|(1.6|1.7),1.8,1.9|2.0|2.1", "1.5|((1.6|1.7),1.8,1.9)|2.0|2.1"),
        ("((1.5|((1.6|1.7), 1.8), 1.9 |2.0))|2.1", "1.5|((1.6|1.7),1.8,1.9)|2.0|2.1"),
        ("1.7*|1.8*", "1.7.*|1.8.*"),
    ],
)
def test_version_spec_str(spec: str, canonical: str) -> None:
    assert str(VersionSpec(spec)) == canonical


def test_version_spec_kinds() -> None:
    assert VersionSpec("1.2").is_exact and VersionSpec("==1.2").is_exact
    assert VersionSpec("1.2").exact_value == "1.2" and VersionSpec("==1.2").exact_value == "1.2"
    assert not VersionSpec("1.2.*").is_exact and VersionSpec(">=1").exact_value is None
    assert VersionSpec(">=1.0.*").match("1.0") and not VersionSpec(">=1.0.*").match("1.0a")  # conda drops the .*
    assert VersionSpec("<1.0.*").match("0.9") and not VersionSpec("<1.0.*").match("1.0")
    assert VersionSpec("==1.7.1.*").match("1.7.1.1")  # prefix, as MatchSpec 'pkg==1.7.1.*'
    assert VersionSpec("=*").match("1.4") and VersionSpec("").match("0.1")
    assert VersionSpec("1.0@abc").match("1.0@abc") and not VersionSpec("1.0@abc").match("1.0")
    assert VersionSpec("~=1").match("3.0") and not VersionSpec("~=1").match("0.9")
    assert VersionSpec(">=2.*.*").match("2.0.dev1")  # conda: '>=' VersionOrder('2.*'), and '*' sorts below 'dev'
    assert not VersionSpec(">=2.*.*").match("1.9")
    assert VersionSpec(">=1,<2") is VersionSpec(">=1,<2")  # cached
    assert VersionSpec(">=1,<2") == VersionSpec(">=1,<2") and len({VersionSpec("1.2"), VersionSpec("1.2")}) == 1
    assert pickle.loads(pickle.dumps(VersionSpec(">=1,<2"))).match("1.5")
    with pytest.raises(InvalidVersion):
        VersionSpec(">=1").match("not a version!")


# ---------------------------------------------------------------------------------------------------------------
# py-rattler as an oracle (test-only)
# ---------------------------------------------------------------------------------------------------------------


def _real_versions() -> list[str]:
    data = _load("conda_parsed_versions.json")
    if data is None:
        pytest.skip("realdata vectors not found")
    return [e["version"] for e in data["versions"]]


def test_order_agrees_with_rattler() -> None:
    rattler = pytest.importorskip("rattler")
    sample = random.Random(1234).sample(_real_versions(), 4000)
    ours = sorted(sample, key=VersionOrder)
    disagreements = []
    for a, b in zip(ours, ours[1:]):
        ra, rb = rattler.Version(a), rattler.Version(b)
        if (VersionOrder(a) == VersionOrder(b)) != (ra == rb) or (VersionOrder(a) < VersionOrder(b)) != (ra < rb):
            disagreements.append((a, b))
    assert disagreements == []


def _compatible_release_rattler_differs(spec: str) -> bool:
    # conda builds the '~=' prefix by splitting the version text at '.' only ('~=3.3_13' -> starts with '3');
    # rattler splits at '_' too ('3.3'). conda is the referee; see test_compatible_release_follows_conda.
    return spec.startswith("~=") and "_" in spec


def test_version_spec_agrees_with_rattler() -> None:
    rattler = pytest.importorskip("rattler")
    rnd = random.Random(99)
    versions = _real_versions()
    specs = []
    for v in rnd.sample(versions, 150):
        specs += [f">={v}", f"<{v}", f"=={v}", f"!={v}", f"{v}.*", f"!={v}.*", f"~={v}", f">{v},<{v}.1", f"<={v}|>{v}"]
    candidates = rnd.sample(versions, 60)
    disagreements = []
    for s in specs:
        if _compatible_release_rattler_differs(s):
            continue
        ours, theirs = VersionSpec(s), rattler.VersionSpec(s)
        for c in candidates:
            if ours.match(c) != theirs.matches(rattler.Version(c)):
                disagreements.append((s, c))
    assert disagreements == []


def test_compatible_release_follows_conda() -> None:
    # conda: '~=3.3_13' is '>=3.3_13' and startswith(VersionOrder('3')), since '3.3_13'.split('.')[:-1] == ['3']
    assert VersionSpec("~=3.3_13").match("3.5.0.1")
    assert not VersionSpec("~=3.3_13").match("4.0")
    assert not VersionSpec("~=3.3.13").match("3.5.0.1")
