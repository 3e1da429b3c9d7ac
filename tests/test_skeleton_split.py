"""The skeleton cut split across forked workers (``cut(buf, pieces)``): it gives exactly the one-pass cut, or the
one pass runs instead; and what a split cut cannot see (a key met in two pieces) is refused when its name is read.
Awkward documents: braces and ``}, "`` inside strings, escaped quotes, split points at and next to entry boundaries,
tiny documents, one entry, sections in other orders, shuffled entries, duplicates across pieces."""

from __future__ import annotations

import importlib.util
import json
import mmap
import random
from pathlib import Path

import pytest

from oci_conda import parallel
from oci_conda.conda import repodata, skeleton
from oci_conda.conda.channel import Channel, resolve_channel
from oci_conda.conda.gateway import load_channel_indexes
from oci_conda.conda.repodata import (
    decompress,
    merge_record,
    parse_document,
    records_from_repodata,
)
from oci_conda.conda.skeleton import Skeleton, cut, entries
from oci_conda.http import make_session

REPO = Path(__file__).resolve().parents[1]
SECTIONS = ("packages", "packages.conda")


def _synth():
    spec = importlib.util.spec_from_file_location("synth_repodata", REPO / "benchmarks" / "synth_repodata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def _entry(name: str, build: str, **extra: object) -> dict:
    return {"name": name, "version": "1", "build": build, "build_number": 0, "depends": [], "subdir": "linux-64",
            **extra}


def _doc(entries_by_section: dict[str, list[tuple[str, dict]]], *, order: tuple[str, ...] = ("info", *SECTIONS),
         indent: int | None = None) -> bytes:
    """A repodata document with its members in ``order`` (entries as given: duplicates kept)."""
    sep = "\n" + " " * (indent or 0) if indent else " "
    members = []
    for key in order:
        if key == "info":
            members.append('"info": {"subdir": "linux-64"}')
        else:
            inner = ("," + sep).join(f'{json.dumps(fn)}: {json.dumps(e, indent=indent)}'
                                     for fn, e in entries_by_section.get(key, []))
            members.append(f'{json.dumps(key)}: {{{sep}{inner}}}')
    return ("{" + ("," + sep).join(members) + "}").encode()


def _by_name(body: bytes) -> dict[str, list[tuple[int, str, dict]]]:
    """The reference: name -> (section, file name, entry) of the exact parse (the last of a repeated key wins)."""
    raw = json.loads(body)
    out: dict[str, list[tuple[int, str, dict]]] = {}
    for k, sec in enumerate(SECTIONS):
        for fn, e in (raw.get(sec) or {}).items():
            out.setdefault(e["name"], []).append((k, fn, e))
    return out


def _read_back(body: bytes, sk: Skeleton) -> dict[str, list[tuple[int, str, dict]]] | None:
    """What the cut gives per name (entries found again by number); None if a name is refused."""
    first_conda = sk.locator["sections"][1][0]
    out = {}
    for name in sk.table:
        ords = list(sk.table[name])
        got = entries(body, sk.locator, ords)
        if got is None:
            return None
        out[name] = [(int(j >= first_conda), fn, e) for j, fn, e in zip(ords, *got)]
    return out


def _same(a: Skeleton | None, b: Skeleton | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.info == b.info and a.locator == b.locator and dict(a.table.items()) == dict(b.table.items())


def _check(body: bytes, pieces: int) -> Skeleton | None:
    """``cut(body, pieces)`` is the one-pass cut, and (when it cuts) reads back exactly the exact parse."""
    whole, split = cut(body), cut(body, pieces)
    assert _same(split, whole)
    if split is not None:
        assert _read_back(body, split) == _by_name(body)
    return split


def test_split_is_the_one_pass_cut_on_synthetic_repodata(tmp_path: Path) -> None:
    chan = _synth().write_channel(tmp_path / "chan", 3000, seed=7)
    path = chan / "linux-64" / "repodata.json"
    body = path.read_bytes()
    for k in (2, 3, 5, 8):
        sk = _check(body, k)
        assert sk is not None and sk.pieces == k
    with open(path, "rb") as f:  # a private map (pieces written in place, in the workers) and a read-only one
        for access in (mmap.ACCESS_COPY, mmap.ACCESS_READ):
            buf = mmap.mmap(f.fileno(), 0, access=access)
            sk = cut(buf, 3)
            assert sk is not None and sk.pieces == 3 and _same(sk, cut(body))
            assert buf[:] == body
    assert path.read_bytes() == body


@pytest.mark.parametrize("indent", [None, 1])
@pytest.mark.parametrize("order", [("info", *SECTIONS), (*SECTIONS, "info"), SECTIONS[::-1], ("packages.conda",),
                                   ("info", "packages")])
def test_split_points_at_every_place_of_small_documents(order: tuple[str, ...], indent: int | None) -> None:
    """Every piece count over documents of 1..9 entries: split points land on, just before and just after entry
    boundaries, in either section, with the sections in any order (only conda-index's order is split: another
    order is cut in one pass)."""
    cut_in_pieces = 0
    for n in (1, 2, 3, 9):
        pk = [(f"b-1-{k}.tar.bz2", _entry("b", str(k))) for k in range(n // 3)]
        cd = [(f"{nm}-1-{k}.conda", _entry(nm, str(k))) for k in range(n) for nm in ["a" if k % 3 else "c"]]
        body = _doc({"packages": pk, "packages.conda": cd}, order=order, indent=indent)
        for k in range(2, 9):
            sk = _check(body, k)
            cut_in_pieces += sk is not None and sk.pieces > 1
    assert (cut_in_pieces > 0) == (order in (("info", *SECTIONS), ("packages.conda",), ("info", "packages")))


def test_strings_that_look_like_boundaries_and_shuffled_entries() -> None:
    """``}, "`` and escaped quotes inside strings (a split point may fall inside one: that piece does not parse,
    or is refused), entries in no order: the split cut is the one-pass cut. A ``{`` inside a string is declined by
    both."""
    rnd = random.Random(3)
    cd = []
    for k in range(200):
        extra = {}
        if k % 7 == 0:
            extra["license"] = 'x"}, "a-1-0.conda": "y'
        if k % 11 == 0:
            extra["license_family"] = '\\"}  ,  "'
        cd.append((f"{'ab'[k % 2]}-1-{k}.conda", _entry("ab"[k % 2], str(k), **extra)))
    rnd.shuffle(cd)
    body = _doc({"packages.conda": cd})
    for k in range(2, 9):
        assert _check(body, k) is not None
    braced = _doc({"packages.conda": cd[:50] + [("a-9-0.conda", _entry("a", "0", license="{"))] + cd[50:]})
    for k in (2, 3):
        assert cut(braced, k) is None


def test_a_key_met_in_two_pieces_is_refused_when_its_name_is_read() -> None:
    """The one pass declines a duplicate key (its count is short); a split cut need not see it, but every key names
    its entry, so both copies are among one name's entries, and reading that name is refused (the caller then
    takes the exact way). A duplicate under another name is declined at the cut."""
    cd = [(f"a-1-{k}.conda", _entry("a", str(k))) for k in range(120)]
    cd += [(f"z-1-{k}.conda", _entry("z", str(k))) for k in range(120)]
    dup = _doc({"packages.conda": cd + [("a-1-3.conda", _entry("a", "late"))]})
    assert cut(dup) is None
    refused = 0
    for k in range(2, 6):
        sk = cut(dup, k)
        if sk is not None:
            assert sk.pieces > 1
            assert entries(dup, sk.locator, sk.table["a"]) is None
            assert entries(dup, sk.locator, sk.table["z"]) is not None
            refused += 1
    assert refused > 0
    other = _doc({"packages.conda": cd + [("a-1-3.conda", _entry("z", "late"))]})
    for k in range(1, 6):
        assert cut(other, k) is None


def test_sorted_keys_prove_there_is_no_duplicate() -> None:
    """Keys in order across the pieces (conda-index sorts them) need not name their entries; a key met again out of
    order next to them sends the cut the one-pass way (which declines it)."""
    cd = [(f"k-{k:03d}.conda", _entry("ab"[k % 2], str(k))) for k in range(240)]  # keys that name no entry
    body = _doc({"packages.conda": cd}, indent=1)
    for k in range(2, 6):
        sk = _check(body, k)
        assert sk is not None and sk.pieces == k
    dup = _doc({"packages.conda": cd + [("k-003.conda", _entry("a", "late"))]}, indent=1)
    for k in range(1, 6):
        assert cut(dup, k) is None


def test_the_gateway_cuts_large_documents_in_pieces(tmp_path: Path, cache_env: Path, serve_dir,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Through ``load_channel_indexes`` (forked workers bounded by ``jobs``), a local and an HTTP channel, cold and
    warm: the records are the exact parse's, also for a document with a key repeated across pieces (read back the
    exact way); the cold opens were cut in pieces."""
    monkeypatch.setattr(skeleton, "SPLIT_MIN", 1 << 10)
    monkeypatch.setattr(parallel, "cpu_count", lambda: 4)
    cut_in = []
    one_cut = repodata.cut

    def counting_cut(buf, pieces=1):
        got = one_cut(buf, pieces)
        cut_in.append(0 if got is None else got.pieces)
        return got

    monkeypatch.setattr(repodata, "cut", counting_cut)
    cd = [(f"a-1-{k}.conda", _entry("a", str(k))) for k in range(60)]
    cd += [(f"z-1-{k}.conda", _entry("z", str(k), depends=["a"])) for k in range(60)]
    server = serve_dir(tmp_path)
    for case, body in (("plain", _doc({"packages.conda": cd})),
                       ("dup", _doc({"packages.conda": cd + [("a-1-3.conda", _entry("a", "late"))]}))):
        d = tmp_path / case / "linux-64"
        d.mkdir(parents=True)
        (d / "repodata.json").write_bytes(body)
        local = resolve_channel(str(tmp_path / case), tmp_path)
        remote = Channel(name=f"{server.url}/{case}", url=f"{server.url}/{case}", auth_url=f"{server.url}/{case}")
        for chan in (local, remote):
            where = f"{chan.subdir_url('linux-64')}/repodata.json"
            want: dict = {}
            for r in records_from_repodata(parse_document(decompress(body, where), where), chan, "linux-64", where):
                merge_record(want, r)
            cut_in.clear()
            for _ in ("cold", "warm"):
                index = load_channel_indexes([chan], "linux-64", make_session(), jobs=3)[0]
                for name in ("a", "z"):
                    assert index[name] == [r for r in want.values() if r.name == name], (case, chan.url, name)
            assert cut_in and cut_in[0] == 3, (case, chan.url, cut_in)
