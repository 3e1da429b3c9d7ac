"""The module map (../shared/ARCHITECTURE.md, issue 10) as checks on the source, read with ``ast`` (nothing imported).

Rules, one test each; a failure lists every violation as ``path:line: rule: detail``:

- no import circles among ``src/oci_conda`` modules (every runtime import counts, function-local ones too; imports
  under ``if TYPE_CHECKING:`` do not);
- imports point down the map: ``LAYERS`` below, a module may import its own layer or lower ones; within the package
  managers and the image library, ``conda/``, ``pypi/`` and ``oci/`` never import each other, except that ``pypi/`` may
  use ``conda.records`` and ``conda.version``; every top-level module has a place on the map;
- no function-local imports of project modules, and function-local imports of anything else only for the optional,
  slow-to-import dependencies in ``LOCAL_IMPORT_OK``;
- no module (in src or tests) takes another module's ``_private`` name: ``from X import _y``, ``X._y``,
  ``setattr(X, "_y", ...)``, or a ``_private`` module from outside its package;
- no ``Any`` where a project type exists: public functions' parameters named as in ``PROJECT_TYPED`` are typed;
- argparse stops at ``cli.py``/``commands.py``: no other module imports it or takes the parsed ``args``;
- test modules share code through conftest.py and helper modules, never by importing another ``test_*`` module.

``python3 tests/test_architecture.py [SRC_DIR]`` prints the counts per rule, module sizes and the longest functions
(the figures for the issue's before/after note).
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
TESTS = ROOT / "tests"
PKG = "oci_conda"

#: Top-level modules by layer, highest first (``ARCHITECTURE.md``). A module may import modules of its own layer or
#: of a lower one. ``conda/``, ``pypi/``, ``oci/`` are layer 2 and ``layers/`` layer 3, whatever their modules.
LAYERS: dict[str, int] = {
    "__main__": 9, "entry": 8,
    "cli": 7,
    "commands": 6,
    "resolve": 5, "build": 5, "bundle": 5, "inspect_image": 5, "pack_prefix": 5, "pip_stage": 5,
    # build.py's per-package path and the layer blobs both of its paths end in (build -> stage -> layer_blobs)
    "stage": 5, "layer_blobs": 5,
    # sbom/*, sign/* : 5
    # models and settings the stages share: the lock model sits beside the options that it records
    "options": 4, "spec": 4, "lockfile": 4, "activation": 4, "platforms": 4, "platform_names": 4,
    "registry_options": 4, "artifacts": 4,
    "image_names": 4, "image_labels": 4,
    # layers/* : 3
    # conda/*, pypi/*, oci/* : 2
    "http": 1, "credentials": 1, "parallel": 1, "cache": 1, "errors": 1, "progress": 1, "cache_verify": 1,
    "payload_names": 1,
    "": 0,  # the package itself (``__version__``)
}
LAYERS["limits"] = 1  # foundations: bounded reads of files, streams and JSON from outside (issue 12)
LAYERS["schema_check"] = 1  # foundations: a valid file is checked against our schemas without jsonschema (issue 16)
SUBPACKAGE_LAYERS = {"sbom": 5, "sign": 5, "layers": 3, "conda": 2, "pypi": 2, "oci": 2}
LAYER_NAMES = {9: "__main__", 8: "entry point", 7: "cli", 6: "commands", 5: "commands' stages", 4: "options/spec", 3: "layers/",
               2: "conda/ pypi/ oci/", 1: "foundations", 0: "package"}
#: Top-level modules of today's tree that the map replaces: their provisional layer and where their job goes.
OFF_MAP: dict[str, tuple[int, str]] = {
    "lock": (5, "lockfile.py (models, read/write), resolve.py and commands.py"),
    "layering": (3, "layers/plan.py"),
    "pack": (3, "layers/pack.py"),
    "pyc": (3, "layers/pyc.py"),
    "trim": (3, "layers/trim.py"),
}
#: What pypi/ may take from conda/.
PYPI_MAY_USE = {"conda.records", "conda.version"}
#: Third-party modules a function may import locally: optional for most commands and slow to import (issue 16's
#: start-up goal: a no-op rebuild in 0.4 s, ``--version`` in 0.1 s). requests/urllib3 only when a request is made,
#: rich only on a terminal, packaging/installer only for pip sections, cryptography/nacl only for signing, zstandard
#: only for zstd layers and repodata, msgpack for sharded repodata, conda_package_streaming for extraction.
#: email (stdlib, ~20 ms): only reading wheel/dist-info metadata needs its parser. multiprocessing (stdlib, ~10 ms):
#: only cold work (streaming, extracting, compressing) starts worker processes.
LOCAL_IMPORT_OK = {"conda_pack", "conda_package_streaming", "cryptography", "email", "installer", "jsonschema",
                   "msgpack", "multiprocessing", "nacl", "packaging", "requests", "rich", "urllib3", "zstandard"}
#: The console entry point answers ``--version`` before it loads the pipeline (a second of imports), so it alone may
#: import the CLI inside its function.
LOCAL_PROJECT_IMPORT_OK = {"entry"}
#: Parameter names that always denote a project type (so ``Any`` there hides one).
#: The modules that know argparse (``commands.py`` builds typed options from the parsed command line).
#: ``options`` declares the image-changing options once and generates their flags from that table; it never
#: sees parsed arguments (``commands`` turns those into ``BuildOptions``).
ARGPARSE_OK = {"cli", "commands", "__main__", "options"}
PROJECT_TYPED = {"spec", "opts", "options", "lock", "reporter", "record", "records", "image", "img", "source", "sink",
                 "desc", "descriptor"}


@dataclass(frozen=True)
class Violation:
    path: Path
    line: int
    rule: str
    detail: str

    def __str__(self) -> str:
        return f"{_rel(self.path)}:{self.line}: {self.rule}: {self.detail}"


def _rel(path: Path) -> Path:
    return path.relative_to(ROOT) if path.is_relative_to(ROOT) else path


@dataclass(frozen=True)
class Edge:
    """One import of a project module: who, whom, where, and how (function-local, type-checking only)."""

    src: str
    dst: str
    path: Path
    line: int
    local: bool
    typing_only: bool


@dataclass
class Module:
    name: str  # dotted, without the leading "oci_conda." ("" for the package itself)
    path: Path
    tree: ast.Module
    is_package: bool
    edges: list[Edge] = field(default_factory=list)


def _module_name(path: Path, base: Path) -> tuple[str, bool]:
    parts = list(path.relative_to(base).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts = parts[:-1]
    return ".".join(parts), is_package


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _walk_with_scope(tree: ast.AST):  # noqa: ANN202 - yields (node, in_function, under_type_checking)
    """Every node with whether it sits inside a function and whether under ``if TYPE_CHECKING:``."""
    stack: list[tuple[ast.AST, bool, bool]] = [(tree, False, False)]
    while stack:
        node, local, typing_only = stack.pop()
        yield node, local, typing_only
        for child in ast.iter_child_nodes(node):
            c_local = local or isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            c_typing = typing_only or (isinstance(node, ast.If) and child in node.body
                                       and "TYPE_CHECKING" in ast.unparse(node.test))
            stack.append((child, c_local, c_typing))


class Project:
    """The parsed source tree: modules, the imports between them, and what each file binds to project modules."""

    def __init__(self, src: Path = SRC) -> None:
        self.base = src / PKG
        self.modules: dict[str, Module] = {}
        for path in sorted(self.base.rglob("*.py")):
            name, is_package = _module_name(path, self.base)
            self.modules[name] = Module(name, path, ast.parse(path.read_text(), str(path)), is_package)
        for mod in self.modules.values():
            mod.edges = [e for e, _ in self.imports(mod.name, mod.tree, mod.path, mod.is_package)]

    def resolve(self, importer: str, is_package: bool, module: str | None, level: int) -> str | None:
        """The dotted name (without ``oci_conda.``) an import refers to, or None when it is not the project's."""
        if level == 0:
            if module is None or not (module == PKG or module.startswith(PKG + ".")):
                return None
            return module[len(PKG) + 1:] if module != PKG else ""
        here = importer.split(".") if importer else []
        if not is_package:
            here = here[:-1]
        if level > 1:
            here = here[: len(here) - (level - 1)]
        return ".".join(here + ([module] if module else []))

    def target(self, dotted: str) -> str:
        """The longest prefix of ``dotted`` that is a project module."""
        parts = dotted.split(".") if dotted else []
        while parts and ".".join(parts) not in self.modules:
            parts.pop()
        return ".".join(parts)

    def imports(self, importer: str, tree: ast.AST, path: Path, is_package: bool):  # noqa: ANN201
        """(Edge, names) for every import of a project module in ``tree``; names: {bound name: (module, line)}."""
        out = []
        for node, local, typing_only in _walk_with_scope(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    dotted = self.resolve(importer, is_package, alias.name, 0)
                    if dotted is None:
                        continue
                    out.append((Edge(importer, self.target(dotted), path, node.lineno, local, typing_only),
                                {alias.asname: dotted} if alias.asname else {}))
            elif isinstance(node, ast.ImportFrom):
                base = self.resolve(importer, is_package, node.module, node.level)
                if base is None:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}" if base else alias.name
                    dst = sub if sub in self.modules else self.target(base)
                    bound = {alias.asname or alias.name: sub} if sub in self.modules else {}
                    out.append((Edge(importer, dst, path, node.lineno, local, typing_only), bound))
        return out


