"""The import graph of the finetune package, read from the source (no module is imported):
every `import`/`from ... import` of a finetune module, at module level or inside a function.
Reports import cycles, imports that point up the layer order (LAYERS) and which modules import
the trainer. Run: python scripts/dev/import_graph.py

An edge goes to the module named, not to its parent packages: importing `finetune.tasks.task`
also runs `finetune/tasks/__init__.py`, but counting that would call every package that imports
its own submodules a cycle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "finetune"
TRAINER = "finetune.training.loop"
# The only modules allowed to import the trainer: the `train` command.
TRAINER_IMPORTERS = {"finetune.cli"}
# The top-level packages and modules of finetune/, lowest first (docs/architecture.md, "Layers"):
# a module imports only from its own layer or lower ones, function-level imports included.
# "finetune" is the package's own __init__.py. A new top-level package needs a place here.
LAYERS: list[tuple[str, ...]] = [
    ("finetune", "errors", "quiet_libraries"),
    ("storage",),
    ("configuration",),
    ("data",),
    ("model",),
    ("metrics",),
    ("tasks",),
    ("saved",),
    ("evaluation",),
    ("planning",),
    ("training",),
    ("views",),
    ("commands", "envinfo"),
    ("cli", "__main__"),
]


def module_name(path: Path, package: Path = PACKAGE) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Each finetune module → the finetune modules it imports."""
    paths = {module_name(path, package): path for path in sorted(package.rglob("*.py"))}
    return {name: _imports(name, path, set(paths)) for name, path in paths.items()}


def _imports(name: str, path: Path, modules: set[str]) -> set[str]:
    is_package = path.name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = _absolute(node, name, is_package)
            # `from finetune import run_dir` imports the module run_dir; `from finetune.x import f`, x.
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                         for alias in node.names)
    return {target for target in found if target in modules and target != name}


def _absolute(node: ast.ImportFrom, name: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    package = name.split(".") if is_package else name.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in sorted(graph.get(node, ())):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def top_level(module: str) -> str:
    """`finetune.tasks.specs.f1` → `tasks`; the package itself → `finetune`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(module: str, layers: list[tuple[str, ...]] = LAYERS) -> int | None:
    return next((i for i, names in enumerate(layers) if top_level(module) in names), None)


def unplaced(graph: dict[str, set[str]], layers: list[tuple[str, ...]] = LAYERS) -> set[str]:
    """Top-level packages and modules that LAYERS does not name."""
    return {top_level(name) for name in graph if layer_of(name, layers) is None}


def upward_imports(graph: dict[str, set[str]],
                   layers: list[tuple[str, ...]] = LAYERS) -> list[tuple[str, str]]:
    """(importer, imported) for each import from a lower layer into a higher one."""
    return sorted((name, target) for name, targets in graph.items() for target in targets
                  if (layer_of(name, layers) or 0) < (layer_of(target, layers) or 0))


def importers(graph: dict[str, set[str]], target: str) -> set[str]:
    return {name for name, targets in graph.items() if target in targets}


def main() -> int:
    graph = import_graph()
    loops = cycles(graph)
    upward = upward_imports(graph)
    missing = unplaced(graph)
    trainer_users = importers(graph, TRAINER) - TRAINER_IMPORTERS
    print(f"{len(graph)} modules, {sum(map(len, graph.values()))} imports")
    for loop in loops:
        print("cycle among: " + ", ".join(loop))
    for name, target in upward:
        print(f"{name} imports {target}, a higher layer ({top_level(target)} above {top_level(name)})")
    for name in sorted(missing):
        print(f"finetune/{name} has no place in LAYERS")
    for name in sorted(trainer_users):
        print(f"{name} imports {TRAINER} (only {', '.join(sorted(TRAINER_IMPORTERS))} may)")
    return 1 if loops or upward or missing or trainer_users else 0


if __name__ == "__main__":
    sys.exit(main())
