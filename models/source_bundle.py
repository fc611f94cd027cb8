"""Gather the source of some top-level definitions of this package, with everything they use.

:func:`bundle` reads our own modules' source (never imports them for this), finds the
top-level classes, functions and assignments a root uses at run time (names inside annotations
are left out: the bundled file starts with ``from __future__ import annotations``), follows
``from <ours> import X`` to the defining module, and returns the definitions dependencies
first, with the third-party import lines they need. A dict assignment can be cut to some of
its keys (``keep``): ``OPS`` with only the ops a genotype uses. :mod:`models.export` writes a
standalone model file from it.
"""

from __future__ import annotations

import ast
import importlib.util
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

OURS = ("core", "genotypes", "models")


@dataclass(frozen=True)
class Module:
    """One of our modules, parsed: its top-level definitions and imports by local name."""

    name: str
    source: str
    defs: dict[str, ast.stmt]
    ours: dict[str, tuple[str, str]]  # local name -> (module, name) of our packages
    external: dict[str, str]  # local name -> the import line that binds it


@dataclass
class Bundle:
    """Definitions in dependency order and the import lines they need."""

    imports: list[str] = field(default_factory=list)
    blocks: list[str] = field(default_factory=list)
    seen: dict[str, str] = field(default_factory=dict)  # name -> module that defined it


@cache
def parse_module(name: str) -> Module:
    """Parse module ``name`` of our packages from its file."""
    spec = importlib.util.find_spec(name)
    if spec is None or spec.origin is None:
        raise ValueError(f"no source for module {name}")
    source = Path(spec.origin).read_text(encoding="utf-8")
    tree = ast.parse(source)
    defs: dict[str, ast.stmt] = {}
    ours: dict[str, tuple[str, str]] = {}
    external: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            defs[node.name] = node
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    defs[target.id] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            defs[node.target.id] = node
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                local = alias.asname or alias.name
                if node.module.split(".")[0] in OURS:
                    ours[local] = (node.module, alias.name)
                elif node.module != "__future__":
                    line = f"from {node.module} import {alias.name}"
                    external[local] = line + (f" as {alias.asname}" if alias.asname else "")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                line = f"import {alias.name}" + (f" as {alias.asname}" if alias.asname else "")
                external[local] = line
    return Module(name, source, defs, ours, external)


def _used_names(node: ast.AST) -> set[str]:
    """Names a definition reads at run time (annotations left out)."""
    skip: set[int] = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.arg) and sub.annotation is not None:
            skip.update(id(n) for n in ast.walk(sub.annotation))
        elif isinstance(sub, (ast.FunctionDef, ast.AsyncFunctionDef)) and sub.returns:
            skip.update(id(n) for n in ast.walk(sub.returns))
        elif isinstance(sub, ast.AnnAssign):
            skip.update(id(n) for n in ast.walk(sub.annotation))
    return {
        sub.id
        for sub in ast.walk(node)
        if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and id(sub) not in skip
    }


def _resolve(module: str, name: str) -> tuple[Module, str]:
    """The module that defines ``name`` (following re-exports such as ``genotypes``)."""
    mod = parse_module(module)
    for _ in range(8):
        if name in mod.defs:
            return mod, name
        if name not in mod.ours:
            break
        target, name = mod.ours[name]
        mod = parse_module(target)
    raise ValueError(f"{name} is not defined in {module}")


def _cut_dict(mod: Module, node: ast.stmt, keys: set[str]) -> str:
    """The assignment of a dict literal with only ``keys`` (in the file's order)."""
    value = node.value
    if not isinstance(value, ast.Dict):
        raise ValueError("only a dict literal can be cut to some keys")
    target = node.target if isinstance(node, ast.AnnAssign) else node.targets[0]
    lines = [f"{ast.get_source_segment(mod.source, target)} = {{"]
    for key, item in zip(value.keys, value.values, strict=True):
        if isinstance(key, ast.Constant) and key.value in keys:
            lines.append(f"    {key.value!r}: {ast.get_source_segment(mod.source, item)},")
    return "\n".join([*lines, "}"])


def _cut_uses(mod: Module, node: ast.stmt, keys: set[str]) -> set[str]:
    value = node.value
    kept = [v for k, v in zip(value.keys, value.values, strict=True)
            if isinstance(k, ast.Constant) and k.value in keys]  # fmt: skip
    return set().union(*(_used_names(v) for v in kept)) if kept else set()


def add(bundle: Bundle, module: str, name: str, keep: dict[str, set[str]] | None = None) -> None:
    """Add ``module.name`` and what it uses to ``bundle`` (dependencies first)."""
    keep = keep or {}
    mod, name = _resolve(module, name)
    if name in bundle.seen:
        if bundle.seen[name] != mod.name:
            raise ValueError(f"two definitions named {name}: {bundle.seen[name]}, {mod.name}")
        return
    bundle.seen[name] = mod.name
    node = mod.defs[name]
    cut = keep.get(name)
    used = _cut_uses(mod, node, cut) if cut is not None else _used_names(node)
    for used_name in sorted(used - {name}):
        if used_name in mod.defs or used_name in mod.ours:
            add(bundle, mod.name, used_name, keep)
        elif used_name in mod.external and mod.external[used_name] not in bundle.imports:
            bundle.imports.append(mod.external[used_name])
    text = (
        _cut_dict(mod, node, cut) if cut is not None else ast.get_source_segment(mod.source, node)
    )
    bundle.blocks.append(_with_decorators(mod, node, text))


def _with_decorators(mod: Module, node: ast.stmt, text: str | None) -> str:
    decorators = getattr(node, "decorator_list", [])
    lines = [f"@{ast.get_source_segment(mod.source, d)}" for d in decorators]
    return "\n".join([*lines, text or ""])
