"""The layout a newcomer walks (issue 20): folders that show the layers, imports that only go down.

Read with scripts/layout.py, the same reader that prints the figures in the closing notes.
"""

from __future__ import annotations

import ast
import importlib
from collections import Counter
from pathlib import Path

import pytest

from scripts import layout
from scripts.pack_loader import PACK_NAME, REPO_ROOT

# wavespeed/ subpackages, bottom first: a module may import its own subpackage or a lower one only.
LAYERS = {"core": 0, "settings": 1, "api": 2, "images": 2, "net": 3, "journal": 4, "limits": 4, "tasks": 5}
MAX_LINES = 400
MAX_MODULES_PER_FOLDER = 8


def _subpackage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if parts[0] == "wavespeed" and len(parts) > 2 else None


def test_every_wavespeed_subpackage_has_a_layer() -> None:
    folders = {p.name for p in (REPO_ROOT / "wavespeed").iterdir() if (p / "__init__.py").exists()}
    assert folders == set(LAYERS)


def test_wavespeed_imports_only_go_down() -> None:
    upward = [
        f"{src} -> {dst}"
        for src, dst in layout.import_arrows()
        if (a := _subpackage(src)) and (b := _subpackage(dst)) and a != b and LAYERS[b] >= LAYERS[a]
    ]
    assert upward == []


def test_the_layers_import_each_other_one_way() -> None:
    """wavespeed/ never imports nodes/ (nor the emulator); the emulator is a program of its own."""
    wrong = [
        f"{src} -> {dst}"
        for src, dst in layout.import_arrows()
        if (src.startswith("wavespeed") and not dst.startswith("wavespeed"))
        or (src.startswith("emulator") and not dst.startswith("emulator"))
    ]
    assert wrong == []


def test_nodes_reach_wavespeed_only_through_the_facade() -> None:
    inside = [
        f"{src} -> {dst}"
        for src, dst in layout.import_arrows()
        if src.startswith("nodes") and dst.startswith("wavespeed") and dst != "wavespeed"
    ]
    assert inside == []


def test_no_import_cycle_between_modules() -> None:
    """Every import counts: at the top, inside a function, under TYPE_CHECKING, a package's own."""
    assert layout.import_cycle(layout.import_arrows()) is None


def test_an_import_inside_a_function_or_under_type_checking_closes_a_cycle(tmp_path: Path) -> None:
    """The reader sees the cycle a lazy import or a TYPE_CHECKING import makes (the check can fail)."""
    for pkg in layout.PACKAGES:
        (tmp_path / pkg).mkdir()
        (tmp_path / pkg / "__init__.py").write_text("")
    (tmp_path / "__init__.py").write_text("")
    (tmp_path / "nodes" / "a.py").write_text("def f():\n    from .b import g\n")
    (tmp_path / "nodes" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .a import f\n"
    )
    assert layout.import_cycle(layout.import_arrows(tmp_path)) == ["nodes.a", "nodes.b", "nodes.a"]
    (tmp_path / "nodes" / "b.py").write_text("")
    assert layout.import_cycle(layout.import_arrows(tmp_path)) is None


def test_modules_stay_small() -> None:
    sizes = layout.line_counts()
    assert {m: n for m, n in sizes.items() if n > MAX_LINES} == {}


def test_folders_stay_small() -> None:
    per_folder = Counter(path.parent for path in layout.modules().values())
    assert {
        str(f.relative_to(REPO_ROOT)): n for f, n in per_folder.items() if n > MAX_MODULES_PER_FOLDER
    } == {}


def test_no_two_modules_share_a_name() -> None:
    names = Counter(p.name for p in layout.modules().values() if p.name not in ("__init__.py", "__main__.py"))
    assert [name for name, n in names.items() if n > 1] == []


def test_test_folders_mirror_the_code() -> None:
    """tests/wavespeed/<sub> exists for each subpackage it tests, and names no folder the code lacks."""
    code = {p.name for p in (REPO_ROOT / "wavespeed").iterdir() if (p / "__init__.py").exists()}
    tested = {
        p.name
        for p in (REPO_ROOT / "tests" / "wavespeed").iterdir()
        if p.is_dir() and p.name != "__pycache__"
    }
    assert tested <= code and len(tested) >= len(code) - 1


def _facade_type_checking_names() -> set[str]:
    tree = layout.parse_source(REPO_ROOT / "wavespeed" / "__init__.py")
    imports = [n for n in layout.type_checking_nodes(tree) if isinstance(n, ast.ImportFrom)]
    return {alias.asname or alias.name for node in imports for alias in node.names}


def test_the_facade_names_each_name_once_and_at_most_30() -> None:
    """The loader reads the checker's block itself (no second list), and the facade stays a boundary."""
    facade = importlib.import_module(f"{PACK_NAME}.wavespeed")
    tree = layout.parse_source(REPO_ROOT / "wavespeed" / "__init__.py")
    written = [
        alias.asname or alias.name
        for n in layout.type_checking_nodes(tree)
        if isinstance(n, ast.ImportFrom)
        for alias in n.names
    ]
    assert sorted(written) == sorted(set(written)) == sorted(facade._names())
    assert len(written) <= 30, written


def test_the_facade_holds_what_nodes_use_and_no_more() -> None:
    used: set[str] = set()
    for path in (p for m, p in layout.modules().items() if m.startswith("nodes")):
        for node in ast.walk(layout.parse_source(path)):
            if isinstance(node, ast.ImportFrom) and node.module == "wavespeed" and node.level >= 2:
                used.update(alias.name for alias in node.names)
    assert used == _facade_type_checking_names()


@pytest.mark.parametrize("name", sorted(_facade_type_checking_names()))
def test_every_facade_name_loads(name: str) -> None:
    facade = importlib.import_module(f"{PACK_NAME}.wavespeed")
    assert getattr(facade, name) is not None


def test_an_unknown_facade_name_is_an_attribute_error() -> None:
    facade = importlib.import_module(f"{PACK_NAME}.wavespeed")
    with pytest.raises(AttributeError, match="no attribute 'NoSuchThing'"):
        _ = facade.NoSuchThing