def layer_of(name: str) -> tuple[int | None, str]:
    """(layer, family) of a module; family is conda/pypi/oci/layers for subpackages, else the module's name."""
    head = name.split(".")[0]
    if head in SUBPACKAGE_LAYERS and name != "":
        return SUBPACKAGE_LAYERS[head], head
    if name in LAYERS:
        return LAYERS[name], name
    if head in OFF_MAP:
        return OFF_MAP[head][0], head
    return None, head


# ---------------------------------------------------------------------------------------------------------------
# the rules


def import_circles(project: Project) -> list[Violation]:
    """Strongly connected components of the runtime import graph (Tarjan), each with the imports that close it."""
    graph: dict[str, set[str]] = defaultdict(set)
    for mod in project.modules.values():
        for e in mod.edges:
            if not e.typing_only and e.dst != e.src:
                graph[e.src].add(e.dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    sccs: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                sccs.append(sorted(comp))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10_000))
    for v in sorted(project.modules):
        if v not in index:
            visit(v)
    out = []
    for comp in sorted(sccs):
        members = set(comp)
        inner = sorted({(e.path, e.line, e.src, e.dst) for m in comp for e in project.modules[m].edges
                        if e.dst in members and not e.typing_only and e.dst != e.src})
        first = project.modules[comp[0]]
        where = "; ".join(f"{_rel(p)}:{ln} {s} -> {d}" for p, ln, s, d in inner)
        out.append(Violation(first.path, 1, "import circle", f"{' <-> '.join(comp)} (via {where})"))
    return out


