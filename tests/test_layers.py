"""Layers that hold: the import contracts are checked, and the package graph stays acyclic, small and
polite (no module over 800 lines, no package reaching for another package's private names).

The contracts live in pyproject.toml ([tool.importlinter]); ``make test`` runs ``lint-imports``.
Imports written inside functions count everywhere here: grimp reads them as imports.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "morket"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
MAX_MODULE_LINES = 800


def _lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"],
        cwd=tree,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def copied_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package and its contracts, outside the repository, to break on purpose."""
    tree = tmp_path_factory.mktemp("layers")
    shutil.copytree(PACKAGE, tree / "morket", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tree / "pyproject.toml")
    return tree


def test_the_tree_keeps_its_contracts():
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


# Each bad module breaks one contract; the copy without it passes (so the failure is that module's).
BAD_MODULES = [
    ("morket/core/leak.py", "from morket.accounts.service import parse_session_id\n", "Core imports no domain"),
    (
        "morket/core/lazy_leak.py",
        "def user_model():\n    from morket.accounts.models import User\n\n    return User\n",
        "Core imports no domain",
    ),
    (
        "morket/admin/borrowed.py",
        "from morket.credits import views\n",
        "Only credits imports its handlers",
    ),
    (
        "morket/mail/backwards.py",
        "from morket.accounts import service\n",
        "No import cycle between the packages of morket",
    ),
    ("morket/unplaced/__init__.py", "", "Entry points above domains, domains above core"),
]


@pytest.mark.parametrize(("path", "source", "contract"), BAD_MODULES, ids=[row[0] for row in BAD_MODULES])
def test_a_module_that_breaks_a_layer_fails_lint_imports(copied_tree: Path, path: str, source: str, contract: str):
    clean = _lint_imports(copied_tree)
    assert clean.returncode == 0, "the copied tree must pass before it is broken:\n" + clean.stdout + clean.stderr
    bad = copied_tree / path
    bad.parent.mkdir(exist_ok=True)
    bad.write_text(source)
    try:
        result = _lint_imports(copied_tree)
    finally:
        bad.unlink()
        if bad.parent.name == "unplaced":
            shutil.rmtree(bad.parent)
    assert result.returncode == 1, result.stdout + result.stderr
    broken = result.stdout.split("Broken contracts", 1)[-1]
    assert contract in broken, result.stdout


def test_a_service_that_imports_its_views_breaks_the_domain_layers(copied_tree: Path):
    service = copied_tree / "morket" / "credits" / "service.py"
    original = service.read_text()
    service.write_text(original + "\n\ndef _late():\n    from morket.credits import views\n\n    return views\n")
    try:
        result = _lint_imports(copied_tree)
    finally:
        service.write_text(original)
    assert result.returncode == 1, result.stdout
    assert "morket.credits.service is not allowed to import morket.credits.views" in result.stdout


# --- the package graph -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    sys.path.insert(0, str(ROOT))
    try:
        return grimp.build_graph("morket", cache_dir=None)
    finally:
        sys.path.remove(str(ROOT))


def _packages(graph: grimp.ImportGraph) -> set[str]:
    return {m for m in graph.modules if (PACKAGE.parent / m.replace(".", "/") / "__init__.py").exists()}


def _child_package(module: str, parent: str, packages: set[str]) -> str | None:
    """The package directly under ``parent`` that holds ``module``, if any."""
    if not module.startswith(parent + "."):
        return None
    child = parent + "." + module[len(parent) + 1 :].split(".", 1)[0]
    return child if child in packages else None


