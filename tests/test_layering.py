"""The package layering ``core <- genotypes <- models <- racl_search <- bench``, proven on the AST.

Every ``import`` and ``from ... import`` anywhere in a module (top level, inside functions,
under ``if TYPE_CHECKING``) and every ``importlib.import_module("...")`` / ``__import__("...")``
with a literal name counts: a package may import only itself and the packages below it.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LAYERS = ("core", "genotypes", "models", "racl_search", "bench")


def imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    """``(line, dotted module name)`` of every import in ``tree``, lazy ones included."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name not in ("import_module", "__import__"):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                found.append((node.lineno, arg.value))
            elif isinstance(arg, ast.JoinedStr) and arg.values:
                head = arg.values[0]
                if isinstance(head, ast.Constant) and isinstance(head.value, str):
                    found.append((node.lineno, head.value))
    return found


def layering_violations(root: Path, layers: tuple[str, ...] = LAYERS) -> list[str]:
    """Every import under ``root`` of a package at a higher layer than the importer's."""
    rank = {name: i for i, name in enumerate(layers)}
    problems = []
    for package in layers:
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for line, module in imported_names(tree):
                top = module.split(".")[0]
                if top in rank and rank[top] > rank[package]:
                    rel = path.relative_to(root)
                    problems.append(f"{rel}:{line} imports {module} ({package} < {top})")
    return problems


def test_the_packages_keep_their_layers():
    assert [p for p in LAYERS if not (ROOT / p / "__init__.py").is_file()] == []
    assert layering_violations(ROOT) == []


def test_core_imports_nothing_of_ours():
    ours = set(LAYERS) - {"core"}
    for path in sorted((ROOT / "core").rglob("*.py")):
        names = imported_names(ast.parse(path.read_text(encoding="utf-8")))
        assert [m for _, m in names if m.split(".")[0] in ours] == [], path


def test_the_check_fires_on_every_kind_of_upward_import(tmp_path):
    for package in LAYERS:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "core" / "top.py").write_text("import bench.cli\n")
    (tmp_path / "genotypes" / "lazy.py").write_text(
        "def f():\n    from models.registry import create_model\n    return create_model\n"
    )
    (tmp_path / "models" / "dynamic.py").write_text(
        "import importlib\n\n\ndef g(name):\n"
        "    return importlib.import_module(f'racl_search.{name}')\n"
    )
    (tmp_path / "racl_search" / "typing_only.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.store import X\n"
    )
    (tmp_path / "racl_search" / "fine.py").write_text("import core.enums\nfrom models import OPS\n")
    (tmp_path / "bench" / "fine.py").write_text("import core, genotypes, models, racl_search\n")
    found = layering_violations(tmp_path)
    assert found == [
        "core/top.py:1 imports bench.cli (core < bench)",
        "genotypes/lazy.py:2 imports models.registry (genotypes < models)",
        "models/dynamic.py:5 imports racl_search. (models < racl_search)",
        "racl_search/typing_only.py:3 imports bench.store (racl_search < bench)",
    ]
