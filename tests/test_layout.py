"""The tree keeps its architecture: import directions, no cycles, modules of a readable size.

The rules are the ones the package docstrings state (``planner/__init__.py``,
``registry/__init__.py``); this test reads every module's imports with ``ast`` (including imports
inside functions and under ``TYPE_CHECKING``) and fails on the first one that breaks them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx
import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("planner", "registry")
MAX_LINES = 500

# (importer prefix, forbidden imported prefixes, why)
RULES = [
    (
        "planner.core",
        ("planner.live", "planner.simulation", "planner.interfaces", "registry.storage"),
        "the core is pure: no driver, interface or database",
    ),
    (
        "planner.core",
        ("registry.definitions", "yaml", "sqlalchemy", "distributed", "dask"),
        "the core knows no YAML, SQL or Dask",
    ),
    (
        "planner.live",
        ("planner.interfaces", "planner.simulation"),
        "drivers never import interfaces",
    ),
    (
        "planner.simulation",
        ("planner.interfaces", "planner.live"),
        "drivers never import interfaces",
    ),
    ("planner.simulation", ("registry.storage",), "a simulation writes nothing"),
    (
        "planner.live.worker",
        ("planner.core", "planner.live.loop", "planner.live.dispatch"),
        "the worker side must import on a bare Dask worker",
    ),
    ("registry", ("planner",), "the registry knows nothing of the planner"),
    ("registry.definitions", ("registry.storage", "sqlalchemy"), "the YAML side knows no SQL"),
]


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


MODULES = _modules()
MODULE_NAMES = set(MODULES)


def _imports(name: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the importing package
                base = name.split(".")
                if path.name != "__init__.py":
                    base = base[:-1]
                base = base[: len(base) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            submodules = {f"{module}.{alias.name}" for alias in node.names} & MODULE_NAMES
            out.update(submodules)  # "from planner.core import capacity" imports a module
            if len(submodules) < len(node.names):
                out.add(module)
    return out


def _within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


IMPORTS = {name: _imports(name, path) for name, path in MODULES.items()}


@pytest.mark.parametrize(("importer", "forbidden", "why"), RULES)
def test_import_rules(importer: str, forbidden: tuple[str, ...], why: str) -> None:
    broken = sorted(
        f"{name} imports {imported}"
        for name, imported_set in IMPORTS.items()
        if _within(name, importer)
        for imported in imported_set
        if any(_within(imported, f) for f in forbidden)
    )
    assert not broken, f"{why}: " + "; ".join(broken)


def test_no_import_cycles() -> None:
    graph: nx.DiGraph[str] = nx.DiGraph()
    for name, imported in IMPORTS.items():
        graph.add_node(name)
        for target in imported:
            if target in MODULES and target != name:
                graph.add_edge(name, target)
    cycles = sorted(" -> ".join(c) for c in nx.simple_cycles(graph))
    assert not cycles, "import cycles: " + "; ".join(cycles)


def test_modules_stay_readable() -> None:
    long = {
        str(path.relative_to(ROOT)): n
        for path in MODULES.values()
        if (n := len(path.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"


def test_every_package_says_what_it_holds_and_may_import() -> None:
    missing = []
    for name, path in MODULES.items():
        if path.name != "__init__.py" or name in ("planner", "registry"):
            continue
        doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
        if "import" not in doc:
            missing.append(name)
    assert not missing, f"packages whose docstring does not say what they may import: {missing}"


def test_the_core_reads_no_clock() -> None:
    calls = ("datetime.now(", "datetime.utcnow(", "time.time(", "time.monotonic(", "date.today(")
    found = [
        f"{path.relative_to(ROOT)}: {call}"
        for name, path in MODULES.items()
        if _within(name, "planner.core")
        for call in calls
        if call in path.read_text(encoding="utf-8")
    ]
    assert not found, "time is an argument of the core: " + "; ".join(found)
