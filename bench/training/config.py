"""How a model is trained, as one frozen config (:class:`TrainConfig`), and the content hash of
a checkpoint made with it (:func:`config_hash`): the key of the checkpoint cache."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields

from core.enums import Dataset, Training
from core.errors import UserError

SCHEDULES = ("cosine", "constant", "step")
OPTIMIZERS = ("sgd", "adam")
AMP_MODES = ("off", "bf16", "fp16")
HASH_VERSION = 1
# The recipe fields: left out of the hash at their defaults, so a config that does not use them
# hashes as if they did not exist (docs/decisions/store.md, "Recipe fields and older states").
RECIPE_DEFAULTS: dict[str, object] = {
    "cutout": 0,
    "warmup_epochs": 0,
    "lr_milestones": (),
    "lr_gamma": 0.1,
    "bn_bias_decay": True,
    "optimizer": "sgd",
    "amp": "off",
    "n_holdout": 0,
    "keep": "final",
    "select_steps": 10,
}


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained (everything that changes the weights is part of the hash)."""

    training: Training = Training.NATURAL
    epochs: int = 1
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    grad_clip: float = 5.0
    eps: float = 8 / 255
    attack_steps: int = 7
    attack_step_size: float = 2 / 255
    trades_beta: float = 6.0
    n_train: int | None = None
    augment: bool = True
    seed: int = 0
    auxiliary_weight: float = 0.4
    drop_path_prob: float = 0.0
    eps_warmup: float = 0.0
    cutout: int = 0
    warmup_epochs: int = 0
    lr_milestones: tuple[int, ...] = ()
    lr_gamma: float = 0.1
    bn_bias_decay: bool = True
    optimizer: str = "sgd"
    amp: str = "off"
    n_holdout: int = 0
    keep: str = "final"
    select_steps: int = 10

    def __post_init__(self) -> None:
        object.__setattr__(self, "training", Training.parse(self.training))
        object.__setattr__(self, "lr_milestones", tuple(int(m) for m in self.lr_milestones))
        _check(self.cutout >= 0, f"cutout must be >= 0, got {self.cutout}")
        _check(0 <= self.warmup_epochs < self.epochs, "warmup_epochs must lie in [0, epochs)")
        _check(self.optimizer in OPTIMIZERS, f"optimizer must be one of {', '.join(OPTIMIZERS)}")
        _check(self.amp in AMP_MODES, f"amp must be one of {', '.join(AMP_MODES)}")
        _check(0 < self.lr_gamma <= 1, f"lr_gamma must lie in (0, 1], got {self.lr_gamma}")
        _check(self.keep in ("final", "best"), f"keep must be final or best, got {self.keep!r}")
        _check(self.n_holdout >= 0 and self.select_steps >= 1, "bad n_holdout / select_steps")
        _check(self.keep == "final" or self.n_holdout > 0, "keep best needs n_holdout > 0")
        _check(self.epochs >= 1, f"epochs must be >= 1, got {self.epochs}")
        _check(self.batch_size >= 1, f"batch size must be >= 1, got {self.batch_size}")
        _check(self.lr > 0, f"learning rate must be > 0, got {self.lr}")
        _check(0.0 <= self.eps <= 1.0, f"eps must lie in [0, 1], got {self.eps}")
        _check(self.attack_steps >= 1, f"attack steps must be >= 1, got {self.attack_steps}")
        _check(self.attack_step_size > 0, f"attack step must be > 0, got {self.attack_step_size}")
        _check(self.schedule in SCHEDULES, f"schedule must be one of {', '.join(SCHEDULES)}")
        _check(self.n_train is None or self.n_train >= 1, f"n_train must be >= 1: {self.n_train}")
        _check(0.0 <= self.drop_path_prob < 1.0, "drop_path_prob must lie in [0, 1)")
        _check(0.0 <= self.eps_warmup <= 1.0, f"eps_warmup must lie in [0, 1]: {self.eps_warmup}")

    @classmethod
    def paper(cls, training: str | Training, dataset: str | Dataset, **overrides) -> TrainConfig:
        """The paper's adversarial budget for a dataset (RACL 3.1), plus ``overrides``.

        CIFAR: eps 8/255, 7 steps of 2/255, SGD lr 0.1, weight decay 5e-4, batch 128. MNIST-like:
        eps 0.3 (76.5/255), 7 steps of 20/255, lr 0.01. Epochs are the caller's choice (default 1).
        """
        ds = Dataset.parse(dataset)
        if ds in (Dataset.MNIST, Dataset.FASHION_MNIST):
            base = {"eps": 76.5 / 255, "attack_step_size": 20 / 255, "lr": 0.01, "augment": False}
        else:
            base = {"eps": 8 / 255, "attack_step_size": 2 / 255}
        settings = {"training": Training.parse(training), "attack_steps": 7, **base, **overrides}
        return cls(**settings)

    def to_dict(self) -> dict:
        """JSON-safe field values (enums as their strings, tuples as lists)."""
        out = asdict(self)
        out["training"] = self.training.value
        out["lr_milestones"] = list(self.lr_milestones)
        return out

    def hash_dict(self) -> dict:
        """:meth:`to_dict` without the recipe fields at their defaults (see RECIPE_DEFAULTS)."""
        out = self.to_dict()
        for key, default in RECIPE_DEFAULTS.items():
            if getattr(self, key) == default:
                del out[key]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def config_hash(
    model_name: str,
    model_overrides: dict | None,
    dataset: str | Dataset,
    cfg: TrainConfig,
    inputs: dict[str, str] | None = None,
) -> str:
    """16 hex digits of sha256 over the canonical JSON of everything that defines the weights,
    the content of the model's genotype included (``bench.training.identity``; absent for models
    without one, whose hashes do not depend on it) and ``inputs`` (e.g. a factory's source
    hash)."""
    from bench.training.identity import genotype_digest

    payload = {
        "hash_version": HASH_VERSION,
        "model": model_name,
        "model_overrides": dict(sorted((model_overrides or {}).items())),
        "dataset": Dataset.parse(dataset).value,
        "config": cfg.hash_dict(),
    }
    content = dict(inputs or {})
    genotype = genotype_digest(model_name)
    if genotype is not None:
        content["genotype"] = genotype
    if content:
        payload["inputs"] = dict(sorted(content.items()))
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def warm_start_inputs(parent: str | None) -> dict[str, str] | None:
    """The ``inputs`` of a checkpoint that starts from another one's weights (a preset's
    ``warm_start``): that checkpoint's config hash, so a changed parent is a new key."""
    return None if parent is None else {"init": parent}


def _check(ok: bool, message: str) -> None:
    if not ok:
        raise UserError(message)
