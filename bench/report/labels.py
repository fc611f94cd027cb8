"""What the report prints for things: display names of paper rows, datasets and trainings, and
the header lines above each table (dataset, preset, images, attack settings, comparability)."""

from __future__ import annotations

from collections.abc import Iterable

from bench.report.scope import Scope, standard_eps
from bench.report.selection import Measure
from bench.report.table_model import format_eps

# Paper rows as the paper prints them.
DISPLAY = {
    "resnet18": "ResNet-18",
    "densenet121": "DenseNet-121",
    "amoebanet": "AmoebaNet",
    "nasnet": "NasNet",
    "darts": "DARTS",
    "pc_darts": "PC-DARTS",
    "robnet_small": "RobNet-small",
    "robnet_medium": "RobNet-medium",
    "racl": "RACL",
    "vgg19": "VGG-19",
    "pgd_at": "PGD-AT",
    "trades": "TRADES",
    "l2nnn": "L2NNN",
    "adp": "ADP",
    "without_cl": "Without CL",
    "eta0.9_rho0.01": "eta=0.9, rho=0.01",
    "eta0.9_rho0.0001": "eta=0.9, rho=0.0001",
    "eta0.7_rho0.001": "eta=0.7, rho=0.001",
    "eta0.9_rho0.001": "eta=0.9, rho=0.001",
}
DATASET_NAMES = {
    "cifar10": "CIFAR-10",
    "cifar100": "CIFAR-100",
    "mnist": "MNIST",
    "fashion_mnist": "Fashion-MNIST",
}
TRAINING_NAMES = {"natural": "natural (clean images)", "pgd_at": "PGD-AT", "trades": "TRADES"}
CELLS_LINE = (
    "Cells: ours [95 % Wilson interval] (paper, ours - paper), accuracy in %; '-' = not in the "
    "store / not in the paper."
)


def display(paper_row: str | None) -> str:
    """Pretty name of a paper row (falls back to the row key)."""
    if paper_row is None:
        return "-"
    return DISPLAY.get(paper_row, paper_row)


def dataset_name(dataset: str | None) -> str:
    return DATASET_NAMES.get(dataset or "", str(dataset))


def training_name(training: str | None) -> str | None:
    """Pretty name of a training (the key itself when unknown)."""
    return TRAINING_NAMES.get(training, training)


def images_line(measures: Iterable[Measure]) -> str:
    """``Test images per cell: 200``, with the training seeds where there are several."""
    measures = list(measures)
    ns = sorted({m.n for m in measures})
    if not ns:
        return "Test images per cell: -"
    span = str(ns[0]) if len(ns) == 1 else f"{ns[0]}-{ns[-1]}"
    seeds = sorted({r.seed for m in measures for r in m.seeds})
    if len(seeds) < 2:
        return f"Test images per cell: {span}"
    names = ", ".join(map(str, seeds))
    return (
        f"Test images per cell: {span}; training seeds {names}: a cell shows seed {seeds[0]}'s "
        "number and interval, then the mean ± SD over its seeds"
    )


def attack_line(label: str, measures: list[Measure]) -> str:
    """``PGD20: 20 steps, step 0.01`` from the measures of one column."""
    steps = sorted({m.steps for m in measures if m.steps is not None})
    sizes = sorted({round(m.step_size, 6) for m in measures if m.step_size is not None})
    parts = []
    if steps:
        parts.append(f"{'/'.join(map(str, steps))} step(s)")
    if sizes:
        parts.append(f"step size {'/'.join(format_eps(s) for s in sizes)}")
    passes = effort_text(measures)
    if passes:
        parts.append(passes)
    return f"{label}: {', '.join(parts)}" if parts else ""


def effort_text(measures: list[Measure]) -> str:
    """``21.0 forward / 20.0 backward passes per image`` (mean over the column's cells that
    recorded them; store schema 6), or '' when none did."""
    known = [m for m in measures if m.forward_passes is not None and m.backward_passes is not None]
    if not known:
        return ""
    forward = sum(m.forward_passes for m in known) / len(known)
    backward = sum(m.backward_passes for m in known) / len(known)
    return f"{forward:.1f} forward / {backward:.1f} backward passes per image"


def scope_lines(scope: Scope, paper_dataset: str | None) -> list[str]:
    """Dataset/preset/budget lines plus the warning when the setting is not the paper's."""
    lines = [
        f"Dataset: {dataset_name(scope.dataset)} (paper: {dataset_name(paper_dataset)}); "
        f"preset: {scope.preset or '-'}; L-inf budget eps = {format_eps(scope.eps)}",
        CELLS_LINE,
    ]
    standard = standard_eps(scope.dataset)
    if standard is not None and scope.eps is not None and abs(scope.eps - standard) > 1e-6:
        lines.append(
            f"Attacked at eps = {format_eps(scope.eps)}, not the paper's {format_eps(standard)} "
            f"for {dataset_name(scope.dataset)}: the paper's numbers are a reference, not a target."
        )
    if scope.preset != "paper" or (paper_dataset and scope.dataset != paper_dataset):
        lines.append(
            "Demo-scale numbers (other dataset, smaller models, fewer images and epochs) are "
            "not comparable in absolute terms with the paper's; compare orderings, not values."
        )
    return lines
