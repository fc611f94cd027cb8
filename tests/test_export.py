"""models/export.py: every zoo family as one standalone file that builds the very module
racl-bench evaluates (same state dict names, same logits), with only the ops it needs."""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from models import create_model
from models.export import export_source, zoo_stanza

SMALL = {"darts-cell": {"init_channels": 4, "layers": 3}, "robnet": {"init_channels": 4,
         "layers": 3}, "other": {"width": 4}}  # fmt: skip
MODELS = ["racl_published", "darts", "pc_darts", "nasnet", "amoebanet", "robnet_small",
          "resnet18", "densenet121", "vgg19"]  # fmt: skip


def _load(path, name):  # noqa: ANN001, ANN202
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("model", MODELS)
def test_the_standalone_file_gives_the_same_logits(tmp_path, model):
    overrides = (
        SMALL["other"] if model in ("resnet18", "densenet121", "vgg19") else SMALL["darts-cell"]
    )
    export = export_source(model, "mnist", overrides)
    path = tmp_path / "model.py"
    path.write_text(export.source)
    module = _load(path, f"exported_{model}")
    for line in export.source.splitlines():  # only torch and the standard library
        if line.startswith(("import ", "from ")):
            assert line.split()[1].split(".")[0] in {"__future__", "collections", "types",
                                                     "dataclasses", "torch"}, line  # fmt: skip
    torch.manual_seed(0)
    ours = create_model(model, "mnist", **overrides).eval()
    theirs = getattr(module, export.builder)().eval()
    theirs.load_state_dict(ours.state_dict(), strict=True)
    x = torch.rand(2, 1, 28, 28)
    assert torch.equal(theirs(x), ours(x))


def test_only_the_ops_of_the_genotype_are_written():
    source = export_source("racl_published", "mnist", SMALL["darts-cell"]).source
    assert "'sep_conv_3x3':" in source and "'dil_conv_3x3':" in source
    assert "'sep_conv_7x7':" not in source and "'max_pool_3x3':" not in source  # NASNet's ops
    nasnet = export_source("nasnet", "mnist", SMALL["darts-cell"]).source
    assert "'sep_conv_7x7':" in nasnet and "'max_pool_3x3':" in nasnet


def test_the_zoo_stanza_calls_the_builder():
    export = export_source("darts", "cifar10", SMALL["darts-cell"])
    stanza = zoo_stanza("Darts_racl", f"{export.builder}()")
    assert stanza.startswith("('Darts_racl', {") and "'model': lambda: darts_cifar10()," in stanza
