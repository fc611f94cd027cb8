"""Tests of the RACL math: Fenton-Wilkinson, products, power iteration, the constraint."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from racl_search.constraint import (
    CellTopology,
    confidence_constraint,
    network_lognormal,
    point_log_bound,
)
from racl_search.estimator import OpSlot, PaperEstimator
from racl_search.lipschitz import reshaped_norm
from racl_search.lognormal import (
    fenton_wilkinson,
    lognormal_max_constant,
    lognormal_moments,
    lognormal_product,
    lognormal_quantile,
    normal_ppf,
)
from racl_search.spectral import power_iteration

params = st.lists(
    st.tuples(st.floats(-2.0, 1.0, allow_nan=False), st.floats(0.05, 0.6, allow_nan=False)),
    min_size=1,
    max_size=7,
)


@settings(max_examples=25, deadline=None)
@given(params, st.integers(0, 2**16))
def test_fenton_wilkinson_matches_monte_carlo_moments(terms, seed):
    mu = torch.tensor([t[0] for t in terms], dtype=torch.float64)
    sigma = torch.tensor([t[1] for t in terms], dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    samples = torch.exp(
        mu + sigma * torch.randn(200_000, len(terms), generator=gen, dtype=torch.float64)
    )
    total = samples.sum(dim=1)
    m, s2 = fenton_wilkinson(mu, sigma.square())
    mean, var = lognormal_moments(m, s2)
    assert math.log(mean.item()) == pytest.approx(math.log(total.mean().item()), abs=0.01)
    assert math.log(var.item()) == pytest.approx(math.log(total.var().item()), abs=0.15)


def test_fenton_wilkinson_mask_drops_terms_and_zero_variance_is_logsumexp():
    mu = torch.tensor([0.1, -0.5, 3.0])
    var = torch.tensor([0.2, 0.1, 0.4])
    keep = torch.tensor([True, True, False])
    masked = fenton_wilkinson(mu, var, mask=keep)
    direct = fenton_wilkinson(mu[:2], var[:2])
    torch.testing.assert_close(masked[0], direct[0])
    torch.testing.assert_close(masked[1], direct[1])
    m, s2 = fenton_wilkinson(mu, torch.zeros(3))
    torch.testing.assert_close(m, torch.logsumexp(mu, 0))
    assert s2.item() == 0.0


def test_fenton_wilkinson_gradients_finite_at_zero_variance():
    mu = torch.tensor([0.1, -0.5], requires_grad=True)
    var = torch.zeros(2, requires_grad=True)
    m, s2 = fenton_wilkinson(mu, var)
    (m + s2).backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(var.grad).all()


def test_product_rule_matches_monte_carlo():
    mu = torch.tensor([0.3, -0.2, 0.1], dtype=torch.float64)
    sigma = torch.tensor([0.2, 0.3, 0.1], dtype=torch.float64)
    m, s2 = lognormal_product(mu, sigma.square())
    gen = torch.Generator().manual_seed(0)
    logs = (mu + sigma * torch.randn(100_000, 3, generator=gen, dtype=torch.float64)).sum(1)
    assert m.item() == pytest.approx(logs.mean().item(), abs=0.01)
    assert s2.item() == pytest.approx(logs.var().item(), rel=0.02)
    median = lognormal_quantile(m, s2, 0.5)
    assert median.item() == pytest.approx(math.exp(m.item()))


def test_power_iteration_converges_to_largest_singular_value():
    gen = torch.Generator().manual_seed(1)
    w = torch.randn(5, 6, 8, generator=gen)
    u = torch.nn.functional.normalize(torch.randn(5, 6, generator=gen), dim=1)
    for _ in range(100):
        sigma, u = power_iteration(w, u, 1)
    torch.testing.assert_close(sigma, torch.linalg.svdvals(w)[:, 0], rtol=1e-4, atol=1e-5)
    conv = torch.nn.Conv2d(4, 6, 3, bias=False)
    exact = torch.linalg.svdvals(conv.weight.detach().reshape(6, -1))[0].item()
    assert reshaped_norm(conv.weight) == pytest.approx(exact, rel=1e-6)


def _conv_op(c: int = 3) -> torch.nn.Module:
    return torch.nn.Sequential(
        torch.nn.ReLU(),
        torch.nn.Conv2d(c, c, 3, padding=1, groups=c, bias=False),
        torch.nn.Conv2d(c, c, 1, bias=False),
        torch.nn.BatchNorm2d(c, affine=False),
    )


def test_paper_estimator_per_op_rules():
    conv = _conv_op()
    fr = torch.nn.ModuleDict({"a": torch.nn.Conv2d(3, 2, 1), "b": torch.nn.Conv2d(3, 2, 1)})
    slots = [
        OpSlot(0, "none", 1, None),
        OpSlot(1, "skip_connect", 1, torch.nn.Identity()),
        OpSlot(2, "avg_pool_3x3", 2, torch.nn.AvgPool2d(3, 2, 1)),
        OpSlot(3, "max_pool_3x3", 1, torch.nn.MaxPool2d(3, 1, 1)),
        OpSlot(4, "sep_conv_3x3", 1, conv),
        OpSlot(5, "skip_connect", 2, fr),
    ]
    est = PaperEstimator(slots, size=6)
    for _ in range(60):
        log_lam = est()
    assert log_lam[0].item() == float("-inf")
    assert log_lam[1].item() == 0.0 and log_lam[3].item() == 0.0
    assert log_lam[2].item() == pytest.approx(-0.5 * math.log(2))
    convs = [m for m in conv.modules() if isinstance(m, torch.nn.Conv2d)]
    expect = sum(math.log(torch.linalg.svdvals(c.weight.detach().reshape(3, -1))[0]) for c in convs)
    assert log_lam[4].item() == pytest.approx(expect, abs=1e-3)
    s_fr = [torch.linalg.svdvals(fr[k].weight.detach().reshape(2, -1))[0].item() for k in "ab"]
    assert log_lam[5].item() == pytest.approx(math.log(max(s_fr)), abs=1e-3)
    with_bn = PaperEstimator(slots, size=6, bn_scale=True)
    # a fresh BN has running_var 1: scale 1/sqrt(1 + eps), slightly below 1
    assert with_bn()[4].item() == pytest.approx(
        log_lam[4].item() - 0.5 * math.log1p(1e-5), abs=1e-2
    )


def _random_arch(cells: int, topo: CellTopology, sigma: float, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    e, o = topo.n_edges, 8
    mu_a = math.log(1 / o) + 0.3 * torch.randn(cells, e, o, generator=gen, dtype=torch.float64)
    mu_b = math.log(0.5) + 0.3 * torch.randn(cells, e, generator=gen, dtype=torch.float64)
    log_lam = 0.5 * torch.randn(cells, e, o, generator=gen, dtype=torch.float64)
    log_lam[..., 0] = float("-inf")
    sa = torch.full((cells, e, o), sigma, dtype=torch.float64)
    sb = torch.full((cells, e), sigma, dtype=torch.float64)
    return mu_a, sa, mu_b, sb, log_lam


def test_network_lognormal_matches_monte_carlo_of_the_bound():
    topo = CellTopology.of(4)
    mu_a, sa, mu_b, sb, log_lam = _random_arch(2, topo, 0.15)
    mu, var = network_lognormal(mu_a, sa.square(), mu_b, sb.square(), log_lam, topo)
    gen = torch.Generator().manual_seed(3)
    n = 20_000
    alpha = mu_a + sa * torch.randn(n, *mu_a.shape, generator=gen, dtype=torch.float64)
    beta = mu_b + sb * torch.randn(n, *mu_b.shape, generator=gen, dtype=torch.float64)
    log_bound = torch.stack(
        [point_log_bound(alpha[k], beta[k], log_lam, topo) for k in range(0, n, 20)]
    )
    assert mu.item() == pytest.approx(log_bound.mean().item(), abs=0.05)
    assert var.item() == pytest.approx(log_bound.var().item(), rel=0.3)


def test_zero_variance_network_equals_point_bound():
    topo = CellTopology.of(4)
    mu_a, sa, mu_b, sb, log_lam = _random_arch(3, topo, 0.0)
    mu, var = network_lognormal(mu_a, sa, mu_b, sb, log_lam, topo, log_c=0.7)
    assert var.item() == 0.0
    assert mu.item() == pytest.approx(point_log_bound(mu_a, mu_b, log_lam, topo, log_c=0.7).item())


@pytest.mark.parametrize("exact", [True, False])
@pytest.mark.parametrize("eta,sign", [(0.9, 1.0), (0.7, 1.0), (0.3, -1.0), (0.1, -1.0)])
def test_constraint_partial_in_network_variance_has_sign_of_eta_minus_half(eta, sign, exact):
    mu = torch.tensor(0.4, requires_grad=True)
    var = torch.tensor(0.2, requires_grad=True)
    c = confidence_constraint(mu, var, eta, log_target=0.1, exact=exact)
    c.backward()
    assert sign * var.grad.item() > 0
    assert mu.grad.item() == pytest.approx(1.0)
    spread = math.sqrt(0.2) if exact else 0.2  # the quantile, or the paper's sigma^2
    assert c.item() == pytest.approx(0.4 + normal_ppf(eta) * spread - 0.1, abs=1e-6)


@pytest.mark.parametrize("eta", [0.6, 0.9, 0.99])
def test_constraint_rises_with_every_sigma_parameter_for_eta_above_half(eta):
    topo = CellTopology.of(4)
    mu_a, sa, mu_b, sb, log_lam = _random_arch(2, topo, 0.3)
    sa.requires_grad_(True)
    sb.requires_grad_(True)
    mu, var = network_lognormal(mu_a, sa.square(), mu_b, sb.square(), log_lam, topo)
    confidence_constraint(mu, var, eta, log_target=0.0).backward()
    # Fenton-Wilkinson's log-mean also grows with each sigma, so both terms push c up
    finite = torch.isfinite(log_lam)
    assert (sa.grad[finite] > 0).all() and (sa.grad[~finite] == 0).all()
    assert (sb.grad > 0).all()
    assert normal_ppf(0.5) == pytest.approx(0.0, abs=1e-9)


@pytest.mark.parametrize("m,v,log_b", [(0.3, 0.2, 0.0), (-0.4, 0.05, 0.0), (1.5, 0.3, 0.2)])
def test_max_with_constant_matches_monte_carlo_moments(m, v, log_b):
    mean, var = torch.tensor(m, dtype=torch.float64), torch.tensor(v, dtype=torch.float64)
    m2, s2 = lognormal_max_constant(mean, var, torch.tensor(log_b, dtype=torch.float64))
    gen = torch.Generator().manual_seed(0)
    x = torch.exp(m + v**0.5 * torch.randn(400_000, generator=gen, dtype=torch.float64))
    y = torch.clamp(x, min=math.exp(log_b))
    got_mean, got_var = lognormal_moments(m2, s2)
    assert got_mean.item() == pytest.approx(y.mean().item(), rel=3e-3)
    assert got_var.item() == pytest.approx(y.var().item(), rel=3e-2)


def test_max_with_constant_limits():
    mean = torch.tensor([0.5, -0.5, 0.2])
    var = torch.zeros(3)
    m, s2 = lognormal_max_constant(mean, var, torch.zeros(3))  # var 0: max(e^m, 1)
    torch.testing.assert_close(m, torch.tensor([0.5, 0.0, 0.2]), atol=1e-4, rtol=0)
    no_floor = torch.full((3,), float("-inf"))
    m, s2 = lognormal_max_constant(mean, var + 0.1, no_floor)  # no floor: unchanged
    torch.testing.assert_close(m, mean)
    torch.testing.assert_close(s2, var + 0.1)
    far = lognormal_max_constant(torch.tensor(5.0), torch.tensor(0.1), torch.tensor(0.0))
    assert far[0].item() == pytest.approx(5.0, abs=1e-6)  # floor far below: no effect


def test_point_bound_takes_the_bypass_floor_per_edge():
    topo = CellTopology.of(4)
    mu_a, _, mu_b, _, log_lam = _random_arch(1, topo, 0.0)
    low = point_log_bound(mu_a, mu_b, log_lam - 20.0, topo)  # every op constant tiny
    floored = point_log_bound(mu_a, mu_b, log_lam - 20.0, topo, log_bypass=torch.zeros(1, 14))
    assert low.item() < -50
    edge_floor = torch.logsumexp(topo.gather_nodes(mu_b, float("-inf")), dim=-1).sum()
    assert floored.item() == pytest.approx(edge_floor.item(), abs=1e-6)
