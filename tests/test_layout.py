"""The shape of the package: imports run one way, no import circles, small units.

Read from the source (every import statement, those under ``if TYPE_CHECKING:`` and inside
functions included), so a violation fails here before anything runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "search"
# From the top: each layer may import its own and the ones below it, never one above.
LAYERS = (
    ("search", "search.run", "search.report", "search.dashboard", "search.cli",
     "search.worker.__main__"),
    ("search.running", "search.result"),
    ("search.worker", "search.cluster", "search.results"),
    ("search.study", "search.training"),
    ("search.definition", "search.definition_schema", "search.knobs", "search.data",
     "search.options", "search.locations", "search.errors", "search.signals",
     "search.cpu_quota", "search.disk_space",
     "search.usercode", "search.userdata", "search.datasets", "search.model_sections",
     "search.ranges", "search.search_section"),
)
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 220, 40


def _name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _layer(module: str) -> int:
    # The longest prefix decides: search.worker.__main__ is a command, search.worker a layer.
    matches = [(len(prefix), index) for index, layer in enumerate(LAYERS) for prefix in layer
               if module == prefix or module.startswith(prefix + ".")]
    assert matches, f"{module} is in no layer; add it to LAYERS"
    return max(matches)[1]


def _imports(module: str) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(MODULES[module].read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from search import data`` imports the module search.data; ``from
            # search.data import split`` imports search.data.
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & set(MODULES)
            found |= submodules or {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {name for name in found if name in MODULES and name != module}


GRAPH = {module: _imports(module) for module in MODULES}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_run_one_way(module: str) -> None:
    upward = [imported for imported in GRAPH[module] if _layer(imported) < _layer(module)]
    assert upward == [], f"{module} imports from a layer above it"


def test_no_import_circles() -> None:
    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for imported in GRAPH[todo.pop()] - seen:
                seen.add(imported)
                todo.append(imported)
        return seen

    assert [module for module in MODULES if module in reachable(module)] == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_and_functions_stay_small(module: str) -> None:
    text = MODULES[module].read_text()
    assert text.count("\n") <= MAX_MODULE_LINES
    long = [f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
            for node in ast.walk(ast.parse(text))
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []
