"""What ``conda activate`` would set, worked out at build time without running anything of the target.

Packages set variables in ``etc/conda/activate.d/*.sh`` (GDAL_DATA, PROJ_DATA, JAVA_HOME, ...). A container does not
run ``conda activate``, so an image whose ``Env`` lacks them misbehaves. Most scripts are static: ``export
VAR=value`` with ``$CONDA_PREFIX`` in the value, wrapped in conda-forge's "save the old value" idiom. Those we
evaluate here (a small, strict subset of POSIX sh: anything else marks the script as dynamic) and the variables go
into the image config. Dynamic scripts need a shell at start-up: ``image.activate: script`` adds an entrypoint wrapper
that sources them; otherwise the build warns and names them.

conda's ``env config vars`` live in ``conda-meta/state`` as ``{"env_vars": {...}}``; they are applied after the
scripts, as ``conda activate`` does.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Iterable, Mapping

ACTIVATE_DIR = "etc/conda/activate.d/"
STATE_FILE = "conda-meta/state"
WRAPPER_PATH = "etc/oci-conda/activate-entrypoint.sh"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_ASSIGN_RE = re.compile(rf"^(?:export\s+)?({_NAME})=(.*)$")
_EXPORT_ONLY_RE = re.compile(rf"^export((?:\s+{_NAME})+)$")
_IF_RE = re.compile(r"^if\s+(.*?);?\s*(then)?$")
_TEST_SET_RE = re.compile(rf'^\[\[?\s+-n\s+"?\$\{{?({_NAME})(?::-)?\}}?"?\s+\]\]?$')
_VAR_RE = re.compile(rf"\$(?:\{{({_NAME})(?::?-([^}}]*))?\}}|({_NAME}))")
#: Variables conda-forge scripts use to remember a previous value; they mean nothing in a fresh container.
_PRIVATE_PREFIXES = ("_CONDA_", "CONDA_BACKUP_", "_CONDA_SET_", "_CONDA_BACKUP_")
MAX_SCRIPT = 256 * 1024


@dataclass
class Activation:
    """The result: variables to put into the image ``Env`` (in order) and the scripts that could not be evaluated."""

    env: dict[str, str] = field(default_factory=dict)
    static_scripts: list[str] = field(default_factory=list)
    dynamic_scripts: list[str] = field(default_factory=list)
    wrapper: bool = False  # the image's entrypoint sources the dynamic scripts (set by the build)


class _Dynamic(Exception):
    """The script uses something this evaluator does not model; it must be sourced at start-up instead."""


def activation_scripts(paths: Iterable[str]) -> list[str]:
    """The POSIX activation scripts among prefix-relative ``paths``, in the order conda sources them (sorted)."""
    return sorted(p for p in paths if p.startswith(ACTIVATE_DIR) and p.endswith(".sh") and "/" not in
                  p[len(ACTIVATE_DIR):])


def evaluate(scripts: Mapping[str, bytes], prefix: str, base_env: Mapping[str, str] | None = None,
             state: bytes | None = None) -> Activation:
    """Evaluate ``scripts`` (prefix-relative path -> contents) in conda's order on top of ``base_env``.

    A script is applied only if all of it is static, so an image never gets half of a script's effect.
    """
    env: dict[str, str] = dict(base_env or {})
    env["CONDA_PREFIX"] = prefix
    result = Activation()
    for path in activation_scripts(scripts):
        data = scripts[path]
        try:
            changes = _evaluate_script(data, env)
        except _Dynamic:
            result.dynamic_scripts.append(path)
            continue
        result.static_scripts.append(path)
        for k, v in changes.items():
            env[k] = v
            result.env[k] = v
    for k, v in state_env_vars(state).items():
        env[k] = v
        result.env[k] = v
    result.env.pop("CONDA_PREFIX", None)
    return result


def state_env_vars(state: bytes | None) -> dict[str, str]:
    """``env_vars`` of a ``conda-meta/state`` file (``conda env config vars set``); empty when absent or malformed."""
    if not state:
        return {}
    try:
        doc = json.loads(state[:MAX_SCRIPT])
    except (ValueError, UnicodeDecodeError):
        return {}
    vars_ = doc.get("env_vars") if isinstance(doc, dict) else None
    if not isinstance(vars_, dict):
        return {}
    return {k: v for k, v in sorted(vars_.items()) if isinstance(k, str) and re.fullmatch(_NAME, k)
            and isinstance(v, str) and "\0" not in v}


def wrapper_script(prefix: str, scripts: Iterable[str]) -> bytes:
    """An entrypoint that sources the activation scripts and then runs the command (``image.activate: script``)."""
    lines = ["#!/bin/sh", "# written by oci-conda: activate the environment, then run the command",
             f"CONDA_PREFIX={shlex.quote(prefix)}", "export CONDA_PREFIX"]
    for s in scripts:
        lines.append(f". {shlex.quote(prefix + '/' + s)}")
    lines.append('exec "$@"')
    return ("\n".join(lines) + "\n").encode()


def _evaluate_script(data: bytes, env: Mapping[str, str]) -> dict[str, str]:
    if len(data) > MAX_SCRIPT:
        raise _Dynamic
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise _Dynamic from None
    local = dict(env)
    changes: dict[str, str] = {}
    lines = _logical_lines(text)
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        m = _IF_RE.match(line)
        if m:
            i = _skip_save_block(lines, i, m)
            continue
        for stmt in _statements(line):
            _apply(stmt, local, changes)
    return changes


def _logical_lines(text: str) -> list[str]:
    out: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if pending:
            line = pending + " " + line
            pending = ""
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        if not line or line.startswith("#"):
            continue
        out.append(line)
    if pending:
        raise _Dynamic
    return out


def _statements(line: str) -> list[str]:
    """Split on ``;`` outside quotes (``A=1; export A``)."""
    parts: list[str] = []
    cur: list[str] = []
    quote = ""
    for ch in line:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
            cur.append(ch)
        elif ch == ";":
            parts.append("".join(cur).strip())
            cur = []
        elif ch == "#" and (not cur or cur[-1].isspace()):
            break
        else:
            cur.append(ch)
    if quote:
        raise _Dynamic
    parts.append("".join(cur).strip())
    return [p for p in parts if p]


def _skip_save_block(lines: list[str], i: int, m: re.Match[str]) -> int:
    """conda-forge's ``if [ -n "$VAR" ]; then export _CONDA_SET_VAR=$VAR; fi``: only private variables inside."""
    if not _TEST_SET_RE.match(m.group(1).strip()):
        raise _Dynamic
    if not m.group(2):
        if i >= len(lines) or lines[i] != "then":
            raise _Dynamic
        i += 1
    while i < len(lines):
        line = lines[i]
        i += 1
        if line == "fi":
            return i
        for stmt in _statements(line):
            am = _ASSIGN_RE.match(stmt)
            if not am or not am.group(1).startswith(_PRIVATE_PREFIXES):
                raise _Dynamic
    raise _Dynamic


