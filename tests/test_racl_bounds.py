"""Tests of the Lipschitz bounds: ``op_bound`` against dense matrices, the search's estimators,
the PC-DARTS bypass, and the network bound of a genotype network."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

from models import OPS, create_model
from racl_search.estimator import OperatorEstimator, OpSlot, split_blocks
from racl_search.lipschitz import SAFETY, op_bound, reshaped_norm
from racl_search.network_bound import log_network_bound
from racl_search.op_pieces import max_pool_gain
from racl_search.spectral import lanczos_norm
from racl_search.supernet import Supernet, SupernetConfig

# (C, H, W) kept small so the exact dense matrices stay small; odd and even sizes
SHAPES = [(2, 5, 5), (3, 6, 4), (4, 7, 7)]


def _randomised(name: str, channels: int, stride: int, affine: bool, seed: int) -> nn.Module:
    """An op in eval mode with non-trivial BatchNorm statistics (and affine parameters)."""
    torch.manual_seed(seed)
    op = OPS[name](channels, stride, affine).double().eval()
    with torch.no_grad():
        for m in op.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.2, 3.0)
                if m.weight is not None:
                    m.weight.normal_()
                    m.bias.normal_()
    return op


def _jacobian_norm(module: nn.Module, x: torch.Tensor) -> float:
    """``||d module / dx||_2`` at ``x`` from the dense Jacobian."""
    jac = torch.autograd.functional.jacobian(module, x)
    return float(torch.linalg.matrix_norm(jac.reshape(-1, x.numel()), ord=2))


def _exact(op: nn.Module, name: str, shape: tuple[int, ...]) -> float:
    """The exact reference: dense Jacobians at a positive input, where every leading ReLU is
    the identity; SepConv's two ReLU-separated blocks multiply (the composition bound)."""
    x = 3.0 + torch.rand(1, *shape, dtype=torch.float64)
    if name.startswith("sep_conv"):
        first = _jacobian_norm(op[0], x)
        mid = 3.0 + torch.rand_like(op[0](x))
        return first * _jacobian_norm(op[1], mid)
    return _jacobian_norm(op, x)


LINEAR_OPS = [n for n in OPS if n not in ("none", "max_pool_3x3")]


@pytest.mark.parametrize("name", LINEAR_OPS)
@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("affine", [True, False])
def test_operator_bound_is_exact_norm_within_one_percent(name, stride, affine):
    for k, shape in enumerate(SHAPES):
        op = _randomised(name, shape[0], stride, affine, seed=k)
        exact = _exact(op, name, shape)
        bound = op_bound(op, (5, *shape))
        assert exact <= bound <= 1.01 * exact, (shape, bound, exact)


@pytest.mark.parametrize("stride,expected", [(1, 3.0), (2, 2.0)])
def test_max_pool_constant_is_attained_and_never_exceeded(stride, expected):
    pool = OPS["max_pool_3x3"](3, stride, True)
    assert op_bound(pool, (2, 3, 7, 7)) == pytest.approx(expected)
    assert op_bound(pool, (2, 3, 7, 7), mode="paper") == 1.0
    bump = torch.zeros(1, 3, 7, 7)
    bump[0, 1, 3, 3] = 1.0  # one raised pixel moves every window that holds it
    assert pool(bump).norm().item() == pytest.approx(expected)
    gen = torch.Generator().manual_seed(0)
    for _ in range(50):
        x, y = torch.randn(2, 1, 3, 7, 7, generator=gen)
        assert (pool(x) - pool(y)).norm() <= expected * (x - y).norm() + 1e-6
    assert max_pool_gain(nn.MaxPool2d(3, 1, 1), 1, 1) == 1.0  # one pixel, one window
    assert max_pool_gain(nn.MaxPool2d(3, 1, 1), 2, 2) == 2.0  # 2x2: each pixel in 4 windows


def test_zero_and_identity():
    assert op_bound(OPS["none"](4, 1, True), (1, 4, 5, 5)) == 0.0
    assert op_bound(OPS["none"](4, 2, True), (1, 4, 5, 5), mode="paper") == 0.0
    assert op_bound(OPS["skip_connect"](4, 1, True), (1, 4, 5, 5)) == 1.0


