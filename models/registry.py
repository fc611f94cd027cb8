"""The model zoo registry: ``create_model``, ``list_models``, ``get_model_info`` (timm style).

Each entry carries its metadata (family, source, genotype, the paper's parameter count, the
paper-scale constructor defaults, availability). Built-in entries are listed below; every
genotype file that ``genotypes.list_genotypes()`` finds and that is not already an entry joins
the zoo as a ``darts-cell`` model (or ``robnet`` for a RobNet file), so a searched genotype is a
model by its name.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from torch import nn

import genotypes
from core.datasets import DatasetInfo
from genotypes.names import ALIASES
from models.datasets import model_dataset
from models.errors import ModelError

CELL_DEFAULTS: dict[str, Any] = {
    "init_channels": 36,
    "layers": 20,
    "auxiliary": False,
    "drop_path_prob": 0.0,
}


@dataclass(frozen=True)
class ModelInfo:
    """Metadata of one zoo entry. ``defaults`` are the paper-scale constructor kwargs (their keys
    are the accepted overrides); ``note`` explains a parameter count that differs from the paper."""

    name: str
    family: str
    source: str
    genotype: str | None
    paper_params_m: float | None
    available: bool = True
    reason: str | None = None
    defaults: dict[str, Any] = field(default_factory=dict)
    note: str | None = None


def _cell(name: str, source: str, paper_params_m: float | None, note: str | None = None):
    return ModelInfo(name, "darts-cell", source, name, paper_params_m, True, None,
                     dict(CELL_DEFAULTS), note)  # fmt: skip


def _robnet(name: str, source: str, paper_params_m: float | None) -> ModelInfo:
    defaults = {"init_channels": 36, "layers": 20, "drop_path_prob": 0.0}
    return ModelInfo(name, "robnet", source, name, paper_params_m, True, None, defaults)


_RACL = "RACL paper (Adversarially Robust NAS with Confidence Learning): published cell"
_ROBNETS = "Guo et al., RobNets (CVPR 2020)"

BUILTIN: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        _cell("darts", "Liu et al., DARTS (ICLR 2019), second order", 3.3),
        _cell("darts_v1", "Liu et al., DARTS (ICLR 2019), first order", 3.3),
        _cell("pc_darts", "Xu et al., PC-DARTS (ICLR 2020)", 3.6),
        _cell("pdarts", "Chen et al., P-DARTS (ICCV 2019)", 3.4),
        _cell("advrush", "Mok et al., AdvRush (ICCV 2021)", None),
        _cell("nasnet", "Zoph et al., NASNet-A (CVPR 2018)", 3.8),
        _cell("amoebanet", "Real et al., AmoebaNet-A (AAAI 2019)", 3.2),
        _cell("racl_published", _RACL, 3.6),
        _robnet("robnet_small", f"{_ROBNETS}, RobNet-small", 4.4),
        _robnet("robnet_large", f"{_ROBNETS}, RobNet-large", 6.89),
        _robnet("robnet_free", f"{_ROBNETS}, RobNet-free", 5.49),
        ModelInfo(
            "robnet_medium", "robnet", f"{_ROBNETS}, RobNet-medium", None, 5.7, False,
            "RobNet-medium's architecture code was never published (the RACL paper reports 5.7M)",
        ),
        ModelInfo("resnet18", "resnet", "He et al., ResNet (CVPR 2016), CIFAR variant", None,
                  11.2, defaults={"width": 64}),
        ModelInfo("densenet121", "densenet", "Huang et al., DenseNet (CVPR 2017), CIFAR variant",
                  None, 7.0, defaults={"width": 32}),
        ModelInfo("vgg19", "vgg", "Simonyan & Zisserman, VGG (ICLR 2015), CIFAR variant with BN",
                  None, None, defaults={"width": 64}),
    )
}  # fmt: skip


def _discovered() -> dict[str, ModelInfo]:
    """Zoo entries for genotype files that are not built-in entries or aliases."""
    found = {}
    for name in genotypes.list_genotypes():
        if name in BUILTIN or name in ALIASES:
            continue
        found[name] = _info_from_file(name)
    return found


def _info_from_file(name: str) -> ModelInfo:
    try:
        record = genotypes.read_genotype_file(name)
    except genotypes.GenotypeError as err:
        return ModelInfo(name, "darts-cell", "", name, None, False, str(err), {})
    source = record.source or str(record.path)
    if isinstance(record.arch, genotypes.RobNetArch):
        arch = record.arch
        defaults = {"init_channels": arch.init_channels, "layers": arch.layers,
                    "drop_path_prob": 0.0}  # fmt: skip
        return ModelInfo(name, "robnet", source, name, None, True, None, defaults)
    return ModelInfo(name, "darts-cell", source, name, None, True, None, dict(CELL_DEFAULTS))


def _copy(info: ModelInfo) -> ModelInfo:
    """A copy whose ``defaults`` the caller may change without touching the registry."""
    return replace(info, defaults=dict(info.defaults))


def list_models() -> list[ModelInfo]:
    """Every zoo entry: built-ins first (in registry order), then genotype files by name."""
    return [*(_copy(info) for info in BUILTIN.values()), *_discovered().values()]


def _resolve(name: str) -> str:
    text = str(name).strip()
    for candidate in (text, text.lower().replace("-", "_")):
        candidate = ALIASES.get(candidate, candidate)
        if candidate in BUILTIN or candidate in genotypes.list_genotypes():
            return candidate
    names = list(dict.fromkeys([*BUILTIN, *ALIASES, *genotypes.list_genotypes()]))
    close = difflib.get_close_matches(text.lower(), names, n=4, cutoff=0.4)
    hint = f"; closest: {', '.join(close)}" if close else f"; known: {', '.join(BUILTIN)}"
    raise ModelError(f"unknown model {name!r}{hint}")


def get_model_info(name: str) -> ModelInfo:
    """The registry entry of ``name`` (aliases and ``-``/case variants accepted)."""
    key = _resolve(name)
    return _copy(BUILTIN[key]) if key in BUILTIN else _info_from_file(key)


def _check_overrides(info: ModelInfo, overrides: dict[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(overrides) - set(info.defaults))
    if unknown:
        allowed = ", ".join(info.defaults) or "none"
        bad = ", ".join(unknown)
        raise ModelError(f"{info.name}: unknown override(s) {bad}; allowed: {allowed}")
    for key, value in overrides.items():
        if key == "auxiliary":
            ok = isinstance(value, bool)
        elif key == "drop_path_prob":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < 1
        else:
            ok = isinstance(value, int) and not isinstance(value, bool) and value >= 1
        if not ok:
            raise ModelError(f"{info.name}: bad value {value!r} for override {key}")
    return {**info.defaults, **overrides}


def _builder(info: ModelInfo) -> Callable[..., nn.Module]:
    from models.densenet import DenseNet121
    from models.genotype_network import GenotypeNetwork
    from models.resnet import ResNet18
    from models.robnet import RobNet
    from models.vgg import VGG19

    if info.family == "darts-cell":
        geno = genotypes.load_genotype(info.genotype)
        return lambda shape, **kw: GenotypeNetwork(geno, shape, **kw)
    if info.family == "robnet":
        arch = genotypes.load(info.genotype)
        return lambda shape, **kw: RobNet(arch, shape, **kw)
    families = {"resnet": ResNet18, "densenet": DenseNet121, "vgg": VGG19}
    return families[info.family]


def build_model(info: ModelInfo, shape: DatasetInfo, kwargs: dict[str, Any]) -> nn.Module:
    """Build an entry with complete kwargs (no checks); used by the parameter counter too."""
    if not info.available:
        raise ModelError(f"{info.name} is unavailable: {info.reason}")
    return _builder(info)(shape, **kwargs)


def create_model(name: str, dataset: object = "cifar10", **overrides: Any) -> nn.Module:
    """Build a zoo model for ``dataset`` (cifar10, cifar100, mnist, fashion_mnist).

    The model takes images in ``[0, 1]`` (normalisation inside) and returns one logits tensor.
    ``overrides`` replace the paper-scale defaults (``get_model_info(name).defaults``).
    """
    info = get_model_info(name)
    if not info.available:
        raise ModelError(f"{info.name} is unavailable: {info.reason}")
    kwargs = _check_overrides(info, overrides)
    return build_model(info, model_dataset(dataset), kwargs)
