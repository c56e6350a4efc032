"""The package layout's rules, read from the source: layers, no cycles, thin handlers, pure modules.

Each import statement of `companion/` counts, at module level or inside a function (a late import
does not hide a dependency), except those under `if TYPE_CHECKING:` (a type only: nothing is
imported when the program runs). The rules are the ones each package's `__init__` docstring states.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "companion"

# Lowest first: a module may import its own layer and the layers before it, never a later one.
LAYERS = [
    {"__init__", "errors", "events", "config", "lru_files", "lockfile", "allocator"},   # foundations (__init__: the version)
    {"formats"},       # pure: bytes and text in and out
    {"store"},         # SQLite
    {"model"},         # generation backends, KV states, model files
    {"memory"},        # embedder, index, ranking, recall
    {"characters"},    # companions, personas, presets, lorebooks
    {"chat"},          # turns and what surrounds them
    {"voice"},         # speaking and listening
    {"names"},         # what a dialect's model name means
    {"services"},      # builds the services
    {"api"},           # the dialects' blueprints
    {"app", "cli", "terminal", "backup"},   # entry points
]
PURE = ("companion.chat.prompt", "companion.characters.lore", "companion.formats")
PURE_THIRD_PARTY = {"PIL", "pypdf"}
STATEFUL_LIBRARIES = {"sqlite3", "sqlite_utils", "chromadb", "llama_cpp"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in PACKAGE.rglob("*.py")}


def _type_checking_only(node: ast.If) -> bool:
    test = node.test
    return getattr(test, "id", None) == "TYPE_CHECKING" or getattr(test, "attr", None) == "TYPE_CHECKING"


def imported(module: str) -> set[str]:
    """Every module `module` imports when it runs: companion's by full name, others by top name."""
    path = MODULES[module]
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking_only(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package[:len(package) - child.level + 1] + ([base] if base else []))
                for alias in child.names:
                    found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {name if name.startswith("companion") else name.split(".")[0] for name in found} - {module}


GRAPH = {module: imported(module) for module in MODULES}


def part(module: str) -> str:
    """The package (or top-level module) a companion module belongs to: 'chat', 'config', ..."""
    return module.split(".")[1] if "." in module else "__init__"


def layer(module: str) -> int:
    return next(i for i, names in enumerate(LAYERS) if part(module) in names)


def is_pure(module: str) -> bool:
    return any(module == pure or module.startswith(pure + ".") for pure in PURE)


def own(names: set[str]) -> set[str]:
    return {name for name in names if name.startswith("companion")}


def test_every_part_has_a_layer_and_a_docstring():
    for module in MODULES:
        assert any(part(module) in names for names in LAYERS), f"{module}: add its part to LAYERS"
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and "import" in doc, f"{init}: say what the package owns and what it may import"


def test_no_import_cycles():
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles = []

    def connect(v: str) -> None:   # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in own(GRAPH[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 5000))
    for module in GRAPH:
        if module not in index:
            connect(module)
    assert cycles == []


def test_no_part_imports_a_later_layer():
    wrong = [f"{module} -> {other}" for module, names in GRAPH.items() for other in own(names)
             if layer(other) > layer(module)]
    assert wrong == []


def test_handlers_reach_neither_the_store_nor_the_model():
    wrong = [f"{module} -> {other}" for module, names in GRAPH.items() if module.startswith("companion.api")
             for other in names
             if other.startswith(("companion.store", "companion.model")) or other in STATEFUL_LIBRARIES]
    assert wrong == []


def test_pure_modules_import_nothing_stateful():
    stdlib = set(sys.stdlib_module_names) - STATEFUL_LIBRARIES - {"threading", "socket", "subprocess"}
    allowed_own = {"companion.errors"}
    wrong = []
    for module, names in GRAPH.items():
        if not is_pure(module):
            continue
        for other in names:
            if other.startswith("companion"):
                ok = other in allowed_own or is_pure(other)
            else:
                ok = other in stdlib or other in PURE_THIRD_PARTY or other == "__future__"
            if not ok:
                wrong.append(f"{module} -> {other}")
    assert wrong == []


@pytest.mark.parametrize("rule", ["layer", "cycle"])
def test_the_rules_catch_what_they_forbid(rule, monkeypatch):
    """A rule that can fail: a made-up import in the wrong direction is caught."""
    graph = {module: set(names) for module, names in GRAPH.items()}
    graph["companion.formats.cards"].add("companion.store")
    if rule == "layer":
        assert any(layer(o) > layer(m) for m, names in graph.items() for o in own(names))
    else:
        graph["companion.store"] = own(graph.get("companion.store", set())) | {"companion.formats.cards"}
        monkeypatch.setitem(globals(), "GRAPH", graph)
        with pytest.raises(AssertionError):
            test_no_import_cycles()
