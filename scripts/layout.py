"""The pack's layout as data: its modules, their sizes and the import arrows between them.

``python scripts/layout.py`` prints the figures a reviewer asks for (module count, longest module,
import arrows); tests/tooling/test_layout.py holds the layout to its rules with the same reading.
Only the pack's own relative imports count (TYPE_CHECKING and function-level ones too).
"""

from __future__ import annotations

import ast
import gc
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("wavespeed", "nodes", "emulator")


def parse_source(path: Path) -> ast.Module:
    """``ast.parse`` with the garbage collector paused: on CPython 3.11.7 a collection inside the AST
    build can run a finalizer (an asyncio future logging "exception was never retrieved") that
    leaves "SystemError: AST constructor recursion depth mismatch" (seen in this suite)."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    finally:
        if enabled:
            gc.enable()


def module_name(path: Path, root: Path = REPO_ROOT) -> str:
    """``wavespeed/net/client.py`` -> ``wavespeed.net.client``; a package is named by its folder."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = REPO_ROOT) -> dict[str, Path]:
    """Every module of the pack (the repo-root ``__init__.py`` as ``""``), by dotted name."""
    found = {module_name(p, root): p for pkg in PACKAGES for p in sorted((root / pkg).rglob("*.py"))}
    found[""] = root / "__init__.py"
    return found


def type_checking_nodes(tree: ast.Module) -> set[ast.AST]:
    """The import statements under ``if TYPE_CHECKING:``: names for the checker, not imports at run time."""
    blocks = [n for n in ast.walk(tree) if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"]
    return {node for block in blocks for stmt in block.body for node in ast.walk(stmt)}


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The pack modules one module imports: ``from .x import y`` counts ``x``, or ``x.y`` if it is a
    module; every import counts, at the top, inside a function or under TYPE_CHECKING."""
    here = name.split(".") if name else []
    package = here if path.name == "__init__.py" else here[:-1]
    tree = parse_source(path)
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package[: len(package) - node.level + 1]
        target = ".".join(base + ([node.module] if node.module else []))
        for alias in node.names:
            as_module = f"{target}.{alias.name}" if target else alias.name
            found.add(as_module if as_module in known else target)
    return {m for m in found if m in known and m != name}


def import_arrows(root: Path = REPO_ROOT) -> set[tuple[str, str]]:
    """Every (importer, imported) pair."""
    known = modules(root)
    return {(name, dep) for name, path in known.items() for dep in imports_of(name, path, known)}


def import_cycle(arrows: set[tuple[str, str]]) -> list[str] | None:
    """One cycle of the arrows as the modules along it (the first one back at the end), or None."""
    graph: dict[str, list[str]] = {}
    for src, dst in sorted(arrows):
        graph.setdefault(src, []).append(dst)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done

    def visit(module: str, path: list[str]) -> list[str] | None:
        state[module] = 1
        for dep in graph.get(module, ()):
            if state.get(dep) == 1:
                return [*path[path.index(dep) :], dep]
            if dep not in state and (found := visit(dep, [*path, dep])):
                return found
        state[module] = 2
        return None

    for module in sorted(graph):
        if module not in state and (found := visit(module, [module])):
            return found
    return None


def line_counts(root: Path = REPO_ROOT) -> dict[str, int]:
    return {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in modules(root).items()}


def main(root: Path) -> None:
    sizes = line_counts(root)
    longest = max(sizes, key=lambda m: sizes[m])
    arrows = import_arrows(root)
    folders: dict[str, int] = {}
    for path in modules(root).values():
        folder = str(path.parent.relative_to(root)) or "."
        folders[folder] = folders.get(folder, 0) + 1
    per_package = ", ".join(f"{p} {sum(1 for m in sizes if m.split('.')[0] == p)}" for p in PACKAGES)
    print(f"modules: {len(sizes) - 1} ({per_package})")
    print(
        f"longest: {longest} ({sizes[longest]} lines); over 400: {sorted(m for m, n in sizes.items() if n > 400)}"
    )
    nodes_in = {d for m, d in arrows if m.startswith("nodes") and d.startswith("wavespeed")}
    print(
        f"import arrows: {len(arrows)}; wavespeed modules nodes/ imports: {len(nodes_in)} {sorted(nodes_in)}"
    )
    print(f"largest folder: {max(folders.items(), key=lambda kv: kv[1])}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else REPO_ROOT)
