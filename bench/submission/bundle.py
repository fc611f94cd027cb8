"""Write a submission bundle's files: entry, model code, weights, AutoAttack log, images, sums.

The documents (``ISSUE.md``, ``README.md``, ``.eval_results/*.yaml``) are rendered by the
report (:mod:`bench.report.submission_docs`) and handed in as text. Layout and reasons:
docs/decisions/submission.md.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import torch

from bench.submission.evaluated_model import EvaluatedModel, load_evaluated
from bench.submission.rerun import Rerun, disagreements, rerun_autoattack
from bench.training.checkpoint import file_sha256

SUMS = "SHA256SUMS"


@dataclass
class BundleFacts:
    """What the bundle holds, for the documents and the command's summary."""

    folder: Path
    zoo_name: str
    entry_path: str  # relative to the folder
    model_kind: str
    builder: str
    n: int
    agree_clean: int
    agree_robust: int
    adversarial: str | None = None
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256


def zoo_name(text: str) -> str:
    """A model-zoo name (letters, digits, underscores) from ``text``."""
    name = re.sub(r"\W+", "_", str(text)).strip("_")
    return name if name and not name[0].isdigit() else f"M_{name}"


def write_model_files(
    out: Path,
    *,
    store: str | Path,
    row: dict,
    stored: dict[str, torch.Tensor],
    name: str,
    threat_model: str,
    entry: dict,
    batch_size: int,
    checkpoint_dir: str | Path | None,
    data_dir: str | Path | None,
    adversarial: bool,
) -> BundleFacts:
    """Everything but the documents; ``stored`` holds the store's clean and AutoAttack bits."""
    evaluated = load_evaluated(store, str(row["checkpoint"]), str(row["dataset"]), checkpoint_dir)
    out.mkdir(parents=True, exist_ok=True)
    rerun = rerun_autoattack(evaluated.model, row, batch_size=batch_size,
                             log_path=out / "autoattack.log", data_dir=data_dir)  # fmt: skip
    wrong = disagreements(rerun.robust, stored["robust"])
    if wrong or disagreements(rerun.clean, stored["clean"]):
        raise RuntimeError(
            f"AutoAttack run again disagrees with the store on {wrong} of {len(rerun.robust)} "
            "images: the bundle's log would not be that of the entry (another machine or "
            "library version?); no bundle written"
        )
    entry_path = f"model_info/{row['dataset']}/{threat_model}/{name}.json"
    _write_json(out / entry_path, entry)
    (out / "model.py").write_text(evaluated.source, encoding="utf-8")
    _write_weights(out, evaluated)
    facts = BundleFacts(out, name, entry_path, evaluated.kind, evaluated.builder, len(rerun.x),
                        len(rerun.x) - wrong, len(rerun.x))  # fmt: skip
    if adversarial:
        facts.adversarial = _write_adversarial(out, rerun, name, str(row["dataset"]), threat_model)
    written = ["model.py", "weights.safetensors", "weights.pt", "autoattack.log", entry_path]
    facts.files = {rel: file_sha256(out / rel) for rel in [*written, facts.adversarial] if rel}
    return facts


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def _write_weights(out: Path, evaluated: EvaluatedModel) -> None:
    from safetensors.torch import save_file

    state = {
        k: v.detach().cpu().contiguous().clone() for k, v in evaluated.model.state_dict().items()
    }
    save_file(state, str(out / "weights.safetensors"))
    torch.save(state, out / "weights.pt")


def _write_adversarial(out: Path, rerun: Rerun, name: str, dataset: str, threat_model: str) -> str:
    """The adversarial images as one tensor in test-set order (RobustBench's external
    evaluation form asks for a ``.pt`` tensor the size of the test set)."""
    path = out / "adversarial" / f"{name}_{dataset}_{threat_model}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(rerun.x_adv.contiguous(), path)
    return str(path.relative_to(out))


def write_documents(out: Path, documents: dict[str, str]) -> None:
    """Write the rendered documents (relative path -> text)."""
    for relative, text in documents.items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def write_sums(out: Path) -> dict[str, str]:
    """``SHA256SUMS`` over every file of the bundle (``sha256sum -c`` reads it); returns them."""
    sums = {
        str(p.relative_to(out)): file_sha256(p)
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != SUMS
    }
    (out / SUMS).write_text("".join(f"{h}  {name}\n" for name, h in sums.items()), encoding="utf-8")
    return sums