def test_paper_mode_is_the_reshaped_reading_and_differs():
    op = _randomised("sep_conv_3x3", 4, 1, False, seed=0)
    convs = [m for m in op.modules() if isinstance(m, nn.Conv2d)]
    expect = math.prod(reshaped_norm(c.weight) for c in convs)
    assert op_bound(op, (1, 4, 8, 8), mode="paper") == pytest.approx(expect)
    depthwise = nn.Conv2d(64, 64, 3, padding=1, groups=64, bias=False).double()
    with torch.no_grad():
        depthwise.weight.uniform_(0.0, 1.0)  # positive kernels, many channels: overestimates
    assert reshaped_norm(depthwise.weight) > 1.5 * op_bound(depthwise, (1, 64, 6, 6))
    torch.manual_seed(1)
    signed = nn.Conv2d(4, 4, 3, padding=1, groups=4, bias=False).double()
    assert reshaped_norm(signed.weight) < 0.95 * op_bound(signed, (1, 4, 8, 8))
    avg = OPS["avg_pool_3x3"](2, 1, True)
    assert op_bound(avg, (1, 2, 8, 8)) > 1.0 == op_bound(avg, (1, 2, 8, 8), mode="paper")
    with pytest.raises(ValueError, match="input_shape"):
        op_bound(op, (4, 8, 8))
    with pytest.raises(ValueError, match="no Lipschitz rule"):
        op_bound(nn.Tanh(), (1, 4, 8, 8))


def test_lanczos_is_exact_on_small_maps_and_converges_on_large_ones():
    gen = torch.Generator().manual_seed(0)
    matrix = torch.randn(30, 20, generator=gen, dtype=torch.float64)
    exact = float(torch.linalg.matrix_norm(matrix, ord=2))
    got = lanczos_norm(lambda v: v.reshape(1, 20) @ matrix.T, (1, 20))
    assert got == pytest.approx(exact, rel=1e-10)
    conv = nn.Conv2d(3, 3, 3, padding=1, bias=False).double()
    shape = (1, 3, 12, 12)  # 432 unknowns: more than the Lanczos iterations it takes
    eye = torch.eye(432, dtype=torch.float64).view(432, *shape[1:])
    with torch.no_grad():
        dense = float(torch.linalg.matrix_norm(conv(eye).reshape(432, -1), ord=2))
    assert lanczos_norm(conv, shape, max_iters=120) == pytest.approx(dense, rel=1e-8)
    assert lanczos_norm(conv, shape, max_iters=3) < dense * (1 - 1e-6)  # stopped early: below


@pytest.fixture(scope="module")
def supernet():
    torch.manual_seed(0)
    net = Supernet(SupernetConfig(dataset="mnist", init_channels=8, layers=3))
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_var.uniform_(0.2, 3.0)
    return net


def test_operator_estimator_converges_to_op_bound_from_below(supernet):
    slots = supernet._op_slots(supernet._edge_input_shapes(1, 28))
    first = supernet.log_lipschitz().view(-1)  # 50 iterations at the first call
    for _ in range(150):
        late = supernet.log_lipschitz().view(-1)
    checked = 0
    for slot in slots[::5]:
        if slot.name == "none":
            assert first[slot.index].item() == float("-inf")
            continue
        exact = math.log(op_bound(slot.module, slot.input_shape))
        n_blocks = len([b for b in split_blocks(slot.module, slot.input_shape)[1]])
        margin = n_blocks * math.log(SAFETY)
        assert late[slot.index].item() <= exact + 1e-6
        assert late[slot.index].item() >= exact - margin - 5e-3, slot
        assert first[slot.index].item() >= exact - margin - 3e-2, slot
        checked += 1
    assert checked > 10


def test_stacked_groups_equal_separate_estimators(supernet):
    slots = [
        s
        for s in supernet._op_slots(supernet._edge_input_shapes(1, 28))
        if s.name in ("sep_conv_3x3", "skip_connect", "avg_pool_3x3") and s.stride == 2
    ]
    together = _flat_start(OperatorEstimator(slots, size=max(s.index for s in slots) + 1))
    assert len(together._groups) < len(slots)  # members of one shape share a group
    a = together(iters=30)
    for slot in slots:
        alone = _flat_start(OperatorEstimator([OpSlot(0, *_fields(slot)[1:])], 1))
        assert alone(iters=30)[0].item() == pytest.approx(a[slot.index].item(), abs=1e-5)


