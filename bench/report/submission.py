"""A RobustBench leaderboard entry (``model_info`` JSON) from a standard AutoAttack result.

Only the store's ``autoattack`` rows (version ``standard``) and the clean row of the same
checkpoint are read; :func:`validate_entry` checks fields and types, robustbench's own
``ModelInfo`` too when installed (the ``leaderboard`` extra, imported through
``core/robustbench_guard.py``). Field rules: docs/decisions/report.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from bench.report.loading import load_store, most_common
from bench.report.scope import standard_eps
from bench.report.selection import Measure, pool
from bench.report.table_model import format_eps
from bench.results.names import capped_iterations, members_label
from core.enums import EvalKind
from core.errors import UserError

THREAT_MODELS = {"linf": ("Linf", "linf"), "l2": ("L2", "l2")}
ROBUSTBENCH_DATASETS = ("cifar10", "cifar100", "imagenet")
STRING_FIELDS = ("link", "name", "authors", "dataset", "venue", "architecture", "eps",
                 "clean_acc", "reported", "autoattack_acc", "footnote")  # fmt: skip
FIELDS = (*STRING_FIELDS[:3], "additional_data", "number_forward_passes", *STRING_FIELDS[3:])
ACC_RE = re.compile(r"^\d{1,3}\.\d{2}$")
EPS_RE = re.compile(r"^(\d+/255|\d+(\.\d+)?)$")


@dataclass(frozen=True)
class SubmissionMeta:
    """The descriptive fields a user supplies (the store cannot know them)."""

    name: str = ""
    authors: str = ""
    link: str = ""
    venue: str = ""
    architecture: str | None = None
    additional_data: bool = False
    number_forward_passes: int = 1
    footnote: str | None = None


def parse_threat_model(text: str) -> tuple[str, str]:
    """``Linf``/``L2`` (any case) -> (RobustBench name, store norm)."""
    key = str(text).strip().lower()
    if key not in THREAT_MODELS:
        raise UserError(f"unknown threat model {text!r}; choose Linf or L2")
    return THREAT_MODELS[key]


def autoattack_rows(
    results: pd.DataFrame, model: str, norm: str, *, rehearsal: bool = False
) -> pd.DataFrame:
    """Standard AutoAttack rows of ``model`` under ``norm`` (a NULL norm counts as L-inf).

    A run capped with ``iters=N`` is never standard; with ``rehearsal`` only capped runs count
    (the rehearsal preset's submission stage, whose entry says it is no result)."""
    rows = results[(results["model"] == model) & (results["attack"] == "autoattack")]
    norms = rows["norm"].fillna("linf").str.lower()
    keys = rows["attack_key"].fillna("").astype(str)
    standard = ~keys.str.contains("version") | keys.str.contains("standard")
    capped = keys.map(lambda key: capped_iterations(key) is not None).astype(bool)
    return rows[(norms == norm) & standard & (capped if rehearsal else ~capped)]


def _pick_dataset(rows: pd.DataFrame, dataset: str | None, model: str) -> str:
    found = sorted(set(rows["dataset"].dropna()))
    if dataset is not None:
        if dataset not in found:
            raise UserError(f"no standard AutoAttack result for {model} on {dataset} in the store")
        return dataset
    if len(found) > 1:
        raise UserError(f"{model} has AutoAttack results on {', '.join(found)}: pass --dataset")
    return found[0]


def _pick_eps(rows: pd.DataFrame, dataset: str) -> float:
    values = sorted({round(float(e), 8) for e in rows["eps"].dropna()})
    standard = standard_eps(dataset)
    for value in values:
        if standard is not None and abs(value - standard) < 1e-6:
            return value
    return float(most_common(rows["eps"].round(8), key=None))


def find_autoattack(
    results: pd.DataFrame, model: str, dataset: str | None, norm: str, *, rehearsal: bool = False
) -> tuple[Measure, Measure, pd.Series]:
    """(AutoAttack measure, clean measure, one AutoAttack row) or a one-line UserError."""
    rows = autoattack_rows(results, model, norm, rehearsal=rehearsal)
    if rows.empty:
        what = "rehearsal (capped) AutoAttack" if rehearsal else "standard AutoAttack"
        raise UserError(
            f"no {what} ({norm}) result for {model} in the store; run "
            f"'bench run --models {model} --attacks autoattack' or pass --run-autoattack"
        )
    dataset = _pick_dataset(rows, dataset, model)
    rows = rows[rows["dataset"] == dataset]
    eps = _pick_eps(rows, dataset)
    rows = rows[(rows["eps"] - eps).abs() < 1e-6]
    aa = pool(rows)
    chosen = rows[rows["attack_key"].astype(str) == str(aa.attack_key)].iloc[0]
    clean = results[(results["model"] == model) & (results["kind"] == EvalKind.CLEAN)]
    clean = clean[clean["dataset"] == dataset]
    same_ckpt = clean[clean["checkpoint"] == chosen["checkpoint"]]
    clean = same_ckpt if not same_ckpt.empty else clean[clean["training"] == chosen["training"]]
    if clean.empty:
        raise UserError(f"no clean result for {model} on {dataset} next to its AutoAttack result")
    return aa, pool(clean), chosen


def pct(value: float) -> str:
    """RobustBench's accuracy string: percent with two decimals."""
    return f"{value:.2f}"


def build_entry(
    store_path: str | Path,
    model: str,
    *,
    dataset: str | None = None,
    threat_model: str = "Linf",
    meta: SubmissionMeta | None = None,
    rehearsal: bool = False,
) -> dict:
    """The ``model_info`` dict for ``model`` from the store (UserError without AutoAttack).

    ``rehearsal``: built from the rehearsal's capped AutoAttack, its name and footnote say it
    is no leaderboard result (the stage's code path at full size, not a number to submit)."""
    meta = meta or SubmissionMeta()
    _, norm = parse_threat_model(threat_model)
    store = load_store(store_path)
    aa, clean, row = find_autoattack(store.results, model, dataset, norm, rehearsal=rehearsal)
    footnote = meta.footnote or (
        f"Evaluated with racl-bench: standard AutoAttack ({norm}) on {aa.n} {row['dataset']} "
        f"test images (preset {row['preset']}, training {row['training']}); 'reported' repeats "
        "this measurement."
    )
    if aa.forward_passes is not None and not meta.footnote:
        footnote += (
            f" AutoAttack spent {aa.forward_passes:.0f} forward and {aa.backward_passes:.0f} "
            "backward passes per image (model calls x rows, counted at the model; it attacks "
            "only the images still classified correctly)."
        )
    name = meta.name or f"{model} (racl-bench)"
    if rehearsal:
        label = members_label(str(aa.attack_key))
        footnote = (
            f"REHEARSAL, NOT A RESULT: {label} ({norm}) on {aa.n} {row['dataset']} "
            f"test images of a model trained on two batches (preset {row['preset']})."
        )
        name = f"REHEARSAL (not a result): {name}"
    entry = {
        "link": meta.link,
        "name": name,
        "authors": meta.authors,
        "additional_data": bool(meta.additional_data),
        "number_forward_passes": int(meta.number_forward_passes),
        "dataset": str(row["dataset"]),
        "venue": meta.venue,
        "architecture": meta.architecture or model,
        "eps": format_eps(float(row["eps"])),
        "clean_acc": pct(clean.accuracy),
        "reported": pct(aa.accuracy),
        "autoattack_acc": pct(aa.accuracy),
        "footnote": footnote,
    }
    validate_entry(entry)
    return entry


def validate_entry(entry: dict) -> None:
    """Our own field/type check (always runs); raises UserError naming the first fault."""
    missing = [f for f in FIELDS if f not in entry]
    extra = [f for f in entry if f not in FIELDS]
    if missing or extra:
        raise UserError(f"model_info fields wrong: missing {missing}, unexpected {extra}")
    for name in STRING_FIELDS:
        if not isinstance(entry[name], str):
            raise UserError(f"model_info field {name!r} must be a string")
    if not isinstance(entry["additional_data"], bool):
        raise UserError("model_info field 'additional_data' must be a boolean")
    passes = entry["number_forward_passes"]
    if isinstance(passes, bool) or not isinstance(passes, int) or passes < 1:
        raise UserError("model_info field 'number_forward_passes' must be a positive integer")
    for name in ("clean_acc", "reported", "autoattack_acc"):
        if not ACC_RE.match(entry[name]) or not 0 <= float(entry[name]) <= 100:
            raise UserError(f"model_info field {name!r} must be a percentage like '84.36'")
    if not EPS_RE.match(entry["eps"]):
        raise UserError(
            f"model_info field 'eps' must read like '8/255' or '0.3', got {entry['eps']!r}"
        )
    if float(entry["autoattack_acc"]) > float(entry["clean_acc"]):
        raise UserError("autoattack_acc exceeds clean_acc: the AutoAttack result is suspect")


def robustbench_check(entry: dict, threat_model: str = "Linf", *, required: bool = False) -> str:
    """Validate with robustbench's ModelInfo and enums; returns a one-line note.

    robustbench is imported through :func:`core.robustbench_guard.import_robustbench`. Without
    it the check is skipped with a note, or, with ``required``, refused with a UserError."""
    try:
        from core.robustbench_guard import import_robustbench

        import_robustbench()
        from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
        from robustbench.utils import ModelInfo
    except Exception as err:  # not installed, or its import fails
        if required:
            raise UserError(f"robustbench is needed to validate the entry: {err}") from None
        return f"robustbench not importable ({type(err).__name__}); its validation was skipped"
    try:
        ModelInfo(**entry)
        ThreatModel(parse_threat_model(threat_model)[0])
        if entry["dataset"] in ROBUSTBENCH_DATASETS:
            BenchmarkDataset(entry["dataset"])
    except (TypeError, ValueError) as err:
        raise UserError(f"robustbench rejects the entry: {err}") from None
    return "validated with robustbench.utils.ModelInfo"


def dataset_note(entry: dict) -> str | None:
    """A note when RobustBench has no leaderboard for the entry's dataset."""
    if entry["dataset"] in ROBUSTBENCH_DATASETS:
        return None
    return f"RobustBench has no {entry['dataset']} leaderboard; the entry is for local use"


def write_entry(entry: dict, path: str | Path) -> Path:
    """Write the entry as indented JSON (RobustBench's model_info layout)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(entry, indent=2) + "\n", encoding="utf-8")
    return path
