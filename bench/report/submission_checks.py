"""Validating a leaderboard entry three ways, each a one-line UserError naming the first fault.

- :func:`validate_entry`: our own rules (types, two-decimal accuracies, eps text, AutoAttack not
  above clean, ``external`` below AutoAttack);
- :func:`leaderboard_check`: the RobustBench repository's current ``model_info`` field set,
  kept as data in ``robustbench_model_info.json`` with the commit it was read from
  (``scripts/model_info_fields.py`` rewrites it);
- :func:`robustbench_check`: robustbench 1.1.1's ``ModelInfo`` (the pip release) for the fields
  that release knows; it predates ``unreliable`` and ``external``, which only the field set
  above checks.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path

from core.errors import UserError

FIELD_SET = Path(__file__).with_name("robustbench_model_info.json")
THREAT_MODEL_NAMES = {"linf": "Linf", "l2": "L2"}
ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")
STRING_FIELDS = ("link", "name", "authors", "dataset", "venue", "architecture", "eps",
                 "clean_acc", "reported", "autoattack_acc")  # fmt: skip
# RobustBench's field order; external, footnote and unreliable are optional there
FIELDS = (*STRING_FIELDS[:3], "additional_data", "number_forward_passes", *STRING_FIELDS[3:],
          "external", "footnote", "unreliable")  # fmt: skip
REQUIRED = tuple(f for f in FIELDS if f not in ("external", "footnote", "unreliable"))
ACC_RE = re.compile(r"^\d{1,3}\.\d{2}$")
REPORTED_RE = re.compile(r"^\d{1,3}(\.\d{1,2})?$")
EPS_RE = re.compile(r"^(\d+/255|\d+(\.\d+)?)$")
JSON_TYPES = {"string": str, "boolean": bool, "integer": int, "number": float, "null": type(None)}


def validate_entry(entry: dict) -> None:
    """Our own field/type check (always runs); raises UserError naming the first fault."""
    missing = [f for f in REQUIRED if f not in entry]
    extra = [f for f in entry if f not in FIELDS]
    if missing or extra:
        raise UserError(f"model_info fields wrong: missing {missing}, unexpected {extra}")
    for name in (*STRING_FIELDS, *[f for f in ("external", "footnote") if f in entry]):
        if not isinstance(entry[name], str):
            raise UserError(f"model_info field {name!r} must be a string")
    for name in ("additional_data", "unreliable"):
        if name in entry and not isinstance(entry[name], bool):
            raise UserError(f"model_info field {name!r} must be a boolean")
    passes = entry["number_forward_passes"]
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise UserError("model_info field 'number_forward_passes' must be a positive integer")
    for name in ("clean_acc", "autoattack_acc", *[f for f in ("external",) if f in entry]):
        if not ACC_RE.match(entry[name]) or not 0 <= float(entry[name]) <= 100:
            raise UserError(f"model_info field {name!r} must be a percentage like '84.36'")
    if not REPORTED_RE.match(entry["reported"]) or float(entry["reported"]) > 100:
        raise UserError("model_info field 'reported' must be a percentage like '62.5'")
    if not EPS_RE.match(entry["eps"]):
        raise UserError(
            f"model_info field 'eps' must read like '8/255' or '0.3', got {entry['eps']!r}"
        )
    if float(entry["autoattack_acc"]) > float(entry["clean_acc"]):
        raise UserError("autoattack_acc exceeds clean_acc: the AutoAttack result is suspect")
    if "external" in entry and float(entry["external"]) >= float(entry["autoattack_acc"]):
        raise UserError("model_info field 'external' must be below autoattack_acc")


@lru_cache(maxsize=1)
def leaderboard_fields() -> dict:
    """The RobustBench repository's field set (``robustbench_model_info.json``)."""
    return json.loads(FIELD_SET.read_text(encoding="utf-8"))


def leaderboard_check(entry: dict) -> str:
    """Check ``entry`` against the leaderboard repository's current field set; returns a note
    naming the commit it was read from."""
    data = leaderboard_fields()
    fields = data["fields"]
    unknown = [f for f in entry if f not in fields]
    missing = [f for f, spec in fields.items() if spec["required"] and f not in entry]
    if unknown or missing:
        raise UserError(
            f"the leaderboard's model_info fields (RobustBench {data['commit'][:7]}) are not "
            f"met: missing {missing}, unknown {unknown}"
        )
    for name, value in entry.items():
        allowed = fields[name]["types"]
        if not any(_is(value, JSON_TYPES[t]) for t in allowed):
            raise UserError(
                f"model_info field {name!r} is {type(value).__name__}; the leaderboard's "
                f"entries (RobustBench {data['commit'][:7]}) hold {' or '.join(allowed)}"
            )
    return f"matches the leaderboard's model_info fields (RobustBench {data['commit'][:7]})"


def _is(value: object, kind: type) -> bool:
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, kind)


def robustbench_check(entry: dict, threat_model: str = "Linf", *, required: bool = False) -> str:
    """Validate with robustbench's ModelInfo and enums; returns a one-line note.

    robustbench is imported through :func:`core.robustbench_guard.import_robustbench`. Without
    it the check is skipped with a note, or, with ``required``, refused with a UserError. The
    fields the pip release does not know but the leaderboard's current entries carry
    (``unreliable``, ``external``) are left to :func:`leaderboard_check`."""
    try:
        from core.robustbench_guard import import_robustbench

        import_robustbench()
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
        from robustbench.utils import ModelInfo
    except Exception as err:  # not installed, or its import fails
        if required:
            raise UserError(f"robustbench is needed to validate the entry: {err}") from None
        return f"robustbench not importable ({type(err).__name__}); its validation was skipped"
    known = set(ModelInfo.__dataclass_fields__)
    newer = set(leaderboard_fields()["fields"]) - known
    try:
        ModelInfo(**{k: v for k, v in entry.items() if k in known or k not in newer})
        ThreatModel(THREAT_MODEL_NAMES.get(str(threat_model).lower(), threat_model))
        if entry["dataset"] in ROBUSTBENCH_DATASETS:
            BenchmarkDataset(entry["dataset"])
    except (TypeError, ValueError) as err:
        raise UserError(f"robustbench rejects the entry: {err}") from None
    return "validated with robustbench.utils.ModelInfo"