def _fields(slot: OpSlot) -> tuple:
    return (slot.index, slot.name, slot.stride, slot.module, slot.input_shape)


def _flat_start(est: OperatorEstimator) -> OperatorEstimator:
    """Every member's power-iteration vector set to the same constant start."""
    for g, members in enumerate(est._groups):
        v = getattr(est, f"v_{g}")
        rows = v.view(len(members), -1)
        rows.fill_(rows.shape[1] ** -0.5)
    return est


def test_bypass_constant_per_mode():
    torch.manual_seed(0)
    op_net = Supernet(SupernetConfig(dataset="mnist", init_channels=4, layers=3))
    paper = Supernet(SupernetConfig(dataset="mnist", init_channels=4, layers=3, bound="paper"))
    assert (op_net.log_lipschitz_bypass() == 0).all()  # identity / disjoint 2x2 max pool
    assert torch.isinf(paper.log_lipschitz_bypass()).all()  # the paper leaves it out


def test_network_bound_holds_and_composes():
    torch.manual_seed(0)
    model = create_model("darts", "mnist", init_channels=4, layers=3).eval()
    log_bound = log_network_bound(model, (1, 1, 28, 28))
    for _ in range(3):  # the Jacobian norm at any point is at most the Lipschitz constant
        x = torch.rand(1, 1, 28, 28)
        jac = torch.autograd.functional.jacobian(model, x).reshape(10, -1)
        assert math.log(torch.linalg.matrix_norm(jac, ord=2).item()) <= log_bound
    doubled = copy.deepcopy(model)
    with torch.no_grad():
        doubled.classifier.weight.mul_(2.0)
    assert log_network_bound(doubled, (1, 1, 28, 28)) == pytest.approx(log_bound + math.log(2))
    with pytest.raises(ValueError, match="GenotypeNetwork"):
        log_network_bound(create_model("resnet18", "mnist", width=4), (1, 1, 28, 28))


def test_bound_check_rows_on_small_shapes(capsys):
    from racl_search.bound_check import check, main, markdown

    rows = check(
        [(2, 5, 1, ("none", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3")),
         (2, 6, 2, ("skip_connect",))]
    )  # fmt: skip
    ops = [r["op"] for r in rows]
    assert ops == ["none", "max_pool_3x3", "sep_conv_3x3", "dil_conv_3x3", "skip_connect"]
    assert rows[0]["operator"] == rows[0]["lower"] == 0.0
    for r in rows[1:]:  # a bound never lies below the independent lower bound
        assert r["lower"] <= r["operator"] * (1 + 1e-9)
        if r["op"] != "sep_conv_3x3":  # one linear block: the lower bound attains it
            assert r["operator"] <= 1.01 * r["lower"]
    # the check fires on a value that is no bound: the paper's max pool constant 1 < 3
    assert rows[1]["paper"] == 1.0 and rows[1]["lower"] == pytest.approx(3.0)
    assert rows[1]["paper"] < rows[1]["lower"]
    assert "| sep_conv_3x3 | 2x5x5 | 1 |" in markdown(rows)
    with pytest.raises(SystemExit):
        main(["--threads", "0"])
    assert "--threads must be >= 1" in capsys.readouterr().err


def test_jacobian_norm_equals_the_dense_norm_of_a_linear_map():
    from racl_search.bound_check import jacobian_norm

    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3, padding=1, bias=False).double()
    x = torch.randn(1, 3, 5, 5, dtype=torch.float64)
    dense = torch.func.jacrev(conv)(x).reshape(4 * 25, 3 * 25)
    with torch.no_grad():
        exact = float(torch.linalg.matrix_norm(dense, ord=2))
    estimate = jacobian_norm(conv, x, iters=300)
    assert estimate <= exact * (1 + 1e-12)  # power iteration approaches from below
    assert estimate == pytest.approx(exact, rel=2e-3)
