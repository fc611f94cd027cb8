"""A zoo model as one standalone PyTorch file (RobustBench ``model_zoo/architectures`` shape).

:func:`export_source` writes the classes a zoo model needs (gathered from this package's own
source by :mod:`models.source_bundle`: the genotype network, the ops its genotype uses and
nothing else), the genotype or RobNet code inline as data, the dataset's constants, and one
builder function, so that the file builds the exact module racl-bench evaluates (same
parameter names, so the checkpoint's state dict loads strictly) with only ``torch`` installed.
:func:`zoo_stanza` is the line to paste into RobustBench's ``model_zoo/<dataset>.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import genotypes
from models.datasets import model_dataset
from models.registry import get_model_info
from models.source_bundle import Bundle, add

ROOTS = {
    "darts-cell": ("models.genotype_network", "GenotypeNetwork"),
    "robnet": ("models.robnet", "RobNet"),
    "resnet": ("models.resnet", "ResNet18"),
    "densenet": ("models.densenet", "DenseNet121"),
    "vgg": ("models.vgg", "VGG19"),
}


@dataclass(frozen=True)
class Export:
    """A standalone model file: its source, the builder's name and the stanza to paste."""

    source: str
    builder: str
    root: str


def builder_name(model: str, dataset: str) -> str:
    """A Python name for the builder function (``racl_published_mnist``)."""
    return re.sub(r"\W", "_", f"{model}_{dataset}").lower()


def export_source(model: str, dataset: str, overrides: dict[str, Any] | None = None) -> Export:
    """The standalone file for zoo ``model`` on ``dataset`` with constructor ``overrides``
    (a checkpoint's ``model_overrides``), built as racl-bench builds it."""
    info = get_model_info(model)
    kwargs = {**info.defaults, **dict(overrides or {})}
    module, root = ROOTS[info.family]
    bundle = Bundle()
    data_lines: list[str] = []
    args = ["DATASET"]
    if info.family == "darts-cell":
        geno = genotypes.load_genotype(info.genotype)
        ops = {name for name, _ in (*geno.normal, *geno.reduce)}
        add(bundle, module, root, keep={"OPS": ops})
        data_lines.append(f"GENOTYPE = Genotype(\n{_fields(geno, _GENOTYPE_FIELDS)})")
        args.insert(0, "GENOTYPE")
    elif info.family == "robnet":
        arch = genotypes.load(info.genotype)
        add(bundle, module, root)
        data_lines.append(f"ARCH = SimpleNamespace(\n{_fields(arch, _ROBNET_FIELDS)})")
        args.insert(0, "ARCH")
    else:
        add(bundle, module, root)
    shape = model_dataset(dataset)
    data_lines.insert(0, f"DATASET = SimpleNamespace(\n{_fields(shape, _DATASET_FIELDS)})")
    call = f"{root}({', '.join(args)}{''.join(f', {k}={v!r}' for k, v in kwargs.items())})"
    builder = builder_name(model, dataset)
    text = _render(model, dataset, info.source, bundle, data_lines, builder, call)
    return Export(text, builder, call)


_GENOTYPE_FIELDS = ("normal", "normal_concat", "reduce", "reduce_concat")
_ROBNET_FIELDS = ("cells", "share", "init_channels", "layers")
_DATASET_FIELDS = ("channels", "size", "num_classes", "mean", "std")


def _fields(value: object, names: tuple[str, ...]) -> str:
    return "".join(f"    {name}={getattr(value, name)!r},\n" for name in names)


def _render(model: str, dataset: str, source: str, bundle: Bundle, data: list[str],
            builder: str, call: str) -> str:  # fmt: skip
    header = (
        f'"""{model} for {dataset}: a standalone architecture file written by racl-bench.\n\n'
        f"Architecture: {source}.\n"
        "Built with only torch installed; inputs are images in [0, 1] (normalisation is the\n"
        "model's first module); forward returns one logits tensor.\n"
        f"Load the weights with ``{builder}().load_state_dict(state_dict)`` (strict).\n"
        '"""\n'
    )
    imports = [
        "from __future__ import annotations",
        "",
        "from collections import namedtuple",
        "from types import SimpleNamespace",
        "",
        *sorted(set(bundle.imports), key=_import_order),
    ]
    genotype = 'Genotype = namedtuple("Genotype", "normal normal_concat reduce reduce_concat")'
    blocks = [*bundle.blocks, genotype, *data]
    builder_fn = (
        f"def {builder}() -> nn.Module:\n"
        f'    """{model} on {dataset}, as racl-bench evaluated it (call ``.eval()``)."""\n'
        f"    return {call}\n"
    )
    if "from torch import nn" not in imports:
        imports.append("from torch import nn")
    return "\n".join([header, *imports, "", "", "\n\n\n".join([*blocks, builder_fn])])


def _import_order(line: str) -> tuple[bool, bool, str]:
    """Standard library before torch; ``import x`` before ``from x import y`` in each group."""
    root = line.split()[1].split(".")[0]
    return (root == "torch", not line.startswith("import"), line)


def zoo_stanza(name: str, call: str) -> str:
    """The model-zoo entry to paste into RobustBench's ``model_zoo/<dataset>.py`` (``call``
    builds the model from ``model.py``, e.g. ``darts_mnist()``)."""
    return f"('{name}', {{\n    'model': lambda: {call},\n    'gdrive_id': '',\n}}),\n"
