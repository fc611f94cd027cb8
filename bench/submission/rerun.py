"""AutoAttack run again on the entry's own images, for its log and adversarial images.

The store keeps verdicts, not images or logs. The bundle's ``autoattack.log`` (pyautoattack's
own messages) and, with ``--adversarial``, its images come from running the stored cell again:
the same attack text (the original AutoAttack, version ``standard``, the stored seed), the same
images (the stored data slice), the same batches (the preset's batch size). The re-run must give
the store's verdict on every image; a model whose two eval-mode forwards of the same batch
differ is refused before (RobustBench admits deterministic models only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from bench.attacks import build_attack, parse_attack
from core.data import eval_tensors
from core.errors import UserError
from core.robustbench_guard import autoattack_log

SLICE_RE = re.compile(r"^test\[(?:0?:(?P<first>\d+)|seed=(?P<seed>\d+),n=(?P<n>\d+))\]$")


@dataclass(frozen=True)
class Rerun:
    """The re-run's images and verdicts (CPU tensors)."""

    x: Tensor
    y: Tensor
    x_adv: Tensor
    clean: Tensor  # bool per image
    robust: Tensor  # bool per image


def slice_images(
    dataset: str, data_slice: str, data_dir: str | Path | None
) -> tuple[Tensor, Tensor]:
    """The images and labels of a stored ``data_slice`` (``test[:N]``, ``test[seed=S,n=N]``)."""
    match = SLICE_RE.match(str(data_slice))
    if match is None:
        raise UserError(f"cannot read the data slice {data_slice!r} of the stored cell")
    if match["first"] is not None:
        return eval_tensors(dataset, int(match["first"]), data_dir)
    return eval_tensors(dataset, int(match["n"]), data_dir, subset_seed=int(match["seed"]))


@torch.no_grad()
def check_deterministic(model: nn.Module, x: Tensor) -> None:
    """Two eval-mode forwards of ``x`` must give the same logits, else a UserError."""
    model.eval()
    if not torch.equal(model(x), model(x)):
        raise UserError(
            "the model's forward is not deterministic (two eval-mode forwards of the same "
            "images differ): RobustBench admits only deterministic models; no bundle written"
        )


def rerun_autoattack(model: nn.Module, row: dict, *, batch_size: int, log_path: Path,
                     data_dir: str | Path | None) -> Rerun:  # fmt: skip
    """AutoAttack of the stored ``row`` again (see the module docstring)."""
    x, y = slice_images(str(row["dataset"]), str(row["data_slice"]), data_dir)
    check_deterministic(model, x[:batch_size])
    norm = str(row.get("norm") or "linf").lower()
    seed = re.search(r"seed=(\d+)", str(row["attack_key"]))
    text = f"autoattack(norm={norm!r}, seed={int(seed[1]) if seed else 0})"
    attack = build_attack(parse_attack(text, eps=float(row["eps"]), dataset=str(row["dataset"])))
    parts, clean, robust = [], [], []
    log_path.write_text("", encoding="utf-8")
    with autoattack_log(log_path):
        for start in range(0, len(x), batch_size):
            xb, yb = x[start : start + batch_size], y[start : start + batch_size]
            x_adv = attack(model, xb, yb).cpu()
            with torch.no_grad():
                clean.append(model(xb).argmax(1) == yb)
                robust.append(model(x_adv).argmax(1) == yb)
            parts.append(x_adv)
    return Rerun(x, y, torch.cat(parts), torch.cat(clean), torch.cat(robust))


def disagreements(rerun: Tensor, stored: Tensor) -> int:
    """Images whose verdict differs between the re-run and the store."""
    return int((rerun.bool() != stored.bool()).sum())