def upward_imports(project: Project) -> list[Violation]:
    out = []
    for mod in project.modules.values():
        rank, family = layer_of(mod.name)
        if rank is None:
            out.append(Violation(mod.path, 1, "not on the map", f"top-level module {mod.name!r} has no layer"))
            continue
        if mod.name in OFF_MAP:
            out.append(Violation(mod.path, 1, "not on the map",
                                 f"{mod.name}.py: its job goes to {OFF_MAP[mod.name][1]}"))
        seen = set()
        for e in mod.edges:
            d_rank, d_family = layer_of(e.dst)
            if d_rank is None or (e.line, e.dst) in seen:
                continue
            seen.add((e.line, e.dst))
            if d_rank > rank:
                out.append(Violation(e.path, e.line, "upward import",
                                     f"{mod.name} ({LAYER_NAMES[rank]}) imports {e.dst} ({LAYER_NAMES[d_rank]})"))
            elif rank == d_rank == 2 and family != d_family:
                if family == "pypi" and d_family == "conda" and e.dst in PYPI_MAY_USE:
                    continue
                out.append(Violation(e.path, e.line, "sideways import",
                                     f"{mod.name} imports {e.dst}: {family}/ and {d_family}/ are independent"))
    return out


def local_imports(project: Project) -> list[Violation]:
    out = []
    for mod in project.modules.values():
        for node, local, _ in _walk_with_scope(mod.tree):
            if not local or not isinstance(node, (ast.Import, ast.ImportFrom)):
                continue
            if isinstance(node, ast.ImportFrom):
                names = [node.module or "."] if node.level == 0 else [None]
                project_mod = node.level > 0 or (node.module or "").split(".")[0] == PKG
            else:
                names = [a.name for a in node.names]
                project_mod = any(n.split(".")[0] == PKG for n in names)
            shown = ast.unparse(node)
            if project_mod and mod.name not in LOCAL_PROJECT_IMPORT_OK:
                out.append(Violation(mod.path, node.lineno, "function-local project import", shown))
            elif project_mod:
                continue
            elif not all(n is not None and n.split(".")[0] in LOCAL_IMPORT_OK for n in names):
                out.append(Violation(mod.path, node.lineno, "function-local import", f"{shown} (not an optional "
                                                                                      "heavy dependency)"))
    return out


