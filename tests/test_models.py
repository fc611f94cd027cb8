"""The op table, cell stacking, every zoo model (registry-wide), sizes at paper scale."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import genotypes
import models
from models import OPS, ModelError, cell_plan, create_model, drop_path, get_model_info

SMALL_CELL = {"init_channels": 8, "layers": 5}
SMALL_WIDTH = {"width": 8}
AVAILABLE = [info.name for info in models.list_models() if info.available]


def small_kwargs(name: str) -> dict:
    return dict(SMALL_WIDTH if "width" in get_model_info(name).defaults else SMALL_CELL)


def test_ops_table_matches_genotype_vocabulary():
    assert set(OPS) == set(genotypes.KNOWN_OPS)


@pytest.mark.parametrize("name", sorted(OPS))
@pytest.mark.parametrize("size", [8, 7])
def test_op_shapes(name, size):
    x = torch.randn(2, 4, size, size)
    assert OPS[name](4, 1, True)(x).shape == x.shape
    assert OPS[name](4, 2, False)(x).shape == (2, 4, (size + 1) // 2, (size + 1) // 2)


def test_op_semantics():
    assert isinstance(OPS["skip_connect"](4, 1, True), models.Identity)
    assert isinstance(OPS["skip_connect"](4, 2, True), models.FactorizedReduce)
    avg = OPS["avg_pool_3x3"](1, 1, True)
    assert avg(torch.ones(1, 1, 4, 4)).eq(1).all()  # padding excluded from the average
    sep = OPS["sep_conv_3x3"](4, 1, True)
    assert sum(isinstance(m, nn.BatchNorm2d) for m in sep.modules()) == 2
    dil = OPS["dil_conv_5x5"](4, 1, True)
    assert [m.dilation for m in dil.modules() if isinstance(m, nn.Conv2d)][0] == (2, 2)
    assert OPS["none"](4, 2, True)(torch.randn(1, 4, 8, 8)).abs().sum() == 0


def test_factorized_reduce_matches_darts_on_even_sizes():
    fr = models.FactorizedReduce(3, 6).eval()
    x = torch.randn(2, 3, 8, 8)
    r = torch.relu(x)
    expected = fr.bn(torch.cat([fr.conv_1(r), fr.conv_2(r[:, :, 1:, 1:])], dim=1))
    torch.testing.assert_close(fr(x), expected)


def test_cell_plan_bookkeeping():
    plan = cell_plan(16, 8, 4)
    assert [s.index for s in plan if s.reduction] == [2, 5]
    assert [s.index for s in plan if s.reduction_prev] == [3, 6]
    assert plan[0].C_prev_prev == plan[0].C_prev == 48 and plan[0].C_curr == 16
    assert plan[2].C_curr == 32 and plan[5].C_curr == 64
    for before, after in zip(plan, plan[1:], strict=False):
        assert after.C_prev == before.C_out and after.C_prev_prev == before.C_prev
    nasnet = cell_plan(36, 20, (5, 3))
    assert nasnet[6].C_out == 3 * 72 and nasnet[7].C_prev == 216 and nasnet[0].C_out == 180


def test_preprocess_and_stem():
    spec = cell_plan(8, 5, 4)[2]  # the cell after the first reduction
    pre0, pre1 = models.preprocess(spec, affine=False)
    assert isinstance(pre0, models.FactorizedReduce) and isinstance(pre1, models.ReLUConvBN)
    assert models.stem(1, 24)(torch.randn(2, 1, 28, 28)).shape == (2, 24, 28, 28)


def test_drop_path():
    x = torch.randn(2000, 3, 2, 2, requires_grad=True)
    assert drop_path(x, 0.0) is x
    torch.manual_seed(0)
    y = drop_path(x, 0.25)
    kept = (y != 0).flatten(1).all(1)
    dropped = (y == 0).flatten(1).all(1)
    assert bool((kept | dropped).all())  # whole samples are dropped
    assert 0.2 < dropped.float().mean().item() < 0.3
    torch.testing.assert_close(y[kept], x[kept] / 0.75)
    y.sum().backward()
    assert x.grad is not None


@pytest.mark.parametrize("name", AVAILABLE)
def test_every_model_builds_and_runs(name):
    torch.manual_seed(0)
    for dataset, shape in (("cifar10", (2, 3, 32, 32)), ("mnist", (2, 1, 28, 28))):
        model = create_model(name, dataset, **small_kwargs(name))
        x = torch.rand(shape, requires_grad=True)
        model.eval()
        out = model(x)
        assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
        assert torch.isfinite(out).all()
        out.sum().backward()  # attacks need the input gradient
        assert x.grad is not None and x.grad.abs().sum() > 0
        model.train()
        assert model(x).shape == (2, 10)


def test_cifar100_has_100_classes():
    assert create_model("darts", "cifar100", **SMALL_CELL)(torch.rand(2, 3, 32, 32)).shape == (
        2,
        100,
    )


@pytest.mark.parametrize("name", [i.name for i in models.list_models() if i.family == "darts-cell"])
@pytest.mark.parametrize("dataset,shape", [("cifar10", (2, 3, 32, 32)), ("mnist", (2, 1, 28, 28))])
def test_auxiliary_head_and_drop_path(name, dataset, shape):
    model = create_model(name, dataset, auxiliary=True, drop_path_prob=0.3, **SMALL_CELL)
    x = torch.rand(shape)
    model.train()
    out = model(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 10)
    assert model.aux_logits is not None and model.aux_logits.shape == (2, 10)
    model.eval()
    assert isinstance(model(x), torch.Tensor) and model.aux_logits is None


def test_drop_path_is_training_only():
    model = create_model("darts", drop_path_prob=0.5, **SMALL_CELL)
    x = torch.rand(4, 3, 32, 32)
    model.train()
    torch.manual_seed(1)
    a = model(x)
    torch.manual_seed(2)
    b = model(x)
    assert not torch.allclose(a, b)
    model.eval()
    torch.testing.assert_close(model(x), model(x))
    model.drop_path_prob = 0.0  # a training loop may change it between epochs
    model.train()
    torch.manual_seed(3)
    c = model(x)
    torch.manual_seed(4)
    torch.testing.assert_close(model(x), c)


def test_normalisation_is_inside():
    for dataset, mean in (("cifar100", 0.5071), ("mnist", 0.1307), ("fashion_mnist", 0.2860)):
        model = create_model("resnet18", dataset, width=4)
        assert model.normalize.mean.flatten()[0].item() == pytest.approx(mean)
    darts = create_model("darts", **SMALL_CELL)
    x = torch.rand(1, 3, 32, 32)
    expected = (x - torch.tensor([0.49139968, 0.48215827, 0.44653124]).view(1, 3, 1, 1)) / (
        torch.tensor([0.24703233, 0.24348505, 0.26158768]).view(1, 3, 1, 1)
    )
    torch.testing.assert_close(darts.normalize(x), expected)
    assert not any("normalize" in key for key in darts.state_dict())


def test_dataset_names():
    assert models.model_dataset("Fashion-MNIST").num_classes == 10
    with pytest.raises(ModelError, match="unknown dataset 'imagenet'"):
        create_model("darts", "imagenet")


# Paper-scale parameter counts (CIFAR-10, no auxiliary head): the RACL paper's Table 1.
PAPER_PARAMS_M = {
    "darts": 3.3,
    "pc_darts": 3.6,
    "nasnet": 3.8,
    "amoebanet": 3.2,
    "robnet_small": 4.4,
    "resnet18": 11.2,
    "densenet121": 7.0,
    "racl_published": 3.6,
}


@pytest.mark.parametrize("name", sorted(PAPER_PARAMS_M))
def test_paper_scale_params_within_ten_percent(name):
    measured = models.paper_scale_params_m(name)
    assert measured == pytest.approx(PAPER_PARAMS_M[name], rel=0.10)
    assert get_model_info(name).paper_params_m == PAPER_PARAMS_M[name]


def test_known_exact_counts_and_meta_matches_real():
    assert models.paper_scale_params("darts") == 3_349_342  # DARTS's own log: 3.349342MB
    assert models.paper_scale_params("resnet18") == 11_173_962
    real = create_model("robnet_free", init_channels=4, layers=20)
    with torch.device("meta"):
        meta = create_model("robnet_free", init_channels=4, layers=20)
    assert models.count_parameters(real) == models.count_parameters(meta) > 0


def test_unknown_model_lists_close_names():
    with pytest.raises(ModelError, match="unknown model 'dartz'; closest: darts") as info:
        create_model("dartz")
    close = str(info.value).split("closest: ")[1].split(", ")
    assert len(close) == len(set(close))
    with pytest.raises(ModelError, match="closest: .*robnet_small"):
        get_model_info("robnet-smal")


def test_robnet_medium_is_listed_but_unavailable():
    info = get_model_info("robnet_medium")
    assert not info.available and info.paper_params_m == 5.7 and "never published" in info.reason
    assert models.paper_scale_params("robnet_medium") is None
    with pytest.raises(ModelError, match="robnet_medium is unavailable: .*never published"):
        create_model("robnet_medium")


def test_registry_metadata_cannot_be_corrupted_by_callers():
    get_model_info("darts").defaults["layers"] = 3
    models.list_models()[0].defaults["layers"] = 3
    assert get_model_info("darts").defaults["layers"] == 20


def test_aliases_and_name_variants():
    assert get_model_info("racl").name == "racl_published"
    assert get_model_info("PC-DARTS").name == "pc_darts"
    model = create_model("racl", **SMALL_CELL)
    assert model.genotype == genotypes.load("racl_published")


def test_overrides_are_checked():
    with pytest.raises(ModelError, match="unknown override.*widht; allowed: width"):
        create_model("resnet18", widht=8)
    with pytest.raises(ModelError, match="unknown override.*auxiliary"):
        create_model("robnet_small", auxiliary=True)
    with pytest.raises(ModelError, match="bad value 0 for override layers"):
        create_model("darts", layers=0)
    with pytest.raises(ModelError, match="bad value 1.0 for override drop_path_prob"):
        create_model("darts", drop_path_prob=1.0)
    with pytest.raises(ModelError, match="bad value 'yes' for override auxiliary"):
        create_model("darts", auxiliary="yes")


def test_robnet_structure():
    model = create_model("robnet_small", init_channels=4, layers=5)
    codes = genotypes.load("robnet_small").cells[0]
    cell = model.cells[0]
    assert len(cell.ops) == 14
    zeros = [i for i, c in enumerate(codes) if c == "00"]
    assert all(isinstance(cell.ops[i], models.Zero) for i in zeros)
    assert sum(isinstance(op, models.ResSepConv) for op in cell.ops) == codes.count("11")
    cell_bns = [m for m in model.cells.modules() if isinstance(m, nn.BatchNorm2d)]
    assert cell_bns and not any(bn.affine for bn in cell_bns)
    assert model.stem[1].affine
    reduction = model.cells[1]
    assert isinstance(reduction.ops[codes.index("10")], models.FactorizedReduce)


def test_robnet_free_scaled_down_keeps_reduction_codes():
    arch = genotypes.load("robnet_free")
    codes = models.cell_codes(arch, 5)  # reductions at 1 and 3
    assert codes[1] == arch.cells[6] and codes[3] == arch.cells[13]
    assert models.cell_codes(arch, 20) == list(arch.cells)


def test_nasnet_channels_follow_concat_sizes():
    model = create_model("nasnet", init_channels=4, layers=5)
    assert model.classifier.in_features == 5 * 16  # last cell: normal, 5 nodes of 4*C channels


def test_searched_genotype_joins_the_zoo(tmp_path, monkeypatch):
    monkeypatch.setenv(genotypes.ENV_VAR, str(tmp_path))
    genotypes.save_genotype(genotypes.load("darts"), tmp_path / "racl_mnist.json", source="s")
    (tmp_path / "broken.json").write_text("{}")
    by_name = {info.name: info for info in models.list_models()}
    assert by_name["racl_mnist"].family == "darts-cell" and by_name["racl_mnist"].available
    assert by_name["racl_mnist"].source == "s"
    assert not by_name["broken"].available and "missing key" in by_name["broken"].reason
    model = create_model("racl_mnist", "mnist", **SMALL_CELL)
    assert model(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    assert models.paper_scale_params("racl_mnist") == models.paper_scale_params("darts")
    with pytest.raises(ModelError, match="broken is unavailable"):
        create_model("broken")
