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
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.results import X\n"
    )
    (tmp_path / "racl_search" / "fine.py").write_text("import core.enums\nfrom models import OPS\n")
    (tmp_path / "bench" / "fine.py").write_text("import core, genotypes, models, racl_search\n")
    found = layering_violations(tmp_path)
    assert found == [
        "core/top.py:1 imports bench.cli (core < bench)",
        "genotypes/lazy.py:2 imports models.registry (genotypes < models)",
        "models/dynamic.py:5 imports racl_search. (models < racl_search)",
        "racl_search/typing_only.py:3 imports bench.results (racl_search < bench)",
    ]


# Inside bench/: each folder (or root module) has a rank; a module may import its own group and
# the groups of lower rank. Groups of one rank may not import each other. ``report`` reads the
# store and the trust checks only; the CLI (cli, cli_errors) sits on top.
BENCH_ORDER: tuple[tuple[str, ...], ...] = (
    ("results", "inputs"),
    ("attacks",),
    ("evaluate", "trust", "training"),
    ("plan",),
    ("run",),
    ("studies", "submission"),
    ("commands",),
    ("cli_errors",),
    ("cli",),
)
REPORT_READS = ("results", "trust", "inputs")  # and itself


def module_name(root: Path, path: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def type_only_lines(tree: ast.AST) -> set[int]:
    """Lines of the imports under ``if TYPE_CHECKING:`` (they never run)."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in node.body:
                for inner in ast.walk(sub):
                    if isinstance(inner, ast.Import | ast.ImportFrom):
                        lines.add(inner.lineno)
    return lines


def module_graph(root: Path, packages: tuple[str, ...] = LAYERS) -> dict[tuple[str, str], bool]:
    """``{(importer, imported): runs}`` between the modules of ``packages`` under ``root``;
    ``runs`` is False when every import of that pair is type-only. ``from pkg import name``
    points at ``pkg.name`` when that is a module, else at ``pkg``."""
    paths = {module_name(root, p): p for pkg in packages for p in (root / pkg).rglob("*.py")}
    edges: dict[tuple[str, str], bool] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        typed = type_only_lines(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in paths else node.module
                    for a in node.names
                ]
            else:
                continue
            for target in targets:
                while target and target not in paths:
                    target = target.rpartition(".")[0]
                if target and target != name:
                    runs = node.lineno not in typed
                    edges[(name, target)] = edges.get((name, target), False) or runs
    return edges


def runtime_circles(edges: dict[tuple[str, str], bool]) -> list[list[str]]:
    """Every import circle whose edges all run (at import time or lazily inside a function), as
    ``[a, b, ..., a]``: for each running edge ``a -> b``, the shortest running path back from
    ``b`` to ``a``. A circle closed by a type-only edge never executes and is allowed."""
    graph: dict[str, list[str]] = {}
    for (a, b), runs in sorted(edges.items()):
        if runs:
            graph.setdefault(a, []).append(b)
    found: dict[frozenset, list[str]] = {}
    for (a, b), runs in sorted(edges.items()):
        if not runs:
            continue
        previous = {b: b}
        queue = [b]
        while queue and a not in previous:
            node = queue.pop(0)
            for nxt in graph.get(node, []):
                if nxt not in previous:
                    previous[nxt] = node
                    queue.append(nxt)
        if a in previous:  # a -> b -> ... -> a
            path = [a]
            while path[-1] != b:
                path.append(previous[path[-1]])
            ring = list(reversed(path))  # b, ..., a
            start = ring.index(min(ring))
            ring = ring[start:] + ring[:start]
            found.setdefault(frozenset(ring), [*ring, ring[0]])
    return sorted(found.values())


def bench_group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "bench"


def bench_order_violations(edges: dict[tuple[str, str], bool]) -> list[str]:
    """Imports inside bench/ that run against :data:`BENCH_ORDER` or :data:`REPORT_READS`."""
    rank = {group: i for i, groups in enumerate(BENCH_ORDER) for group in groups}
    problems = []
    for (a, b), _ in sorted(edges.items()):
        if not (a.startswith("bench.") and b.startswith("bench.")):
            continue
        ga, gb = bench_group(a), bench_group(b)
        if ga == gb:
            continue
        if ga == "report":
            if gb not in REPORT_READS:
                problems.append(f"{a} imports {b} (report reads only {', '.join(REPORT_READS)})")
            continue
        if gb == "report":
            if ga not in ("commands", "cli"):
                problems.append(f"{a} imports {b} (only the commands use the report)")
            continue
        if ga not in rank or gb not in rank:
            problems.append(f"{a} imports {b} (a group outside the order)")
        elif rank[gb] >= rank[ga]:
            problems.append(f"{a} imports {b} ({ga} < {gb})")
    return problems


def test_bench_keeps_its_order_and_has_no_runtime_circle():
    edges = module_graph(ROOT)
    groups = {bench_group(a) for a, _ in edges if a.startswith("bench.")}
    ranked = {g for groups_ in BENCH_ORDER for g in groups_} | {"report"}
    assert groups <= ranked, groups - ranked  # a new folder needs its place in the order
    assert bench_order_violations(edges) == []
    assert runtime_circles(edges) == []


def test_the_bench_order_fires_on_upward_imports_and_circles(tmp_path):
    for package in ("bench", "bench/results", "bench/plan", "bench/run", "bench/report"):
        (tmp_path / package).mkdir(parents=True)
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "bench" / "results" / "store.py").write_text("import bench.run.runner\n")
    (tmp_path / "bench" / "run" / "runner.py").write_text(
        "def f():\n    from bench.plan import planner\n    return planner\n"
    )
    (tmp_path / "bench" / "plan" / "planner.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from bench.run.runner import X\n"
    )
    (tmp_path / "bench" / "plan" / "costs.py").write_text("from bench.plan import planner\n")
    (tmp_path / "bench" / "report" / "tables.py").write_text("from bench.plan import costs\n")
    edges = module_graph(tmp_path, ("bench",))
    assert edges[("bench.plan.planner", "bench.run.runner")] is False  # type-only
    assert bench_order_violations(edges) == [
        "bench.plan.planner imports bench.run.runner (plan < run)",
        "bench.report.tables imports bench.plan.costs (report reads only results, trust, inputs)",
        "bench.results.store imports bench.run.runner (results < run)",
    ]
    # runner -> planner runs, planner -> runner is type-only: the circle never executes
    assert runtime_circles(edges) == []
    (tmp_path / "bench" / "plan" / "planner.py").write_text("from bench.run.runner import X\n")
    edges = module_graph(tmp_path, ("bench",))
    assert runtime_circles(edges) == [
        ["bench.plan.planner", "bench.run.runner", "bench.plan.planner"]
    ]
    (tmp_path / "bench" / "run" / "runner.py").write_text("X = 1\n")  # the control
    edges = module_graph(tmp_path, ("bench",))
    assert runtime_circles(edges) == []
