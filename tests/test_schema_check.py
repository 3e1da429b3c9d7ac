"""schema_check.is_valid against jsonschema itself: the same answer on our two schemas, for real files and for
documents hypothesis makes from valid ones and from the schemas' own keys and types (its True must never let an invalid
file through; its False costs only the jsonschema import)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realenv import oci_conda

from oci_conda.schema_check import is_valid

SCHEMAS = Path(__file__).resolve().parents[1] / "src" / "oci_conda" / "schemas"
EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / f"{name}.schema.json").read_text())


_VALIDATORS: dict[str, Any] = {}


def _jsonschema_valid(schema: dict[str, Any], doc: object) -> bool:
    key = json.dumps(schema, sort_keys=True)
    if key not in _VALIDATORS:
        _VALIDATORS[key] = jsonschema.validators.validator_for(schema)(schema)
    return not any(_VALIDATORS[key].iter_errors(doc))


def _walk(node: object, keys: set[str], enums: list[object]) -> None:
    if isinstance(node, dict):
        for k, v in node.items():
            if k in ("properties", "patternProperties"):
                keys.update(v)
            if k in ("enum",):
                enums.extend(v)
            if k == "const":
                enums.append(v)
            _walk(v, keys, enums)
    elif isinstance(node, list):
        for v in node:
            _walk(v, keys, enums)


def _strings(node: object) -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_strings(v) | {k} for k, v in node.items())) if node else set()
    if isinstance(node, list):
        return set().union(*(_strings(v) for v in node)) if node else set()
    return {node} if isinstance(node, str) else set()


def _documents(schema: dict[str, Any], doc: object = None) -> st.SearchStrategy[object]:
    """JSON values built from the schema's property names, the strings of a valid ``doc`` (they match the schema's
    patterns), its enum values and the awkward scalars (1.0, True, None, nan, long strings)."""
    keys: set[str] = set()
    enums: list[object] = []
    _walk(schema, keys, enums)
    keys |= {"sel(linux)", "sel(mac)", "pip", "x"}
    texts = st.one_of(st.sampled_from(sorted(keys | _strings(doc))), st.text(max_size=8), st.just("x" * 300))
    scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.sampled_from([1.0, 2.5, -1.0, math.nan]),
                        texts, st.sampled_from(enums or [None]))
    values = st.recursive(scalars, lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=5)), max_leaves=25)
    return st.dictionaries(st.sampled_from(sorted(keys)), values, max_size=6)


def _paths(node: object, at: tuple = ()) -> list[tuple]:
    out = [at]
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, at + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, at + (i,))
    return out


def _mutated(doc: object, schema: dict[str, Any]) -> st.SearchStrategy[object]:
    """``doc`` with one value somewhere replaced, one key or item removed, or one key added: near-misses and
    near-hits of a valid document, where a wrong answer would hide."""
    paths = _paths(doc)
    values = _documents(schema, doc)

    @st.composite
    def one(draw: st.DrawFn) -> object:
        new = json.loads(json.dumps(doc))
        path = draw(st.sampled_from(paths))
        action = draw(st.sampled_from(["replace", "delete", "add"]))
        if not path:
            return draw(values)
        parent = new
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        if action == "delete":
            del parent[last]
        elif action == "add" and isinstance(parent[last], dict):
            parent[last][draw(st.sampled_from(["x", "name", "pip", "sel(linux)", "packages", "sha256"]))] = \
                draw(values)
        else:
            parent[last] = draw(st.one_of(values, st.just(None), st.just("x" * 300), st.just(1.0), st.just(True)))
        return new

    return one()


@pytest.fixture(scope="module")
def valid_docs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    """A real lock, made by ``oci-conda lock`` from the hello example, and the hello environment file."""
    tmp = tmp_path_factory.mktemp("lock")
    env = tmp / "environment.yml"
    env.write_text(f"name: hello\nchannels: [{EXAMPLES / 'hello' / 'channel'}]\ndependencies: [hello]\n"
                   "image:\n  entrypoint: [/opt/conda/bin/hello]\n  labels: {a: b}\n")
    oci_conda("lock", str(env), "-o", str(tmp / "oci-conda.lock"), "-q",
              env={**os.environ, "OCI_CONDA_CACHE": str(tmp / "cache")})
    return {"lock": json.loads((tmp / "oci-conda.lock").read_text()),
            "environment": yaml.safe_load(env.read_text())}


@pytest.mark.parametrize("name", ["environment", "lock"])
def test_agrees_with_jsonschema(name: str, valid_docs: dict[str, object]) -> None:
    schema = _schema(name)
    doc = valid_docs[name]
    assert is_valid(schema, doc) and _jsonschema_valid(schema, doc)
    seen = {True: 0, False: 0}

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.one_of(_mutated(doc, schema), _documents(schema, doc)))
    def check(doc: object) -> None:
        valid = _jsonschema_valid(schema, doc)
        seen[valid] += 1
        assert is_valid(schema, doc) == valid, doc

    check()
    assert seen[True] and seen[False], seen  # both answers were exercised


def test_real_environment_files_take_the_quick_path() -> None:
    schema = _schema("environment")
    files = sorted(EXAMPLES.rglob("*.yml"))
    assert files
    for f in files:
        doc = yaml.safe_load(f.read_text())
        assert is_valid(schema, doc) and _jsonschema_valid(schema, doc), f
    doc = {"name": "x", "channels": ["conda-forge"], "dependencies": ["python=3.12", {"pip": ["requests"]},
                                                                    {"sel(linux)": "libgcc"}],
           "image": {"base": "scratch", "env": {"A": "1"}, "labels": {"a": "b"}}}
    assert _jsonschema_valid(schema, doc) and is_valid(schema, doc)


def test_json_semantics() -> None:
    assert is_valid({"type": "integer"}, 1.0) and not is_valid({"type": "integer"}, True)
    assert not is_valid({"type": "number"}, False) and is_valid({"type": "number"}, 2.5)
    assert not is_valid({"enum": [1]}, True) and is_valid({"enum": [1]}, 1.0) and is_valid({"const": True}, True)
    assert is_valid({"pattern": "b"}, "abc") and not is_valid({"pattern": "^b"}, "abc")  # re.search, as jsonschema
    assert is_valid({"minimum": 0}, "text") and not is_valid({"minimum": 0}, -1)


def test_unknown_keywords_answer_no() -> None:
    """A keyword the subset does not check ("format", "uniqueItems") sends the caller to jsonschema."""
    assert not is_valid({"type": "string", "format": "date"}, "2024-01-01")
    assert not is_valid({"type": "array", "uniqueItems": True}, [1, 2])
    assert not is_valid({"$ref": "other.json#/x"}, 1)
    assert is_valid({"description": "only words", "title": "t"}, {"anything": 1})