def _apply(stmt: str, local: dict[str, str], changes: dict[str, str]) -> None:
    if _EXPORT_ONLY_RE.match(stmt):
        for name in stmt.split()[1:]:
            if name in local and not name.startswith(_PRIVATE_PREFIXES):
                changes[name] = local[name]
        return
    m = _ASSIGN_RE.match(stmt)
    if not m:
        raise _Dynamic
    name, raw = m.group(1), m.group(2)
    value = _expand_word(raw, local)
    local[name] = value
    if name.startswith(_PRIVATE_PREFIXES) or name == "CONDA_PREFIX":
        return
    if stmt.startswith("export") or name in changes:
        changes[name] = value  # a plain assignment is exported only by a later ``export NAME``


def _expand_word(raw: str, env: Mapping[str, str]) -> str:
    """Expand one shell word: quotes, ``$VAR``, ``${VAR}``, ``${VAR:-default}``; refuse command substitution."""
    if "`" in raw or "$(" in raw:
        raise _Dynamic
    out: list[str] = []
    i = 0
    while i < len(raw):
        ch = raw[i]
        if ch == "'":
            end = raw.find("'", i + 1)
            if end < 0:
                raise _Dynamic
            out.append(raw[i + 1:end])
            i = end + 1
        elif ch == '"':
            end = raw.find('"', i + 1)
            if end < 0:
                raise _Dynamic
            out.append(_expand_vars(raw[i + 1:end], env))
            i = end + 1
        elif ch.isspace():
            raise _Dynamic  # several words: not a plain assignment
        elif ch == "\\":
            if i + 1 >= len(raw):
                raise _Dynamic
            out.append(raw[i + 1])
            i += 2
        else:
            j = i
            while j < len(raw) and raw[j] not in "'\"\\" and not raw[j].isspace():
                j += 1
            out.append(_expand_vars(raw[i:j], env))
            i = j
    return "".join(out)


def _expand_vars(text: str, env: Mapping[str, str]) -> str:
    if "\\" in text and '"' not in text:
        text = text.replace('\\"', '"')

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(3)
        if name in env and env[name] != "":
            return env[name]
        if m.group(2) is not None:
            return _expand_vars(m.group(2), env)
        if name in env:
            return ""
        raise _Dynamic  # depends on the runtime environment (e.g. $HOME)

    if "$" in _VAR_RE.sub("", text):
        raise _Dynamic  # $$, $1, $@ and friends: runtime values
    return _VAR_RE.sub(repl, text)
