"""The package's shape, checked over its import graph (read from the source with ``ast``; nothing is
imported): no import circles, no module importing a layer above its own, activews imports at module top,
an engine that never prints, a CLI and a report that compute no statistics, and a light ``import
activews``. docs/architecture.md describes the layers."""

from __future__ import annotations

import ast
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "activews"

# Layers, lowest first: a module may import modules of its own layer or of a lower one.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundation",
        (
            "activews.errors",
            "activews.validation",
            "activews.registry",
            "activews.params",
            "activews.files",
            "activews.plugins",
            "activews.version",
            "activews._compat",
        ),
    ),
    (
        "domain",
        (
            "activews.training",
            "activews.units",
            "activews.diagnostics",
            "activews.data",
            "activews.models",
            "activews.strategies",
            "activews.streams",
        ),
    ),
    ("engine", ("activews.engine",)),
    ("report", ("activews.report",)),
    ("reproduce", ("activews.reproduce",)),
    ("adapters", ("activews.sklearn", "activews.testing", "activews.roundlog", "activews.reinit")),
    ("cli", ("activews.cli", "activews.__main__")),
    ("package", ("activews",)),
]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def layer_of(module: str) -> int:
    best, rank = -1, None
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    assert rank is not None, f"{module} is in no layer: add it to LAYERS (and to docs/architecture.md)"
    return rank


def _is_type_checking(node: ast.If) -> bool:
    return "TYPE_CHECKING" in ast.unparse(node.test)


def imports(module: str) -> list[tuple[str, int, bool]]:
    """``(imported activews module, line, inside a function)`` for every import in ``module``."""
    path = MODULES[module]
    tree = ast.parse(path.read_text())
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[tuple[str, int, bool]] = []

    def targets(node: ast.Import | ast.ImportFrom) -> list[str]:
        if isinstance(node, ast.Import):
            return [a.name for a in node.names]
        base = node.module or ""
        if node.level:
            anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
            base = ".".join(anchor + ([node.module] if node.module else []))
        # ``from activews.streams import base`` imports the submodule too
        return [base] + [f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in MODULES]

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                continue  # typing-only: never executed
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                for name in targets(child):
                    if name in MODULES:
                        found.append((name, child.lineno, in_function))
            inner = in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, False)
    return found


GRAPH = {m: imports(m) for m in MODULES}


def test_every_module_is_in_a_layer() -> None:
    for module in MODULES:
        layer_of(module)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        f"{m} ({LAYERS[layer_of(m)][0]}) imports {t} ({LAYERS[layer_of(t)][0]}) at line {line}"
        for m, edges in GRAPH.items()
        for t, line, _ in edges
        if layer_of(t) > layer_of(m)
    ]
    assert not upward, "\n".join(upward)


def test_no_import_circles() -> None:
    """Depth-first search over every import (in functions too): a back edge is a circle."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []
    circles: list[str] = []

    def dfs(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target, _, _ in GRAPH[module]:
            if target == module:
                continue
            if state.get(target) == 1:
                circles.append(" -> ".join(path[path.index(target) :] + [target]))
            elif target not in state:
                dfs(target)
        path.pop()
        state[module] = 2

    for module in MODULES:
        if module not in state:
            dfs(module)
    assert not circles, "\n".join(circles)


def test_activews_imports_sit_at_module_top() -> None:
    inside = [f"{m}:{line} imports {t}" for m, edges in GRAPH.items() for t, line, f in edges if f]
    assert not inside, "\n".join(inside)


def _calls_and_imports(module: str) -> tuple[set[str], set[str]]:
    tree = ast.parse(MODULES[module].read_text())
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    mods: set[str] = set()
    for n in ast.walk(tree):
        if isinstance(n, ast.Import):
            mods.update(a.name.split(".")[0] for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            mods.add(n.module.split(".")[0])
    return calls, mods


def test_the_engine_never_prints() -> None:
    for module in (m for m in MODULES if m.startswith("activews.engine")):
        calls, mods = _calls_and_imports(module)
        assert "print" not in calls, f"{module} prints; return the value or report a ProgressEvent"
        assert "rich" not in mods, f"{module} imports rich; rendering belongs to report/ and cli/"


def test_cli_and_report_compute_no_statistics() -> None:
    for module in (m for m in MODULES if m.startswith(("activews.cli", "activews.report"))):
        _, mods = _calls_and_imports(module)
        stats = mods & {"numpy", "scipy", "statistics"}
        assert not stats, f"{module} imports {sorted(stats)}: statistics belong to activews.engine.summary"


def test_import_activews_loads_nothing_heavy() -> None:
    code = (
        "import sys, activews; "
        "print(sorted(m for m in ('torch', 'numpy', 'pydantic', 'sklearn', 'activews.engine') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_every_top_level_name_resolves() -> None:
    import activews

    for name in activews.__all__:
        assert getattr(activews, name) is not None, name


DOCUMENTED_OLD_PATHS = [
    (
        "activews.bench",
        ["run_bench", "run_experiments", "load_results", "summarize", "BenchResult", "run_arm"],
    ),
    ("activews.arm", ["run_arm", "load_bench_dataset", "derive_seed", "resolve_device", "ProgressEvent"]),
    ("activews.config", ["BenchConfig", "ArmSpec", "REFERENCE_ARMS"]),
    ("activews.results", ["write_run_folder", "atomic_write", "to_jsonable", "records_csv"]),
    ("activews.sweep", ["expand", "load_sweep"]),
    ("activews.protocols", ["get_protocol", "protocol_values", "render", "PROTOCOLS", "Protocol"]),
    ("activews.store", ["RunStore"]),
    ("activews.resources", ["usable_cpus", "resolve_workers"]),
]


@pytest.mark.parametrize(("old", "names"), DOCUMENTED_OLD_PATHS, ids=[o for o, _ in DOCUMENTED_OLD_PATHS])
def test_old_import_paths_work_with_a_deprecation_warning(old: str, names: list[str]) -> None:
    code = f"import warnings; warnings.simplefilter('always'); from {old} import {', '.join(names)}"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"DeprecationWarning: {old} moved to activews." in done.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        module = __import__(old, fromlist=names)
    for name in names:
        assert getattr(module, name) is not None


def test_the_lazy_exports_and_their_typing_imports_agree() -> None:
    """``activews/__init__.py`` names each public export in ``_EXPORTS`` (loaded on first use) and in a
    ``TYPE_CHECKING`` import block (for type checkers): same names, same modules."""
    import activews

    tree = ast.parse((PACKAGE / "__init__.py").read_text())
    typed = {
        alias.name: node.module
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and _is_type_checking(block)
        for node in ast.walk(block)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
    }
    assert typed == activews._EXPORTS
    assert sorted(set(activews.__all__) - {"__version__"}) == sorted(activews._EXPORTS)