def _private_in_file(project: Project, path: Path, tree: ast.AST, importer: str | None,
                     is_package: bool) -> list[Violation]:
    """Private names (and private modules) of other project modules that this file (src or tests) takes."""
    out = []
    bound: dict[str, str] = {}  # name in this file -> project module it is bound to
    own_pkg = None if importer is None else importer if is_package else importer.rpartition(".")[0]
    for node, _, _ in _walk_with_scope(tree):
        if isinstance(node, ast.ImportFrom):
            if importer is None and node.level:
                continue
            base = project.resolve(importer or "", is_package, node.module, node.level)
            if base is None:
                continue
            for alias in node.names:
                sub = f"{base}.{alias.name}" if base else alias.name
                if sub in project.modules:
                    bound[alias.asname or alias.name] = sub
                elif _is_private(alias.name) and base != importer:
                    out.append(Violation(path, node.lineno, "private name of another module",
                                         f"from {'.'.join(x for x in (PKG, base) if x)} import {alias.name}"))
        elif isinstance(node, ast.Import):
            for alias in node.names:
                dotted = project.resolve("", True, alias.name, 0)
                if dotted is not None and alias.asname:
                    bound[alias.asname] = dotted
        if isinstance(node, (ast.Import, ast.ImportFrom)) and not (importer is None and getattr(node, "level", 0)):
            one = ast.Module(body=[node], type_ignores=[])
            for e, _ in project.imports(importer or "", one, path, is_package):
                parts = e.dst.split(".")
                for i, part in enumerate(parts):
                    parent = ".".join(parts[:i])
                    inside = own_pkg is not None and (not parent or f"{own_pkg}.".startswith(f"{parent}."))
                    if _is_private(part) and not inside:
                        out.append(Violation(path, node.lineno, "private module of another package", e.dst))
    for node, _, _ in _walk_with_scope(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in bound \
                and _is_private(node.attr) and bound[node.value.id] != importer:
            out.append(Violation(path, node.lineno, "private name of another module",
                                 f"{node.value.id}.{node.attr} ({bound[node.value.id]})"))
        if isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Name) \
                and node.args[0].id in bound and isinstance(node.args[1], ast.Constant) \
                and isinstance(node.args[1].value, str) and _is_private(node.args[1].value) \
                and ast.unparse(node.func).rpartition(".")[2] in ("setattr", "getattr", "delattr"):
            out.append(Violation(path, node.lineno, "private name of another module",
                                 f"{ast.unparse(node.func)}({node.args[0].id}, {node.args[1].value!r}, ...)"))
    return out


def private_names(project: Project) -> list[Violation]:
    out = []
    for mod in project.modules.values():
        out += _private_in_file(project, mod.path, mod.tree, mod.name, mod.is_package)
    for path in sorted(TESTS.glob("*.py")):
        out += _private_in_file(project, path, ast.parse(path.read_text(), str(path)), None, False)
    return out


