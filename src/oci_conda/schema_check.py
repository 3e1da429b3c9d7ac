"""A quick yes/no for our own JSON schemas, so that a valid file never loads ``jsonschema``.

Importing ``jsonschema`` costs about 0.1 s (its format checkers pull in arrow, isoduration, rfc3986 ...), more than
every other step of a build whose layers are all memoised. Environment files and locks are nearly always valid, so
:func:`is_valid` answers the common case with the subset of JSON Schema 2020-12 that ``schemas/*.json`` use, with
``jsonschema``'s own semantics (``1.0`` is an integer, ``True`` is not a number, ``pattern`` is ``re.search``,
``enum``/``const`` keep ``True`` and ``1`` apart). Its True is exact; False means "invalid, or a keyword this subset
does not know": the caller then asks ``jsonschema``, which names the errors.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

#: Keywords that only describe (they never make a document invalid).
_ANNOTATIONS = frozenset({"$schema", "$id", "$defs", "$comment", "title", "description", "default", "examples"})


class _Unknown(Exception):
    """The schema uses something this subset does not check."""


def is_valid(schema: Mapping[str, Any], doc: object) -> bool:
    """True only when ``doc`` is valid under ``schema``; False when it is not, or when this subset cannot tell."""
    try:
        return _valid(schema, doc, schema)
    except _Unknown:
        return False


def _is_type(instance: object, name: str) -> bool:
    if name == "object":
        return isinstance(instance, dict)
    if name == "array":
        return isinstance(instance, list)
    if name == "string":
        return isinstance(instance, str)
    if name == "boolean":
        return isinstance(instance, bool)
    if name == "null":
        return instance is None
    if isinstance(instance, bool):
        return False
    if name == "integer":
        return isinstance(instance, int) or (isinstance(instance, float) and instance.is_integer())
    if name == "number":
        return isinstance(instance, (int, float))
    raise _Unknown(name)


def _equal(one: object, two: object) -> bool:
    """JSON equality: ``True`` is not ``1``, ``1`` is ``1.0``, containers compare element by element."""
    if one is two:
        return True
    if isinstance(one, str) or isinstance(two, str):
        return one == two
    if isinstance(one, list) and isinstance(two, list):
        return len(one) == len(two) and all(_equal(a, b) for a, b in zip(one, two))
    if isinstance(one, dict) and isinstance(two, dict):
        return one.keys() == two.keys() and all(_equal(one[k], two[k]) for k in one)
    if isinstance(one, (list, dict)) or isinstance(two, (list, dict)):
        return False
    if isinstance(one, bool) or isinstance(two, bool):
        return one is two
    return one == two


def _resolve(ref: str, root: Mapping[str, Any]) -> object:
    if not ref.startswith("#/"):
        raise _Unknown(ref)
    node: object = root
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        if not isinstance(node, Mapping) or part not in node:
            raise _Unknown(ref)
        node = node[part]
    return node


def _valid(schema: object, inst: object, root: Mapping[str, Any]) -> bool:
    if schema is True:
        return True
    if schema is False:
        return False
    if not isinstance(schema, Mapping):
        raise _Unknown(repr(schema))
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        check = _KEYWORDS.get(key)
        if check is None:
            raise _Unknown(key)
        if not check(value, inst, schema, root):
            return False
    return True


def _type(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    names = [value] if isinstance(value, str) else value
    return any(_is_type(inst, n) for n in names)


def _properties(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if not isinstance(inst, dict):
        return True
    return all(_valid(sub, inst[k], root) for k, sub in value.items() if k in inst)


def _pattern_properties(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if not isinstance(inst, dict):
        return True
    return all(_valid(sub, v, root) for pat, sub in value.items() for k, v in inst.items() if re.search(pat, k))


def _additional_properties(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if not isinstance(inst, dict):
        return True
    known = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [k for k in inst if k not in known and not any(re.search(p, k) for p in patterns)]
    return all(_valid(value, inst[k], root) for k in extras)


def _property_names(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, dict) or all(_valid(value, k, root) for k in inst)


def _required(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, dict) or all(k in inst for k in value)


def _min_properties(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, dict) or len(inst) >= value


def _max_properties(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, dict) or len(inst) <= value


def _items(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    if not isinstance(inst, list):
        return True
    if not isinstance(value, (Mapping, bool)):
        raise _Unknown("items as a list")  # draft 2019 and older; 2020-12 says prefixItems
    return all(_valid(value, item, root) for item in inst[len(schema.get("prefixItems", ())):])


def _prefix_items(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, list) or all(_valid(sub, item, root) for sub, item in zip(value, inst))


def _min_items(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, list) or len(inst) >= value


def _max_items(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, list) or len(inst) <= value


def _min_length(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, str) or len(inst) >= value


def _max_length(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, str) or len(inst) <= value


def _pattern(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not isinstance(inst, str) or re.search(value, inst) is not None


def _minimum(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not _is_type(inst, "number") or not inst < value  # type: ignore[operator]


def _enum(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return any(_equal(inst, v) for v in value)


def _const(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return _equal(inst, value)


def _ref(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return _valid(_resolve(value, root), inst, root)


def _one_of(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return sum(_valid(sub, inst, root) for sub in value) == 1


def _any_of(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return any(_valid(sub, inst, root) for sub in value)


def _all_of(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return all(_valid(sub, inst, root) for sub in value)


def _not(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return not _valid(value, inst, root)


def _if(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    branch = "then" if _valid(value, inst, root) else "else"
    return _valid(schema.get(branch, True), inst, root)


def _then_else(value: Any, inst: object, schema: Mapping[str, Any], root: Mapping[str, Any]) -> bool:
    return True  # the branch "if" picks is checked there; without "if" they mean nothing


_KEYWORDS = {
    "type": _type,
    "properties": _properties,
    "patternProperties": _pattern_properties,
    "additionalProperties": _additional_properties,
    "propertyNames": _property_names,
    "required": _required,
    "minProperties": _min_properties,
    "maxProperties": _max_properties,
    "items": _items,
    "prefixItems": _prefix_items,
    "minItems": _min_items,
    "maxItems": _max_items,
    "minLength": _min_length,
    "maxLength": _max_length,
    "pattern": _pattern,
    "minimum": _minimum,
    "enum": _enum,
    "const": _const,
    "$ref": _ref,
    "oneOf": _one_of,
    "anyOf": _any_of,
    "allOf": _all_of,
    "not": _not,
    "if": _if,
    "then": _then_else,
    "else": _then_else,
}

__all__ = ["is_valid"]
