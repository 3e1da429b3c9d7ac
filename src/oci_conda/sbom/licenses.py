"""Declared licenses as SPDX license expressions.

Conda records carry whatever the recipe author wrote (``MIT``, ``BSD 3-Clause``, ``GPL-2.0-or-later WITH
GCC-exception-3.1``, ``Proprietary``...). A string that is a valid SPDX expression (ids from the SPDX license list
in ``schemas/spdx-license-list.json``, matched without regard to case) is normalised to the list's spelling; anything
else is not guessed at: the writers record it verbatim as a ``LicenseRef`` (SPDX) or a license name (CycloneDX).
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from pathlib import Path

LIST_PATH = Path(__file__).resolve().parent.parent / "schemas" / "spdx-license-list.json"
_TOKEN = re.compile(r"\s*(\(|\)|[A-Za-z0-9.+:-]+)")
_REF = re.compile(r"^(DocumentRef-[A-Za-z0-9.-]+:)?LicenseRef-[A-Za-z0-9.-]+$")


@functools.cache
def _ids() -> tuple[dict[str, str], dict[str, str]]:
    data = json.loads(LIST_PATH.read_text())
    return ({x.lower(): x for x in data["licenses"]}, {x.lower(): x for x in data["exceptions"]})


def _tokens(s: str) -> list[str] | None:
    out, pos = [], 0
    s = s.strip()
    while pos < len(s):
        m = _TOKEN.match(s, pos)
        if not m or m.end() == pos:
            return None
        out.append(m.group(1))
        pos = m.end()
        while pos < len(s) and s[pos].isspace():
            pos += 1
    return out


class _Parser:
    """Recursive descent over ``expr := term (OR term)*; term := factor (AND factor)*;
    factor := '(' expr ')' | id ['+'] [WITH exception]`` producing the normalised text."""

    def __init__(self, toks: list[str]):
        self.toks, self.i = toks, 0
        self.licenses, self.exceptions = _ids()

    def peek(self) -> str | None:
        return self.toks[self.i] if self.i < len(self.toks) else None

    def take(self) -> str:
        t = self.toks[self.i]
        self.i += 1
        return t

    def expr(self) -> str:
        parts = [self.term()]
        while (self.peek() or "").upper() == "OR":
            self.take()
            parts.append(self.term())
        return " OR ".join(parts)

    def term(self) -> str:
        parts = [self.factor()]
        while (self.peek() or "").upper() == "AND":
            self.take()
            parts.append(self.factor())
        return " AND ".join(parts)

    def factor(self) -> str:
        t = self.peek()
        if t is None:
            raise ValueError("unexpected end")
        if t == "(":
            self.take()
            inner = self.expr()
            if self.peek() != ")":
                raise ValueError("unbalanced parenthesis")
            self.take()
            return f"({inner})"
        if t.upper() in ("AND", "OR", "WITH") or t == ")":
            raise ValueError(f"unexpected {t}")
        self.take()
        plus = t.endswith("+")
        base = t[:-1] if plus else t
        if _REF.match(base):
            lic = base
        else:
            lic = self.licenses.get(base.lower())
            if lic is None:
                raise ValueError(f"unknown license id {base}")
        lic += "+" if plus else ""
        if (self.peek() or "").upper() == "WITH":
            self.take()
            exc = self.exceptions.get((self.peek() or "").lower())
            if exc is None:
                raise ValueError("unknown exception")
            self.take()
            lic += f" WITH {exc}"
        return lic


def spdx_expression(declared: str | None) -> str | None:
    """The SPDX expression ``declared`` denotes, in the license list's spelling, or None when it is not one.
    A single name written with spaces for hyphens (``Apache 2.0``, ``BSD 3-Clause``) is read as that id."""
    if not declared or not declared.strip():
        return None
    for candidate in (declared, re.sub(r"\s+", "-", declared.strip())):
        toks = _tokens(candidate)
        if not toks:
            continue
        p = _Parser(toks)
        try:
            out = p.expr()
        except (ValueError, IndexError):
            continue
        if p.i == len(toks):
            return out
    return None


def license_ref(declared: str) -> str:
    """A stable ``LicenseRef-`` id for a license text that is not an SPDX expression: readable, plus a short hash
    so two different texts never share an id."""
    slug = re.sub(r"[^A-Za-z0-9.]+", "-", declared).strip("-")[:40] or "unknown"
    return f"LicenseRef-{slug}-{hashlib.sha256(declared.encode()).hexdigest()[:8]}"