def _mentions_any(annotation: ast.AST | None) -> bool:
    if annotation is None:
        return False
    for node in ast.walk(annotation):
        if isinstance(node, ast.Name) and node.id == "Any":
            return True
        if isinstance(node, ast.Attribute) and node.attr == "Any":
            return True
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            try:
                if _mentions_any(ast.parse(node.value, mode="eval")):
                    return True
            except SyntaxError:
                pass
    return False


def _public_functions(tree: ast.Module):  # noqa: ANN202 - yields (qualname, FunctionDef)
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and not _is_private(node.name):
            yield node.name, node
        elif isinstance(node, ast.ClassDef) and not _is_private(node.name):
            for item in node.body:
                if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and \
                        (not _is_private(item.name) or item.name == "__init__") and \
                        not (item.name.startswith("__") and item.name != "__init__"):
                    yield f"{node.name}.{item.name}", item


def any_for_project_types(project: Project) -> list[Violation]:
    out = []
    for mod in project.modules.values():
        for qual, fn in _public_functions(mod.tree):
            a = fn.args
            for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs, *(x for x in (a.vararg, a.kwarg) if x)]:
                if arg.arg in PROJECT_TYPED and _mentions_any(arg.annotation):
                    out.append(Violation(mod.path, arg.lineno, "Any where a project type exists",
                                         f"{qual}({arg.arg}: {ast.unparse(arg.annotation)})"))  # type: ignore[arg-type]
    return out


def argparse_outside_commands(project: Project) -> list[Violation]:
    """argparse stops at cli/commands: no other module imports it or takes the parsed namespace (``args``)."""
    out = []
    for mod in project.modules.values():
        if mod.name in ARGPARSE_OK:
            continue
        for node, _, _ in _walk_with_scope(mod.tree):
            if isinstance(node, ast.Import) and any(a.name == "argparse" for a in node.names) or \
                    isinstance(node, ast.ImportFrom) and node.module == "argparse":
                out.append(Violation(mod.path, node.lineno, "argparse outside cli/commands", ast.unparse(node)))
            elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                a = node.args
                for arg in [*a.posonlyargs, *a.args, *a.kwonlyargs]:
                    ann = ast.unparse(arg.annotation) if arg.annotation is not None else ""
                    if "Namespace" in ann or (arg.arg == "args" and (not ann or _mentions_any(arg.annotation))):
                        out.append(Violation(mod.path, arg.lineno, "argparse outside cli/commands",
                                             f"{node.name}({arg.arg}{': ' + ann if ann else ''}): the parsed "
                                             "command line goes no further than commands.py"))
    return out


def imports_of_test_modules() -> list[Violation]:
    test_modules = {p.stem for p in TESTS.glob("test_*.py")}
    out = []
    for path in sorted(TESTS.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) and node.level == 0 else []
            for n in names:
                if n.split(".")[0] in test_modules:
                    out.append(Violation(path, node.lineno, "test module imports a test module",
                                         f"{ast.unparse(node)} (share it through conftest.py or a helper module)"))
    return out


RULES = {
    "import circles": import_circles,
    "imports down the map": upward_imports,
    "function-local imports": local_imports,
    "private names": private_names,
    "Any for project types": any_for_project_types,
    "argparse stops at commands": argparse_outside_commands,
}


@pytest.fixture(scope="module")
def project() -> Project:
    return Project()


def _check(violations: list[Violation], rule: str) -> None:
    if violations:
        violations = sorted(violations, key=lambda v: (str(v.path), v.line, v.detail))
        pytest.fail(f"{len(violations)} violation(s) of '{rule}':\n" + "\n".join(map(str, violations)), pytrace=False)


def test_no_import_circles(project: Project) -> None:
    _check(import_circles(project), "no import circles")


def test_imports_point_down_the_map(project: Project) -> None:
    _check(upward_imports(project), "imports point down the map")


def test_no_function_local_imports(project: Project) -> None:
    _check(local_imports(project), "no function-local imports")


def test_no_private_names_of_other_modules(project: Project) -> None:
    _check(private_names(project), "no private names of other modules")


