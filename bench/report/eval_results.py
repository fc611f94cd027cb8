"""Hugging Face Hub evaluation results (``.eval_results/<benchmark>.yaml``) for an entry.

The Hub reads a YAML list of results from a model repository's ``.eval_results/`` folder; each
result names a benchmark dataset (``dataset.id``, ``dataset.task_id``), a ``value`` and, as
options, a ``date``, a ``source`` (``url`` required when given) and ``notes``. The field names
and types are kept as data in ``hf_eval_results_fields.json`` with the pages they were read
from; :func:`check_eval_results` checks a parsed file against them. The YAML is written by hand
(a small fixed shape), so no YAML library is needed to write it.
"""

from __future__ import annotations

import datetime as dt
import json
from functools import lru_cache
from pathlib import Path

from core.errors import UserError

FIELD_SPEC = Path(__file__).with_name("hf_eval_results_fields.json")
# Hub dataset ids of the test sets (the benchmarks the results are about)
HUB_DATASETS = {
    "mnist": "ylecun/mnist",
    "fashion_mnist": "zalando-datasets/fashion_mnist",
    "cifar10": "uoft-cs/cifar10",
    "cifar100": "uoft-cs/cifar100",
}


@lru_cache(maxsize=1)
def eval_results_fields() -> dict:
    """The field names and types of the format (``hf_eval_results_fields.json``)."""
    return json.loads(FIELD_SPEC.read_text(encoding="utf-8"))


def benchmark_name(dataset: str, threat_model: str) -> str:
    """The file's name: ``robustbench_<dataset>_<threat model>`` (lower case)."""
    return f"robustbench_{dataset}_{threat_model}".lower()


def eval_results(entry: dict, threat_model: str, n: int, created_at: float | None) -> list[dict]:
    """The results of an entry: clean and AutoAttack accuracy (and ``external`` when present)."""
    dataset = entry["dataset"]
    ident = HUB_DATASETS.get(dataset, dataset)
    date = None if created_at is None else dt.datetime.fromtimestamp(created_at, dt.timezone.utc)
    common = {"notes": f"{n} test images; eps {entry['eps']} ({threat_model}); racl-bench"}
    if date is not None:
        common["date"] = date.strftime("%Y-%m-%dT%H:%M:%SZ")
    if entry.get("link"):
        common["source"] = {"url": entry["link"], "name": "Paper"}
    task = f"{threat_model.lower()}_{entry['eps'].replace('/', '_')}"
    results = [
        ("clean_accuracy", entry["clean_acc"]),
        (f"autoattack_{task}", entry["autoattack_acc"]),
    ]
    if "external" in entry:
        results.append((f"strongest_attack_{task}", entry["external"]))
    return [
        {
            "dataset": {"id": ident, "task_id": task_id, "split": "test"},
            "value": float(value),
            **common,
        }  # fmt: skip
        for task_id, value in results
    ]


def to_yaml(results: list[dict]) -> str:
    """A YAML list of mappings (strings quoted as JSON, which YAML reads as the same strings)."""
    lines: list[str] = []
    for result in results:
        lines.extend(_mapping(result, indent=2, first="- "))
    return "\n".join(lines) + "\n"


def _mapping(data: dict, indent: int, first: str = "") -> list[str]:
    lines, pad = [], " " * indent
    for i, (key, value) in enumerate(data.items()):
        lead = first if i == 0 and first else pad
        if isinstance(value, dict):
            lines.append(f"{lead}{key}:")
            lines.extend(_mapping(value, indent + 2))
        else:
            lines.append(f"{lead}{key}: {json.dumps(value)}")
    return lines


def check_eval_results(results: object) -> None:
    """Check parsed eval results against the format's field names and types (UserError)."""
    spec = eval_results_fields()
    if not isinstance(results, list) or not results:
        raise UserError("eval results must be a non-empty YAML list")
    for number, result in enumerate(results, start=1):
        _check(result, spec["entry"], f"result {number}")
        _check(result["dataset"], spec["dataset"], f"result {number} dataset")
        if "source" in result:
            _check(result["source"], spec["source"], f"result {number} source")


def _check(data: object, fields: dict, where: str) -> None:
    if not isinstance(data, dict):
        raise UserError(f"eval results: {where} must be a mapping")
    unknown = sorted(set(data) - set(fields))
    missing = sorted(f for f, s in fields.items() if s["required"] and f not in data)
    if unknown or missing:
        raise UserError(f"eval results: {where}: missing {missing}, unknown {unknown}")
    for name, value in data.items():
        if not _fits(value, fields[name]["type"]):
            raise UserError(f"eval results: {where}: {name} must be {fields[name]['type']}")


def _fits(value: object, kind: str) -> bool:
    if kind == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind == "mapping":
        return isinstance(value, dict)
    if kind == "iso-8601":
        try:
            dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        except ValueError:
            return False
        return isinstance(value, (str, dt.date))
    return isinstance(value, str)
