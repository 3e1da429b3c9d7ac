"""The lazy per-name repodata index: same records as the exact, eager parse of the documents, warm opens from the index file without the
JSON, rebuilt when the repodata changes, broken repodata and damaged index files handled."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import time
from pathlib import Path

import orjson
import pytest

from oci_conda.conda.channel import Channel, resolve_channel
from oci_conda.conda.gateway import ChannelIndex, load_channel_indexes
from oci_conda.conda.records import PackageRecord
from oci_conda.conda.repodata import decompress, merge_record, parse_document, records_from_repodata, scan
from oci_conda.conda.skeleton import NameTable, cut, entries
from oci_conda.conda.solve import clear_index_cache, solve
from oci_conda.conda.virtual import virtual_packages
from oci_conda.errors import ChannelError
from oci_conda.http import make_session

REPO = Path(__file__).resolve().parents[1]
PYPI_CHANNEL = Path("repodata/conda-pypi-local-channel")


def http_channel(url: str) -> Channel:
    return Channel(name=url, url=url, auth_url=url)


def _synth():
    spec = importlib.util.spec_from_file_location("synth_repodata", REPO / "benchmarks" / "synth_repodata.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def exact(channel: Channel, subdir: str, chan_dir: Path | None = None) -> list[PackageRecord]:
    """The reference: every entry of ``subdir`` + ``noarch`` parsed and validated at once from the channel's files
    (``chan_dir``, or a local channel's own directory), merged as the gateway merges them."""
    chan_dir = chan_dir or channel.path
    assert chan_dir is not None
    merged: dict[str, PackageRecord] = {}
    for sd in [subdir] if subdir == "noarch" else [subdir, "noarch"]:
        for fname in ("repodata.json.zst", "repodata.json"):
            p = chan_dir / sd / fname
            if p.is_file():
                where = p.as_uri() if channel.is_local else f"{channel.subdir_url(sd)}/{fname}"
                obj = parse_document(decompress(p.read_bytes(), where), where)
                for r in records_from_repodata(obj, channel, sd, where):
                    merge_record(merged, r)
                break
    return list(merged.values())


def by_name(recs) -> dict[str, list]:
    out: dict[str, list] = {}
    for r in recs:
        out.setdefault(r.name, []).append(r)
    return out


def assert_same(index: ChannelIndex, full: list) -> None:
    """The mapping holds exactly the reference records, name by name and in the same order."""
    want = by_name(full)
    assert sorted(index) == sorted(want) and len(index) == len(want)
    for name, recs in want.items():
        assert name in index
        assert index[name] == recs, name
    assert "no-such-package-anywhere" not in index
    with pytest.raises(KeyError):
        index["no-such-package-anywhere"]


def real_repodata_files(realdata: Path) -> list[Path]:
    out = []
    for f in sorted((realdata / "repodata").rglob("*.json")):
        try:
            d = json.loads(f.read_bytes())
        except ValueError:
            continue
        if isinstance(d, dict) and (isinstance(d.get("packages"), dict) or isinstance(d.get("packages.conda"), dict)):
            out.append(f)
    return out


def test_same_records_as_the_exact_parse_on_real_repodata(realdata: Path, tmp_path: Path, cache_env) -> None:
    files = real_repodata_files(realdata)
    assert len(files) >= 20
    session = make_session()
    ways = {"scan": 0, "parse": 0}
    compared = bad = 0
    for i, f in enumerate(files):
        sd = "noarch" if "noarch" in f.name or f.parent.name == "noarch" else "linux-64"
        (tmp_path / f"c{i}" / sd).mkdir(parents=True)
        shutil.copyfile(f, tmp_path / f"c{i}" / sd / "repodata.json")
        chan = resolve_channel(str(tmp_path / f"c{i}"), tmp_path)
        ways["scan" if scan(f.read_bytes()) is not None else "parse"] += 1
        try:
            full = exact(chan, sd)
        except ChannelError as e:
            # entries are checked when their name is looked up: the first bad one gives the exact parse's message
            msgs = []
            try:
                index = load_channel_indexes([chan], sd, session)[0]
            except ChannelError as e2:  # not cut (parsed whole), so found at once
                msgs.append(str(e2))
            else:
                for name in index:
                    try:
                        index[name]
                    except ChannelError as e2:
                        msgs.append(str(e2))
            assert str(e) in msgs, f
            bad += 1
            continue
        for _ in ("cold", "warm"):
            assert_same(load_channel_indexes([chan], sd, session)[0], full)
        compared += 1
    assert compared >= 20 and bad >= 1
    assert ways["scan"] >= 20 and ways["parse"] >= 2  # both ways into the index are exercised on real data
    assert list((cache_env / "repodata").glob("local-*.index"))


@pytest.mark.parametrize("indent", [None, 1])
def test_same_records_and_solution_on_synthetic_channel(tmp_path: Path, cache_env, indent) -> None:
    chan_dir = _synth().write_channel(tmp_path / "chan", 10000, seed=3, indent=indent)
    for sd in ("linux-64", "noarch"):
        assert scan((chan_dir / sd / "repodata.json").read_bytes()) is not None
    chan = resolve_channel(str(chan_dir), tmp_path)
    session = make_session()
    full = [exact(chan, "linux-64")]
    vps = virtual_packages("linux-64", env={})
    specs = ["python >=3.10", "numpy", "pandas"]
    want = solve(full, specs, vps)
    for way in ("cold", "warm"):
        clear_index_cache()
        index = load_channel_indexes([chan], "linux-64", session)
        assert isinstance(index[0], ChannelIndex)
        assert solve(index, specs, vps) == want, way
        made = index[0].records_made
        assert 0 < made < len(full[0]) / 2  # only what the request can reach became records
        assert_same(index[0], full[0])
    assert {r.name for r in want} >= {"python", "numpy", "pandas"}


def _only_index_file(cache_env: Path) -> Path:
    got = [p for p in (cache_env / "repodata").glob("*.index") if not p.name.startswith("local-")]
    assert got
    return got[0]


def _copy_channel(src: Path, dst: Path, variants=("repodata.json",)) -> Path:
    for sub in src.iterdir():
        if sub.is_dir():
            (dst / sub.name).mkdir(parents=True, exist_ok=True)
            for v in variants:
                if (sub / v).exists():
                    shutil.copyfile(sub / v, dst / sub.name / v)
    return dst


def test_warm_open_reads_the_index_not_the_json(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan_dir = _copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan", ("repodata.json", "repodata.json.zst"))
    server = serve_dir(chan_dir)
    chan = http_channel(server.url)
    full = exact(chan, "linux-64", chan_dir)
    index = load_channel_indexes([chan], "linux-64", make_session())[0]
    assert_same(index, full)
    states = {p: orjson.loads(p.read_bytes()) for p in (cache_env / "repodata").glob("*.state.json")}
    # the cached JSON is now garbage (same size) and even gone: the state still says it is current, so a warm
    # open must come from the index file alone.
    for p in states:
        data = p.with_name(p.name.replace(".state.json", ".json"))
        data.write_bytes(b"\0" * data.stat().st_size)
    n = len(server.requests)
    warm = load_channel_indexes([chan], "linux-64", make_session())[0]
    assert_same(warm, full)
    assert len(server.requests) == n + 2  # one conditional request per subdir
    assert all(p.with_name(p.name.replace(".state.json", ".json")).read_bytes().startswith(b"\0") for p in states)
    for p in states:
        p.with_name(p.name.replace(".state.json", ".json")).unlink()
    offline = load_channel_indexes([chan], "linux-64", make_session(offline=True), offline=True)[0]
    assert_same(offline, full)
    assert len(server.requests) == n + 2


def test_index_follows_the_repodata_304_and_200(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan_dir = _copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    server = serve_dir(chan_dir)
    chan = http_channel(server.url)
    session = make_session()
    codes: list[int] = []
    session.hooks["response"].append(lambda r, *a, **k: codes.append(r.status_code))
    first = load_channel_indexes([chan], "linux-64", session)[0]
    names = set(first)
    assert sorted(codes) == [200, 200, 404, 404]  # no .zst here (remembered), then the .json
    del codes[:]
    index_files = {p: p.stat().st_mtime_ns for p in (cache_env / "repodata").glob("*.index")}
    assert len(index_files) == 2
    time.sleep(0.01)
    # unchanged: 304s, the index files are opened, not rewritten
    again = load_channel_indexes([chan], "linux-64", session)[0]
    assert set(again) == names
    assert codes == [304, 304]
    assert {p: p.stat().st_mtime_ns for p in index_files} == index_files
    # a new package in linux-64 (and a newer Last-Modified): a 200, the index is rebuilt
    rd = chan_dir / "linux-64" / "repodata.json"
    d = json.loads(rd.read_bytes())
    d.setdefault("packages.conda", {})["zzz-new-1.0-0.conda"] = {
        "name": "zzz-new", "version": "1.0", "build": "0", "build_number": 0, "depends": [], "subdir": "linux-64"}
    rd.write_text(json.dumps(d, indent=2))
    future = time.time() + 5
    os.utime(rd, (future, future))
    changed = load_channel_indexes([chan], "linux-64", session)[0]
    assert sorted(codes[2:]) == [200, 304]
    assert set(changed) == names | {"zzz-new"}
    assert [r.fn for r in changed["zzz-new"]] == ["zzz-new-1.0-0.conda"]
    assert changed["zzz-new"][0].url == f"{server.url}/linux-64/zzz-new-1.0-0.conda"
    new_mtimes = {p: p.stat().st_mtime_ns for p in index_files}
    assert sum(new_mtimes[p] != index_files[p] for p in index_files) == 1  # only linux-64's
    assert_same(changed, exact(chan, "linux-64", chan_dir))


def test_local_channel_index_is_rebuilt_when_the_file_changes(tmp_path: Path, cache_env) -> None:
    chan_dir = _synth().write_channel(tmp_path / "chan", 1500, seed=5)
    chan = resolve_channel(str(chan_dir), tmp_path)
    session = make_session()
    load_channel_indexes([chan], "linux-64", session)
    idx_files = sorted((cache_env / "repodata").glob("local-*.index"))
    assert len(idx_files) == 2
    # a local plain-JSON channel's index points into the file itself: it holds no copy of it
    assert sum(p.stat().st_size for p in idx_files) < (chan_dir / "linux-64" / "repodata.json").stat().st_size / 2
    rd = chan_dir / "linux-64" / "repodata.json"
    d = json.loads(rd.read_bytes())
    victim = next(iter(d["packages.conda"]))
    name = d["packages.conda"][victim]["name"]
    del d["packages.conda"][victim]
    rd.write_text(json.dumps(d))
    index = load_channel_indexes([chan], "linux-64", session)[0]
    assert victim not in {r.fn for r in index.get(name, [])}
    assert_same(index, exact(chan, "linux-64"))


GARBAGE = [
    b"",
    b"not json",
    b"[1, 2, 3]",
    b'{"packages": []}',
    b'{"packages": {"a-1-0.tar.bz2": {"name": "a", "version": 1, "build": "0"}}}',
    b'{"packages": {"a-1-0.tar.bz2": {"name": "a", "version": "1", "build": "0", "depends": "python"}}}',
    b'{"packages": {"a-1-0.tar.bz2": {"version": "1", "build": "0"}}}',
    b'{"packages": {"a-1-0.tar.bz2": {"name": "a", "version": "1", "build": "0", "build_number": "x"}}}',
    b'{"packages": {"a-1-0.tar.bz2": {"name": "a", "version": "1", "build": "0", "x": ]}}}',
    b'{"packages": {"a-1-0.tar.bz2": {"name": "a", "version": "1", "build": "0"}, "a-1-0.tar.bz2": 3}}',
    b'{"info": {"base_url": 7}, "packages": {}}',
    b'\x28\xb5\x2f\xfdgarbage',
]


def test_garbage_repodata_is_a_channel_error(tmp_path: Path, serve_dir, cache_env) -> None:
    for i, body in enumerate(GARBAGE):
        (tmp_path / f"c{i}" / "linux-64").mkdir(parents=True)
        (tmp_path / f"c{i}" / "linux-64" / "repodata.json").write_bytes(body)
    server = serve_dir(tmp_path)
    for i, body in enumerate(GARBAGE):
        for chan in (http_channel(f"{server.url}/c{i}"), resolve_channel(str(tmp_path / f"c{i}"), tmp_path)):
            with pytest.raises(ChannelError) as ei:
                exact(chan, "linux-64", tmp_path / f"c{i}")
            want = str(ei.value)
            with pytest.raises(ChannelError) as ei:  # at open, or when the broken name is looked up
                for index in load_channel_indexes([chan], "linux-64", make_session()):
                    for name in index:
                        index[name]
            msg = str(ei.value)
            assert "\n" not in msg and f"{chan.url}/linux-64/repodata.json" in msg, body
            if b'"x": ]' not in body:
                assert msg == want, body


def test_braces_and_names_inside_strings(tmp_path: Path, cache_env) -> None:
    """Repodata the fast cut must not trust (braces or "name" inside strings, nested objects, escapes) still gives
    exactly the exact parse's records."""
    entry = {"version": "1", "build": "0", "build_number": 0, "depends": ["b >=1"], "subdir": "linux-64"}
    variants = [
        {"license": "}"}, {"license": "{"}, {"license": 'a "name": "x" }{'}, {"license": "name"},
        {"license": "\\}\"name\": \"zz\""}, {"summary": "caf\u00e9"}, {"extra": {"name": "nested"}},
    ]
    session = make_session()
    for i, extra in enumerate(variants):
        pk = {f"a-1-{k}.conda": dict(entry, name="a", build=str(k), **extra) for k in range(3)}
        pk["b-1-0.conda"] = dict(entry, name="b", depends=[])
        (tmp_path / f"c{i}" / "linux-64").mkdir(parents=True)
        for layout in (None, 2):
            body = json.dumps({"info": {"subdir": "linux-64"}, "packages.conda": pk}, indent=layout)
            (tmp_path / f"c{i}" / "linux-64" / "repodata.json").write_text(body)
            chan = resolve_channel(str(tmp_path / f"c{i}"), tmp_path)
            full = exact(chan, "linux-64")
            assert len(full) == 4
            assert_same(load_channel_indexes([chan], "linux-64", session)[0], full)
            assert_same(load_channel_indexes([chan], "linux-64", session)[0], full)


def test_damaged_index_file_is_rebuilt(realdata: Path, tmp_path: Path, serve_dir, cache_env) -> None:
    chan_dir = _copy_channel(realdata / PYPI_CHANNEL, tmp_path / "chan")
    server = serve_dir(chan_dir)
    chan = http_channel(server.url)
    full = exact(chan, "linux-64", chan_dir)
    load_channel_indexes([chan], "linux-64", make_session())
    files = sorted((cache_env / "repodata").glob("*.index"), key=lambda p: p.stat().st_size)
    big = files[-1]
    good = big.read_bytes()
    # truncated: not opened at all, rebuilt from the cached JSON
    big.write_bytes(good[: len(good) // 2])
    assert_same(load_channel_indexes([chan], "linux-64", make_session())[0], full)
    assert big.read_bytes() == good
    # same size, a per-name table scribbled over: found when that name is read, then rebuilt
    hlen = int.from_bytes(good[8:16], "little")
    hdr = orjson.loads(good[16:16 + hlen])
    body_at = 16 + hlen + hdr["body_offset"]
    big.write_bytes(good[:16 + hlen] + b"\xff" * (body_at - 16 - hlen) + good[body_at:])
    assert_same(load_channel_indexes([chan], "linux-64", make_session())[0], full)
    assert big.read_bytes() == good


def test_skeleton_cut_on_synthetic_and_real_repodata(realdata: Path, tmp_path: Path) -> None:
    """The fast cut (msgspec skeleton) takes conda-index's layouts; real files it declines still go the exact way."""
    chan_dir = _synth().write_channel(tmp_path / "chan", 3000, seed=7)
    body = (chan_dir / "linux-64" / "repodata.json").read_bytes()
    sk = cut(body)
    assert sk is not None
    assert sorted(j for n in sk.table for j in sk.table[n]) == list(range(sum(c for _, c, _ in sk.locator["sections"])))
    raw = json.loads(body)
    for name in list(sk.table)[:50]:
        got = entries(body, sk.locator, sk.table[name])
        assert got is not None
        fns, objs = got
        assert [raw["packages" if fn.endswith(".tar.bz2") else "packages.conda"][fn] for fn in fns] == objs
        assert {e["name"] for e in objs} == {name}
    took = sum(cut(f.read_bytes()) is not None for f in real_repodata_files(realdata))
    assert took >= 20


def _entry(name: str, build: str) -> dict:
    return {"name": name, "version": "1", "build": build, "build_number": 0, "depends": [], "subdir": "linux-64"}


@pytest.mark.parametrize("case", ["escaped-key", "escaped-first-key", "quote-in-key", "duplicate-key", "nested-fn-key",
                                  "info-object", "brace-in-key", "many-sections", "no-info"])
def test_skeleton_declines_or_recovers_where_a_plain_search_is_wrong(tmp_path: Path, cache_env, case: str) -> None:
    """Documents where walking over the "{" could find the wrong bytes, or where the key before an entry is not
    plain: the records are still exactly the exact parse's, cold and warm (declined at the cut, or a lookup that
    cannot read an entry back is redone the exact way)."""
    STRIDE = 64
    n = STRIDE * 3 + 5
    fns = [f"a-1-{k}.conda" for k in range(n)]
    pk = ",".join(f'"{fn}": {json.dumps(_entry("a" if k % 2 else "b", str(k)))}' for k, fn in enumerate(fns))
    info = '"info": {"subdir": "linux-64"}'
    if case == "escaped-key":  # not at a checkpoint: found missing when looked up
        pk = pk.replace(f'"{fns[STRIDE + 3]}"', '"a\\u002d1-' + str(STRIDE + 3) + '.conda"')
    elif case == "quote-in-key":  # not at a checkpoint: the key before its "{" cannot be read back, so exactly
        pk = pk.replace(f'"{fns[STRIDE + 3]}"', '"a\\"1-' + str(STRIDE + 3) + '.conda"')
    elif case == "escaped-first-key":
        pk = pk.replace(f'"{fns[0]}"', '"a\\u002d1-0.conda"')
    elif case == "duplicate-key":  # the last one counts, as in every JSON reader conda uses
        pk += f', "{fns[STRIDE + 3]}": {json.dumps(_entry("b", "dup"))}'
    elif case == "nested-fn-key":
        pk = pk.replace('"subdir": "linux-64"}', f'"subdir": "linux-64", "x": {{"{fns[STRIDE + 9]}": {{}}}}}}', 1)
    elif case == "info-object":
        info = f'"info": {{"subdir": "linux-64", "extra": {{"{fns[1]}": {{"name": "b"}}}}}}'
    elif case == "brace-in-key":
        pk = pk.replace('"subdir": "linux-64"}', '"subdir": "linux-64", "{": 1}', 1)
    body = f'{{{info}, "packages.conda": {{{pk}}}}}'
    if case == "no-info":
        body = f'{{"packages.conda": {{{pk}}}}}'
    if case == "many-sections":
        body = (f'{{"packages": {{"c-1-0.tar.bz2": {json.dumps(_entry("c", "0"))}}}, {info}, '
                f'"packages.conda": {{{pk}}}}}')
    (tmp_path / "c" / "linux-64").mkdir(parents=True)
    (tmp_path / "c" / "linux-64" / "repodata.json").write_text(body)
    chan = resolve_channel(str(tmp_path / "c"), tmp_path)
    full = exact(chan, "linux-64")
    for _ in ("cold", "warm"):
        assert_same(load_channel_indexes([chan], "linux-64", make_session())[0], full)
    declined = case in ("duplicate-key", "nested-fn-key", "info-object", "brace-in-key")
    assert (cut(body.encode()) is None) == declined


@pytest.mark.parametrize("order", ["sorted", "shuffled"])
def test_name_table_groups_entry_numbers_and_reads_back_in_place(order: str) -> None:
    import random

    names = [f"n{k // 7}" for k in range(700)] + ["n3", "n0"]  # runs, and a name met again later
    if order == "shuffled":
        random.Random(1).shuffle(names)
    want: dict[str, list[int]] = {}
    for j, n in enumerate(names):
        want.setdefault(n, []).append(j)
    table = NameTable.build(names)
    assert dict(table.items()) == want
    index, runs, (raw,) = table.parts()
    again = NameTable.from_region(orjson.loads(orjson.dumps(index)), runs, memoryview(bytes(raw)), len(names))
    assert dict(again.items()) == want
    damaged = bytearray(raw)
    damaged[4:8] = b"\xff\xff\xff\xff"  # a run as long as the address space: refused, not expanded
    bad = NameTable.from_region(index, runs, memoryview(bytes(damaged)), len(names))
    with pytest.raises(ValueError):
        [bad[n] for n in bad]
