"""Search configuration: one dataclass, three presets (smoke / demo / paper), a content hash.

The paper preset is RACL's search (Dong et al., AAAI 2021, Sec. 3.1, following PC-DARTS):
CIFAR-10 split in halves, 8 cells, 16 channels, 50 epochs, batch 128, SGD 0.1 cosine / momentum
0.9 / wd 3e-4 / clip 5, architecture Adam 6e-4 betas (0.5, 0.999) wd 1e-3, 15 warm-up epochs
(PC-DARTS). ``demo`` fits a few minutes on a 2-core CPU on real MNIST; ``smoke`` takes seconds.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any

from core.enums import SearchMethod, Strength
from racl_search.errors import SearchError
from racl_search.options import BoundMode, Confidence, Penalty, Target

PRESETS = ("smoke", "demo", "paper")
# `bench search --compile auto` compiles on CUDA for these presets only (docs/decisions/speed.md)
COMPILE_ON_CUDA = {"smoke": False, "demo": False, "paper": True}


@dataclass(frozen=True)
class SearchConfig:
    """Everything that determines a search's result (``device`` excepted)."""

    preset: str = "demo"
    dataset: str = "mnist"
    method: str = SearchMethod.RACL.value
    eta: float = 0.9
    rho: float = 1e-3
    # The dual rises by rho * c per architecture step, so its reach is rho x (number of arch
    # steps). Small presets take ~100x fewer steps than the paper; ``rho_scale`` multiplies rho
    # (dual step and penalty) to keep rho x steps near the paper's. 1 for the paper preset.
    rho_scale: float = 1.0
    log_lipschitz_target: float | None = None
    strength: str = Strength.MEDIAN.value
    bound: str = BoundMode.OPERATOR.value  # per-op constants (operator | paper)
    penalty: str = Penalty.PHR.value  # augmented-Lagrangian term (phr | paper)
    target: str = Target.RELATIVE.value  # ln lambda* if not given (relative | start)
    confidence: str = Confidence.EXACT.value  # the chance constraint (exact | paper)
    live_sigma: bool = False  # the constraint's spread: starting sigma (default) or current (D9)
    seed: int = 0
    # data and schedule
    n_images: int = 2400  # taken from the train split, half for weights, half for architecture
    batch_size: int = 64
    epochs: int = 5
    warmup_epochs: int = 1
    # supernet
    init_channels: int = 8
    layers: int = 5
    steps: int = 4
    partial_k: int = 4
    bn_scale: bool = False
    # weights (PC-DARTS)
    lr: float = 0.1
    lr_min: float = 0.0
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    # architecture
    arch_lr: float = 6e-4
    arch_betas: tuple[float, float] = (0.5, 0.999)
    arch_weight_decay: float = 1e-3
    sigma_init: float = 0.2
    sequential_sigma: bool = False
    # BatchNorm's running statistics as a cumulative average instead of momentum 0.1. The
    # search reads batch statistics, so this moves only the logged eval-mode accuracy (a
    # control, tested; docs/SEARCH.md D2).
    bn_cumulative: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", SearchMethod.parse(self.method).value)
        object.__setattr__(self, "strength", Strength.parse(self.strength).value)
        object.__setattr__(self, "bound", BoundMode.parse(self.bound).value)
        object.__setattr__(self, "penalty", Penalty.parse(self.penalty).value)
        object.__setattr__(self, "target", Target.parse(self.target).value)
        object.__setattr__(self, "confidence", Confidence.parse(self.confidence).value)
        object.__setattr__(self, "arch_betas", tuple(self.arch_betas))
        validate(self)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["arch_betas"] = list(self.arch_betas)
        return data

    def config_hash(self) -> str:
        """sha256 (16 hex) of every field: same hash, same search."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def validate(config: SearchConfig) -> None:
    """Raise :class:`SearchError` (one line) for out-of-range values."""
    checks = [
        (0.0 < config.eta < 1.0, f"eta must lie in (0, 1), got {config.eta}"),
        (config.rho >= 0.0, f"rho must be >= 0, got {config.rho}"),
        (config.rho_scale > 0.0, f"rho_scale must be > 0, got {config.rho_scale}"),
        (config.epochs >= 1, f"epochs must be >= 1, got {config.epochs}"),
        (config.warmup_epochs >= 0, f"warmup_epochs must be >= 0, got {config.warmup_epochs}"),
        (config.n_images >= 4, f"n_images must be >= 4, got {config.n_images}"),
        (config.batch_size >= 1, f"batch_size must be >= 1, got {config.batch_size}"),
        (config.layers >= 3, f"layers must be >= 3 (two reduction cells), got {config.layers}"),
        (
            config.init_channels % config.partial_k == 0,
            f"init_channels {config.init_channels} must be a multiple of K={config.partial_k}",
        ),
        (config.sigma_init > 0, f"sigma_init must be > 0, got {config.sigma_init}"),
    ]
    for ok, message in checks:
        if not ok:
            raise SearchError(message)


_PRESET_VALUES: dict[str, dict[str, Any]] = {
    "smoke": dict(
        dataset="mnist", n_images=64, batch_size=16, epochs=2, warmup_epochs=1,
        init_channels=4, layers=3, rho_scale=100.0, arch_lr=0.02,
    ),
    # paper: 35 arch epochs x 195 steps = 6825 arch steps; demo: 3 x 15 = 45 (rho_scale 150);
    # arch_lr 0.02 lets mu travel about as far in 45 Adam steps as 6e-4 does in ~1500
    "demo": dict(
        dataset="mnist", n_images=2000, batch_size=64, epochs=4, warmup_epochs=1,
        init_channels=8, layers=5, rho_scale=150.0, arch_lr=0.02,
    ),
    "paper": dict(
        dataset="cifar10", n_images=50_000, batch_size=128, epochs=50, warmup_epochs=15,
        init_channels=16, layers=8,
    ),
}  # fmt: skip


def make_config(preset: str = "demo", **overrides: Any) -> SearchConfig:
    """A preset's config with ``overrides`` (None values are ignored)."""
    if preset not in _PRESET_VALUES:
        raise SearchError(f"unknown preset {preset!r}; choose one of: {', '.join(PRESETS)}")
    known = {f.name for f in fields(SearchConfig)}
    unknown = sorted(set(overrides) - known)
    if unknown:
        raise SearchError(f"unknown search option(s): {', '.join(unknown)}")
    values = {**_PRESET_VALUES[preset], "preset": preset}
    values.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return SearchConfig(**values)
    except ValueError as err:
        raise SearchError(str(err)) from None
