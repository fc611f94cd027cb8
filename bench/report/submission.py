"""A RobustBench leaderboard entry (``model_info`` JSON) from a standard AutoAttack result.

The store's ``autoattack`` rows (version ``standard``) and the clean row of the same checkpoint
give the accuracies; ``reported``, ``unreliable``, ``external`` and the footnote's marks come
from :mod:`bench.report.submission_evidence`; :mod:`bench.report.submission_checks` validates
the entry (our rules, the leaderboard repository's field set, robustbench's ``ModelInfo``).
Field rules: docs/decisions/submission.md.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from bench.report.loading import load_store, most_common
from bench.report.outcomes import decode_bits
from bench.report.scope import standard_eps
from bench.report.selection import Measure, pool
from bench.report.submission_checks import (
    FIELDS,
    ROBUSTBENCH_DATASETS,
    leaderboard_check,
    robustbench_check,
    validate_entry,
)
from bench.report.submission_evidence import (
    External,
    Reported,
    eps_note,
    external_evaluation,
    failing_checks,
    reported_field,
    subset_note,
)
from bench.report.table_model import format_eps
from bench.results.names import capped_iterations, members_label
from core.enums import EvalKind
from core.errors import UserError

THREAT_MODELS = {"linf": ("Linf", "linf"), "l2": ("L2", "l2")}
__all__ = ["FIELDS", "leaderboard_check", "robustbench_check", "validate_entry"]


@dataclass(frozen=True)
class SubmissionMeta:
    """The descriptive fields a user supplies (the store cannot know them); ``reported`` is the
    paper's own robust accuracy (``--reported``)."""

    name: str = ""
    authors: str = ""
    link: str = ""
    venue: str = ""
    architecture: str | None = None
    additional_data: bool = False
    number_forward_passes: int = 1
    footnote: str | None = None
    reported: str | None = None


@dataclass(frozen=True)
class Submission:
    """An entry with the facts behind it (the bundle's documents read these)."""

    entry: dict
    model: str
    threat_model: str
    aa: Measure
    clean: Measure
    row: pd.Series
    reported: Reported
    failing: tuple[str, ...]
    external: External | None
    marks: tuple[str, ...] = field(default=())
    bits: dict[str, np.ndarray] = field(default_factory=dict)  # "clean", "robust" per image
    created_at: float | None = None  # when the AutoAttack cell was stored


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
    return build_submission(store_path, model, dataset=dataset, threat_model=threat_model,
                            meta=meta, rehearsal=rehearsal).entry  # fmt: skip


def build_submission(
    store_path: str | Path,
    model: str,
    *,
    dataset: str | None = None,
    threat_model: str = "Linf",
    meta: SubmissionMeta | None = None,
    rehearsal: bool = False,
) -> Submission:
    """:func:`build_entry` with the facts behind the entry."""
    meta = meta or SubmissionMeta()
    rb_name, norm = parse_threat_model(threat_model)
    store = load_store(store_path)
    aa, clean, row = find_autoattack(store.results, model, dataset, norm, rehearsal=rehearsal)
    ds, eps, training = str(row["dataset"]), float(row["eps"]), str(row["training"])
    ours = pct(aa.accuracy)
    reported = reported_field(meta.reported, model, ds, eps, norm, training, ours)
    failing = tuple(failing_checks(store.trust, model, ds, training))
    external = external_evaluation(store.results, row)
    marks = tuple(m for m in (subset_note(ds, aa.n, str(row["data_slice"])),
                              eps_note(ds, rb_name, eps)) if m)  # fmt: skip
    footnote = meta.footnote or (
        f"Evaluated with racl-bench: standard AutoAttack ({norm}) on {aa.n} {ds} test images "
        f"(preset {row['preset']}, training {training})."
    )
    if aa.forward_passes is not None and not meta.footnote:
        footnote += (
            f" AutoAttack spent {aa.forward_passes:.0f} forward and {aa.backward_passes:.0f} "
            "backward passes per image (model calls x rows, counted at the model; it attacks "
            "only the images still classified correctly)."
        )
    footnote = " ".join([footnote, *_honesty(reported, failing, external), *marks])
    name = meta.name or f"{model} (racl-bench)"
    if rehearsal:
        label = members_label(str(aa.attack_key))
        footnote = (
            f"REHEARSAL, NOT A RESULT: {label} ({norm}) on {aa.n} {ds} "
            f"test images of a model trained on two batches (preset {row['preset']})."
        )
        name = f"REHEARSAL (not a result): {name}"
    entry = {
        "link": meta.link,
        "name": name,
        "authors": meta.authors,
        "additional_data": bool(meta.additional_data),
        "number_forward_passes": int(meta.number_forward_passes),
        "dataset": ds,
        "venue": meta.venue,
        "architecture": meta.architecture or model,
        "eps": format_eps(eps),
        "clean_acc": pct(clean.accuracy),
        "reported": reported.value,
        "autoattack_acc": ours,
        **({"external": pct(external.accuracy)} if external is not None else {}),
        "footnote": footnote,
        "unreliable": bool(failing),
    }
    validate_entry(entry)
    bits = _verdicts(store.results, row)
    created = pd.to_numeric(pd.Series([row.get("created_at")]), errors="coerce").iloc[0]
    return Submission(entry, model, rb_name, aa, clean, row, reported, failing, external, marks,
                      bits, None if pd.isna(created) else float(created))  # fmt: skip


def _verdicts(results: pd.DataFrame, row: pd.Series) -> dict[str, np.ndarray]:
    """The per-image verdicts of the AutoAttack row and of the clean row on its images."""
    out = {}
    robust = decode_bits(row["per_sample"], int(row["n"]), int(row["correct"]))
    if robust is not None:
        out["robust"] = robust.astype(bool)
    same = (results["checkpoint"] == row["checkpoint"]) & (
        results["data_slice"] == row["data_slice"]
    )
    clean = results[(results["kind"] == EvalKind.CLEAN) & same]
    if not clean.empty:
        first = clean.sort_values("key").iloc[0]
        bits = decode_bits(first["per_sample"], int(first["n"]), int(first["correct"]))
        if bits is not None:
            out["clean"] = bits.astype(bool)
    return out


def _honesty(reported: Reported, failing: tuple[str, ...], external: External | None) -> list[str]:
    """The footnote's sentences on ``reported``, ``unreliable`` and ``external``."""
    out = []
    if reported.ours:
        out.append("'reported' is our own AutoAttack measurement: no paper number was given.")
    else:
        out.append(f"'reported' is {reported.source}.")
    if failing:
        out.append(f"Marked unreliable: failing trust checks {', '.join(failing)}.")
    if external is not None:
        out.append(
            f"{pct(external.accuracy)}% robust accuracy is due to AutoAttack together with "
            f"{', '.join(external.attacks)} on the same {external.n} images (worst case per image)."
        )
    return out


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