def test_no_any_where_a_project_type_exists(project: Project) -> None:
    _check(any_for_project_types(project), "no Any where a project type exists")


def test_argparse_stops_at_commands(project: Project) -> None:
    _check(argparse_outside_commands(project), "argparse stops at cli/commands")


def test_tests_do_not_import_test_modules() -> None:
    _check(imports_of_test_modules(), "tests share code through conftest and helper modules")


def test_the_checker_sees_what_it_checks(tmp_path: Path) -> None:
    """Each rule finds its violation in a small tree made for it (so a passing run means something)."""
    pkg = tmp_path / PKG
    (pkg / "conda").mkdir(parents=True)
    (pkg / "oci").mkdir()
    for p in (pkg, pkg / "conda", pkg / "oci"):
        (p / "__init__.py").write_text("")
    (pkg / "errors.py").write_text("from .cli import main\n")  # upward, and a circle with cli
    (pkg / "cli.py").write_text("from typing import Any\nfrom . import errors\n"
                                "def main(spec: Any) -> int:\n    from .oci import image\n    return image._x\n")
    (pkg / "oci" / "image.py").write_text("from ..conda.records import R\n_x = 1\n")  # sideways
    (pkg / "conda" / "records.py").write_text("R = 1\n")
    (pkg / "surprise.py").write_text("import argparse\n")
    p = Project(tmp_path)
    assert [v.detail for v in import_circles(p)][0].startswith("cli <-> errors")
    assert {v.rule for v in upward_imports(p)} == {"upward import", "sideways import", "not on the map"}
    assert [v.rule for v in local_imports(p)] == ["function-local project import"]
    assert [v.detail for v in any_for_project_types(p)] == ["main(spec: Any)"]
    assert [v.detail for v in private_names(p) if v.path.is_relative_to(tmp_path)] == ["image._x (oci.image)"]
    assert [v.detail for v in argparse_outside_commands(p)] == ["import argparse"]


# ---------------------------------------------------------------------------------------------------------------
# figures for the before/after note


def _functions(tree: ast.AST, prefix: str = ""):  # noqa: ANN202 - yields (qualname, lines)
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield prefix + node.name, node.end_lineno - node.lineno + 1  # type: ignore[operator]
            yield from _functions(node, prefix + node.name + ".")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, prefix + node.name + ".")


def report(project: Project) -> str:
    lines = ["violations per rule:"]
    for name, rule in RULES.items():
        vs = rule(project)
        by_kind: dict[str, int] = defaultdict(int)
        for v in vs:
            by_kind[v.rule] += 1
        lines.append(f"  {name}: {len(vs)}" + (f" ({', '.join(f'{k} {n}' for k, n in sorted(by_kind.items()))})"
                                                 if len(by_kind) > 1 else ""))
    lines.append(f"  test modules importing test modules: {len(imports_of_test_modules())}")
    anys = sum(_mentions_any(x.annotation) for m in project.modules.values() for _, fn in _public_functions(m.tree)
               for x in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs,
                         *(y for y in (fn.args.vararg, fn.args.kwarg) if y)])
    rets = sum(_mentions_any(fn.returns) for m in project.modules.values() for _, fn in _public_functions(m.tree))
    lines.append(f"  (for information) Any in public signatures, any name: {anys} parameters, {rets} returns")
    lines.append("module sizes (lines):")
    sizes = sorted(((len(m.path.read_text().splitlines()), m.path.relative_to(project.base.parent)) for m in project.modules.values()),
                   reverse=True)
    lines += [f"  {n:5d} {p}" for n, p in sizes]
    lines.append(f"  total {sum(n for n, _ in sizes)} lines in {len(sizes)} files")
    funcs = sorted(((n, f"{m.path.relative_to(project.base.parent)}:{q}") for m in project.modules.values()
                    for q, n in _functions(m.tree)), reverse=True)
    lines.append("10 longest functions (lines):")
    lines += [f"  {n:5d} {q}" for n, q in funcs[:10]]
    return "\n".join(lines)


if __name__ == "__main__":
    print(report(Project(Path(sys.argv[1]) if len(sys.argv) > 1 else SRC)))
