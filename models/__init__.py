"""The model zoo: the op table, cell stacking, the genotype network, RobNet, ResNet-18,
DenseNet-121, VGG-19 and the registry. Imports ``genotypes`` only (never ``bench``).

Every model takes ``(N, C, H, W)`` images in ``[0, 1]`` (3x32x32 or 1x28x28) and returns one
logits tensor. See ``docs/ARCHITECTURE.md`` and ``docs/ZOO.md``.
"""

from models.cells import CellSpec, cell_plan, drop_path, preprocess, reduction_layers, stem
from models.datasets import Normalize, model_dataset
from models.densenet import DenseNet121
from models.errors import ModelError
from models.genotype_network import AuxiliaryHead, GenotypeCell, GenotypeNetwork
from models.operations import (
    OPS,
    Conv7x1_1x7,
    DilConv,
    FactorizedReduce,
    Identity,
    ReLUConvBN,
    SepConv,
    Zero,
)
from models.params import count_parameters, paper_scale_params, paper_scale_params_m
from models.registry import ALIASES, ModelInfo, create_model, get_model_info, list_models
from models.resnet import ResNet18
from models.robnet import ResSepConv, RobNet, RobNetCell, cell_codes, robnet_op
from models.vgg import VGG19

__all__ = [
    "ALIASES",
    "OPS",
    "AuxiliaryHead",
    "CellSpec",
    "Conv7x1_1x7",
    "DenseNet121",
    "DilConv",
    "FactorizedReduce",
    "GenotypeCell",
    "GenotypeNetwork",
    "Identity",
    "ModelError",
    "ModelInfo",
    "Normalize",
    "ReLUConvBN",
    "ResNet18",
    "ResSepConv",
    "RobNet",
    "RobNetCell",
    "SepConv",
    "VGG19",
    "Zero",
    "cell_codes",
    "cell_plan",
    "count_parameters",
    "create_model",
    "model_dataset",
    "drop_path",
    "get_model_info",
    "list_models",
    "paper_scale_params",
    "paper_scale_params_m",
    "preprocess",
    "reduction_layers",
    "robnet_op",
    "stem",
]