def package_cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Cycles between sibling packages at every level of morket, each with one import per step."""
    packages = _packages(graph)
    found: list[list[str]] = []
    for parent in sorted(packages):
        edges: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
        for importer in graph.modules:
            a = _child_package(importer, parent, packages)
            if a is None:
                continue
            for imported in graph.find_modules_directly_imported_by(importer):
                b = _child_package(imported, parent, packages)
                if b is not None and b != a:
                    edges[a].setdefault(b, (importer, imported))
        found.extend(_cycles(edges))
    return found


def _cycles(edges: dict[str, dict[str, tuple[str, str]]]) -> list[list[str]]:
    """One shortest cycle through each edge that lies on a cycle, described import by import."""
    described: list[list[str]] = []
    seen: set[frozenset[str]] = set()
    for start in sorted(edges):
        for first in sorted(edges[start]):
            path = _shortest_path(edges, first, start)
            if path is None:
                continue
            nodes = [start, *path]
            key = frozenset(nodes)
            if key in seen:
                continue
            seen.add(key)
            described.append([" -> ".join(edges[a][b]) for a, b in zip(nodes, nodes[1:], strict=False)])
    return described


def _shortest_path(edges: dict[str, dict[str, tuple[str, str]]], start: str, goal: str) -> list[str] | None:
    previous: dict[str, str | None] = {start: None}
    queue = [start]
    for node in queue:
        if node == goal:
            path = [node]
            while previous[path[-1]] is not None:
                path.append(previous[path[-1]])  # type: ignore[arg-type]
            return path[::-1]
        for nxt in sorted(edges.get(node, {})):
            if nxt not in previous:
                previous[nxt] = node
                queue.append(nxt)
    return None


def test_the_cycle_finder_sees_a_cycle_through_an_import_inside_a_function():
    graph = grimp.ImportGraph()
    for name in ("p", "p.a", "p.a.m", "p.b", "p.b.n", "p.c", "p.c.o"):
        graph.add_module(name)
    graph.add_import(importer="p.a.m", imported="p.b.n")
    graph.add_import(importer="p.b.n", imported="p.c.o")
    assert _cycles_in(graph, {"p", "p.a", "p.b", "p.c"}) == []
    graph.add_import(importer="p.c.o", imported="p.a.m")
    assert _cycles_in(graph, {"p", "p.a", "p.b", "p.c"}) == [["p.a.m -> p.b.n", "p.b.n -> p.c.o", "p.c.o -> p.a.m"]]


def _cycles_in(graph: grimp.ImportGraph, packages: set[str]) -> list[list[str]]:
    edges: dict[str, dict[str, tuple[str, str]]] = defaultdict(dict)
    for importer in graph.modules:
        a = _child_package(importer, "p", packages)
        for imported in graph.find_modules_directly_imported_by(importer):
            b = _child_package(imported, "p", packages)
            if a and b and a != b:
                edges[a].setdefault(b, (importer, imported))
    return _cycles(edges)


def test_no_import_cycle_between_packages(graph: grimp.ImportGraph):
    cycles = package_cycles(graph)
    assert not cycles, "import cycles between packages:\n" + "\n".join("  " + "; ".join(c) for c in cycles)


def _contracts() -> dict[str, dict]:
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in settings["tool"]["importlinter"]["contracts"]}


def test_every_domain_is_named_where_the_contracts_list_domains():
    domains = {f"morket.{path.parent.name}" for path in PACKAGE.glob("*/__init__.py") if path.parent.name != "core"}
    contracts = _contracts()
    assert domains - set(contracts["core-imports-no-domain"]["forbidden_modules"]) == set()
    assert domains - set(contracts["domain-layers"]["containers"]) == set()


def test_the_acyclic_contract_ignores_only_the_core_layer():
    # extensions and core are one layer; any other ignored import would hide a cycle between packages.
    assert set(_contracts()["acyclic"].get("ignore_imports", [])) == {
        "morket.extensions -> morket.core.db",
        "morket.extensions -> morket.core.ratelimit",
    }


def test_no_module_over_800_lines():
    long = {
        str(path.relative_to(ROOT)): lines
        for path in sorted(PACKAGE.rglob("*.py"))
        if (lines := len(path.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"


# --- private names -----------------------------------------------------------------------------------


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def _owner(module: str) -> str:
    """The package a module belongs to for this rule: ``morket.<name>`` (a domain, core, ...)."""
    return ".".join(module.split(".")[:2])


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def private_reaches(source: str, module: str, modules: set[str]) -> list[str]:
    """Where ``module`` imports, calls or reads a private name of another package's module."""
    tree = ast.parse(source)
    package = (
        module if (PACKAGE.parent / module.replace(".", "/") / "__init__.py").exists() else module.rpartition(".")[0]
    )
    bound: dict[str, str] = {}  # local name -> another package's module it names
    found: list[str] = []

    def foreign(target: str) -> bool:
        return target.startswith("morket") and _owner(target) != _owner(module)

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if not foreign(base):
                continue
            for alias in node.names:
                if _is_private(alias.name) or any(_is_private(part) for part in base.split(".")):
                    found.append(f"line {node.lineno}: from {base} import {alias.name}")
                elif f"{base}.{alias.name}" in modules:
                    bound[alias.asname or alias.name] = f"{base}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if foreign(alias.name) and alias.asname:
                    bound[alias.asname] = alias.name
                if foreign(alias.name) and any(_is_private(part) for part in alias.name.split(".")):
                    found.append(f"line {node.lineno}: import {alias.name}")
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            target = _dotted(node.value)
            if target is None:
                continue
            head, _, rest = target.partition(".")
            named = bound.get(head, head if head == "morket" else None)
            if named is None:
                continue
            full = f"{named}.{rest}" if rest else named
            if full in modules and foreign(full):
                found.append(f"line {node.lineno}: {target}.{node.attr}")
    return sorted(set(found), key=lambda s: int(s.split(":")[0].split()[1]))


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        inner = _dotted(node.value)
        return f"{inner}.{node.attr}" if inner else None
    return None


def test_the_private_name_check_sees_imports_calls_and_module_attributes():
    modules = {"morket.tables", "morket.tables.editing", "morket.tables.service", "morket.dataops.bulk"}
    source = (
        "from morket.tables.editing import _write_cells, write_cells\n"
        "from morket.tables import service as tables\n"
        "import morket.tables.editing\n"
        "def f(workspace):\n"
        "    tables._mark_views_stale(workspace)\n"
        "    tables.mark_views_stale(workspace)\n"
        "    morket.tables.editing._cell_steps()\n"
        "    return write_cells, _write_cells\n"
    )
    assert private_reaches(source, "morket.dataops.bulk", modules) == [
        "line 1: from morket.tables.editing import _write_cells",
        "line 5: tables._mark_views_stale",
        "line 7: morket.tables.editing._cell_steps",
    ]
    # The same names inside the tables package are its own business.
    assert private_reaches(source, "morket.tables.views", modules) == []


def test_no_package_reaches_for_another_packages_private_names(graph: grimp.ImportGraph):
    modules = set(graph.modules)
    offenders = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        reaches = private_reaches(path.read_text(encoding="utf-8"), module, modules)
        if reaches:
            offenders[module] = reaches
    assert not offenders, "private names used across packages:\n" + "\n".join(
        f"  {module}: {', '.join(found)}" for module, found in offenders.items()
    )
