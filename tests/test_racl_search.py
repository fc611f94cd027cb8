"""Tests of the RACL search: supernet, ADMM dual, derivation, smoke search, resume, CLI."""

from __future__ import annotations

import contextlib
import copy
import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from core.enums import SearchMethod, Strength
from genotypes import Genotype, read_genotype_file
from racl_search.admm import AdmmConfig, ArchitectureStep, read_bound
from racl_search.api import ensure_searched
from racl_search.architecture import ArchitectureParameters, WeightMode, node_log_softmax
from racl_search.config import make_config
from racl_search.constraint import CellTopology, network_lognormal
from racl_search.derive import derive_cell, derive_genotype
from racl_search.errors import SearchError
from racl_search.search import run_search
from racl_search.supernet import Supernet, SupernetConfig
from racl_search.variants import TABLE5_VARIANTS


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    net = Supernet(SupernetConfig(dataset="mnist", init_channels=4, layers=3))
    x = torch.rand(8, 1, 28, 28)
    y = torch.randint(0, 10, (8,))
    return net, x, y


@pytest.fixture(scope="module")
def mnist_train():
    from core.data import load_split

    x, y = load_split("mnist", "train")
    return x[:400], y[:400]


def test_supernet_shapes_and_lipschitz_table(tiny):
    net, x, _ = tiny
    arch = ArchitectureParameters(net.topology, 8)
    for mode in WeightMode:
        alpha, beta = arch.weights(mode)
        assert alpha.shape == (2, 14, 8) and beta.shape == (2, 14)
        assert net(x, alpha, beta).shape == (8, 10)
    log_lam = net.log_lipschitz()
    assert log_lam.shape == (3, 14, 8)
    assert torch.isinf(log_lam[..., 0]).all()  # none
    assert torch.isfinite(log_lam[..., 1:]).all()
    assert (log_lam[0, :, 3] == 0).all()  # skip in a normal cell (cell 0) is the identity
    assert not (log_lam[1, :2, 3] == 0).all()  # reduction cell: FactorizedReduce from inputs


def test_softmax_weights_normalise_per_edge_and_per_node(tiny):
    net, _, _ = tiny
    arch = ArchitectureParameters(net.topology, 8)
    with torch.no_grad():
        arch.mu_beta.normal_()
    alpha, beta = arch.weights(WeightMode.SOFTMAX)
    torch.testing.assert_close(alpha.sum(-1), torch.ones(2, 14))
    sums = net.topology.gather_nodes(beta, 0.0).sum(-1)
    torch.testing.assert_close(sums, torch.ones(2, 4))
    assert node_log_softmax(arch.mu_beta, net.topology).shape == (2, 14)
    # initial log-normal medians equal the uniform softmax (tiny init noise aside)
    median_a, median_b = arch.weights(WeightMode.MEDIAN)
    assert torch.allclose(median_a, torch.full_like(median_a, 1 / 8), atol=1e-2)


@pytest.mark.parametrize("log_target,rises", [(-50.0, True), (50.0, False)])
def test_dual_rises_while_violated_and_stays_nonnegative(tiny, log_target, rises):
    net, x, y = tiny
    arch = ArchitectureParameters(net.topology, 8)
    step = ArchitectureStep(
        SearchMethod.RACL, arch, net, AdmmConfig(rho=0.1, log_target=log_target)
    )
    thetas = [step.state.theta]
    for _ in range(3):
        out = step(x, y)
        assert (out["c"] > 0) == rises
        thetas.append(out["theta"])
    assert all(t >= 0 for t in thetas)
    if rises:
        assert all(b > a for a, b in zip(thetas, thetas[1:], strict=False))
    else:
        assert thetas == [0.0] * 4


def test_racl_step_updates_mu_and_sigma_but_no_cl_keeps_sigma(tiny):
    net, x, y = tiny
    for method, sigma_moves in ((SearchMethod.RACL, True), (SearchMethod.RACL_NO_CL, False)):
        arch = ArchitectureParameters(net.topology, 8)
        mu0, s0 = arch.mu_alpha.detach().clone(), arch.s_alpha.detach().clone()
        ArchitectureStep(method, arch, net, AdmmConfig(lr=1e-2))(x, y)
        assert not torch.equal(mu0, arch.mu_alpha.detach())
        assert (not torch.equal(s0, arch.s_alpha.detach())) == sigma_moves


class _BlindNet(nn.Module):
    """A supernet stand-in whose logits ignore ``alpha`` and ``beta``: zero data gradient."""

    def __init__(self, seed: int = 0, bypass: float = 0.0) -> None:
        super().__init__()
        self.topology, self.cell_types, self.bypass = CellTopology.of(4), [0, 1, 0], bypass
        gen = torch.Generator().manual_seed(seed)
        self.lam = torch.randn(3, 14, 8, generator=gen)
        self.lam[..., 0] = float("-inf")

    def forward(self, x, alpha, beta):
        return torch.zeros(len(x), 10) + 0.0 * (alpha.sum() + beta.sum())

    def log_lipschitz(self):
        return self.lam

    @contextlib.contextmanager
    def recording_batch_statistics(self):  # no BatchNorm to record
        yield

    def log_lipschitz_bypass(self):
        return torch.full((3, 14), self.bypass)


def _arch_state(arch: ArchitectureParameters) -> list[torch.Tensor]:
    return [p.detach().clone() for p in arch.parameters()]


@pytest.mark.parametrize("to_init", [True, False])
def test_zero_data_gradient_leaves_the_architecture_where_it_started(tiny, to_init):
    _, x, y = tiny
    net = _BlindNet()
    torch.manual_seed(0)
    arch = ArchitectureParameters(net.topology, 8)
    config = AdmmConfig(rho=0.1, log_target=50.0, lr=0.02, decay_to_init=to_init)
    step, before = ArchitectureStep(SearchMethod.RACL, arch, net, config), _arch_state(arch)
    for _ in range(5):
        assert step(x, y)["c"] < 0 and step.state.theta == 0.0  # feasible, no dual
    moved = [not torch.equal(a, b) for a, b in zip(before, _arch_state(arch), strict=True)]
    # decay toward the start: nothing moves; toward 0 (PC-DARTS's rule): Adam amplifies it
    assert any(moved) == (not to_init)


def _feasible_start(penalty: str) -> tuple[ArchitectureStep, float]:
    net = _BlindNet(seed=1)
    torch.manual_seed(0)
    arch = ArchitectureParameters(net.topology, 8)
    with torch.no_grad():
        arch.mu_alpha.normal_()
    start = float(read_bound(SearchMethod.RACL_NO_CL, arch, net, net.lam).mu.detach())
    config = AdmmConfig(rho=0.15, log_target=start + 0.43, lr=0.02, weight_decay=0.0,
                        penalty=penalty)  # fmt: skip
    return ArchitectureStep(SearchMethod.RACL_NO_CL, arch, net, config), -0.43


def test_phr_penalty_leaves_a_feasible_search_alone(tiny):
    _, x, y = tiny
    phr, c0 = _feasible_start("phr")
    for _ in range(3):
        assert phr(x, y)["c"] == pytest.approx(c0, abs=1e-5)
    paper, _ = _feasible_start("paper")
    paper(x, y)
    c1 = paper(x, y)["c"]
    assert c1 > c0 + 0.01  # Eq. 17's quadratic pulls c < 0 back up toward 0 (equality)


@pytest.mark.parametrize("target,shift", [("relative", 0.0), ("start", 12.0)])
def test_relative_target_follows_the_weights_start_target_does_not(target, shift):
    net = _BlindNet(seed=2, bypass=float("-inf"))
    torch.manual_seed(0)
    arch = ArchitectureParameters(net.topology, 8)
    with torch.no_grad():
        arch.mu_alpha.normal_()
    step = ArchitectureStep(SearchMethod.RACL, arch, net, AdmmConfig(target=target))
    c0 = float(step.constraint(net.lam)[0].detach())
    net.lam = net.lam + 1.0  # every op's constant x e: 3 cells x 4 nodes gain one nat each
    c1 = float(step.constraint(net.lam)[0].detach())
    assert c1 - c0 == pytest.approx(shift, abs=1e-4)
    fixed = ArchitectureStep(SearchMethod.RACL, arch, net, AdmmConfig(log_target=3.0))
    fixed.constraint(net.lam)
    assert fixed.state.log_target == 3.0  # an explicit ln lambda* is never replaced


def test_penalty_gradients():
    for penalty, c_value, theta, expect in (
        ("phr", -1.0, 0.05, 0.0), ("phr", 1.0, 0.05, 0.15), ("phr", -0.2, 0.05, 0.03),
        ("paper", -1.0, 0.05, -0.05), ("paper", 1.0, 0.05, 0.15),
    ):  # fmt: skip
        c = torch.tensor(c_value, requires_grad=True)
        AdmmConfig(rho=0.1, penalty=penalty).penalty_term(c, theta).backward()
        assert c.grad.item() == pytest.approx(expect), (penalty, c_value)
    assert AdmmConfig(rho=0.0).penalty_term(torch.tensor(2.0), 0.5).item() == 1.0


def _pc_darts_reference(net, alphas, betas, batches, lr=6e-4, wd=1e-3):
    """PC-DARTS's first-order architecture step (``architect.py``, ``model_search.py``): Adam
    (betas 0.5, 0.999, weight decay) on the logits; softmax per edge and per node's inputs."""
    alphas, betas = alphas.clone().requires_grad_(True), betas.clone().requires_grad_(True)
    opt = torch.optim.Adam([alphas, betas], lr=lr, betas=(0.5, 0.999), weight_decay=wd)
    for x, y in batches:
        w2 = torch.stack([
            torch.cat([F.softmax(b[s:e], dim=-1) for s, e in ((0, 2), (2, 5), (5, 9), (9, 14))])
            for b in betas
        ])  # fmt: skip
        loss = F.cross_entropy(net(x, F.softmax(alphas, dim=-1), w2), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return alphas.detach(), betas.detach()


def test_pc_darts_step_is_the_pc_darts_update_from_a_zero_centred_start(tiny):
    net, x, y = tiny
    torch.manual_seed(3)
    arch = ArchitectureParameters(net.topology, 8)
    assert arch.mu_alpha.abs().max() < 5e-3 and arch.mu_beta.abs().max() < 5e-3  # 1e-3 randn
    ours_net, ref_net = copy.deepcopy(net), copy.deepcopy(net)
    start = arch.mu_alpha.detach().clone(), arch.mu_beta.detach().clone()
    config = AdmmConfig(lr=6e-4, weight_decay=1e-3, decay_to_init=False)
    step = ArchitectureStep(SearchMethod.PC_DARTS, arch, ours_net, config)
    batches = [(x, y)] * 5  # more steps: Adam turns float rounding near a zero gradient into
    for xb, yb in batches:  # lr-sized differences on single coordinates
        step(xb, yb)
    ref_alpha, ref_beta = _pc_darts_reference(ref_net, *start, batches)
    torch.testing.assert_close(arch.mu_alpha.detach(), ref_alpha, atol=1e-5, rtol=0)
    torch.testing.assert_close(arch.mu_beta.detach(), ref_beta, atol=1e-5, rtol=0)
    moved = (F.softmax(ref_alpha, -1) - F.softmax(start[0], -1)).abs().max()
    assert moved > 1e-4  # Adam's ~lr steps on the logits, not a decay-dominated drift


def test_uniform_shift_of_mu_changes_neither_the_bound_nor_the_cell(tiny):
    net, _, _ = tiny
    torch.manual_seed(0)
    arch = ArchitectureParameters(net.topology, 8)
    with torch.no_grad():
        arch.mu_alpha.normal_()
        arch.mu_beta.normal_()
    log_lambda = net.log_lipschitz()
    before = read_bound(SearchMethod.RACL, arch, net, log_lambda)
    genotype = derive_genotype(arch, SearchMethod.RACL)
    raw = network_lognormal(arch.mu_alpha[net.cell_types], arch.sigma_alpha[net.cell_types] ** 2,
                            arch.mu_beta[net.cell_types], arch.sigma_beta[net.cell_types] ** 2,
                            log_lambda, net.topology)[0]  # fmt: skip
    with torch.no_grad():
        arch.mu_beta -= 0.1
        arch.mu_alpha += 0.3
    after = read_bound(SearchMethod.RACL, arch, net, log_lambda)
    assert after.mu.item() == pytest.approx(before.mu.item(), abs=1e-5)
    assert after.var.item() == pytest.approx(before.var.item(), abs=1e-6)
    assert derive_genotype(arch, SearchMethod.RACL) == genotype
    raw_after = network_lognormal(arch.mu_alpha[net.cell_types], arch.sigma_alpha[net.cell_types]
                                  ** 2, arch.mu_beta[net.cell_types],
                                  arch.sigma_beta[net.cell_types] ** 2, log_lambda,
                                  net.topology)[0]  # fmt: skip
    # unnormalised (the paper's literal parameters): the same cell, a bound lower by 3 x 4 x 0.1
    assert (raw - raw_after).item() == pytest.approx(3 * 4 * (0.1 - 0.3), abs=1e-4)


def test_derive_picks_strongest_non_none_op_and_two_edges(tmp_path, tiny):
    net, _, _ = tiny
    topo = net.topology
    strength = torch.full((14, 8), -5.0)
    strength[:, 0] = 10.0  # none is strongest everywhere but never chosen
    strength[0, 4] = 1.0  # node 0, input 0 -> sep_conv_3x3
    strength[1, 2] = 2.0  # node 0, input 1 -> avg_pool_3x3
    strength[4, 7] = 3.0  # node 1, input 2 -> dil_conv_5x5
    pairs = derive_cell(strength, topo, ("none", "max_pool_3x3", "avg_pool_3x3", "skip_connect",
                                         "sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3",
                                         "dil_conv_5x5"))  # fmt: skip
    assert pairs[:2] == [("sep_conv_3x3", 0), ("avg_pool_3x3", 1)]
    assert ("dil_conv_5x5", 2) in pairs[2:4]
    assert all(op != "none" for op, _ in pairs)
    arch = ArchitectureParameters(topo, 8)
    with torch.no_grad():
        arch.mu_alpha.normal_()
        arch.s_alpha.normal_()
    for method in SearchMethod:
        for rule in Strength:
            genotype = derive_genotype(arch, method, rule)
            assert isinstance(genotype, Genotype)
            assert genotype.normal_concat == (2, 3, 4, 5)
    from genotypes import save_genotype

    path = save_genotype(genotype, tmp_path, name="derived", source="test", metadata={})
    assert read_genotype_file(path).arch == genotype


def test_config_validation_and_presets():
    assert make_config("paper").dataset == "cifar10"
    assert make_config("demo").config_hash() == make_config("demo").config_hash()
    assert make_config("demo", rho=0.01).config_hash() != make_config("demo").config_hash()
    for bad in (dict(eta=1.5), dict(method="darts"), dict(epochs=0), dict(init_channels=6)):
        with pytest.raises(SearchError):
            make_config("smoke", **bad)
    with pytest.raises(SearchError, match="preset"):
        make_config("huge")
    assert {v.row for v in TABLE5_VARIANTS.values()} == {
        "without_cl", "eta0.9_rho0.01", "eta0.9_rho0.0001", "eta0.9_rho0.001", "eta0.7_rho0.001"
    }  # fmt: skip
    from bench.plan.experiments import get_experiments

    (table5,) = get_experiments(["table5"])  # the harness asks for exactly these genotypes
    assert set(table5.models) == set(TABLE5_VARIANTS)


def test_smoke_search_writes_genotype_and_resume_matches_uninterrupted(tmp_path, mnist_train):
    x, y = mnist_train
    config = make_config("smoke", epochs=3)
    logs: list[str] = []
    kwargs = dict(out_dir=tmp_path / "geno", progress=False, log=logs.append)
    full = run_search(config, x, y, name="full", run_dir=tmp_path / "full", **kwargs)
    stopped = run_search(
        config, x, y, name="cut", run_dir=tmp_path / "cut", stop_after_epoch=2, **kwargs
    )
    assert stopped is None and not (tmp_path / "geno" / "cut.json").exists()
    resumed = run_search(config, x, y, name="cut", run_dir=tmp_path / "cut", **kwargs)
    assert any(line.startswith("resuming cut after epoch 2/3") for line in logs)
    assert resumed.genotype == full.genotype
    assert resumed.metadata["final_c"] == pytest.approx(full.metadata["final_c"], rel=1e-5)
    record = read_genotype_file(tmp_path / "geno" / "cut.json")
    assert record.arch == resumed.genotype
    meta = record.metadata
    assert meta["method"] == "racl" and meta["config_hash"] == config.config_hash()
    assert meta["log_bound_q_eta"] > meta["log_bound_median"]
    rows = [json.loads(line) for line in (tmp_path / "cut" / "log.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2, 3]
    assert math.isnan(rows[0]["arch_ce"]) and "c" in rows[-1]
    assert len(list((tmp_path / "cut").glob("state-*.safetensors"))) == 1
    other = make_config("smoke", epochs=3, rho=0.5)
    with pytest.raises(SearchError, match="another config"):
        run_search(other, x, y, name="cut", run_dir=tmp_path / "cut", **kwargs)


def test_ensure_searched_runs_once(tmp_path, monkeypatch, mnist_train):
    monkeypatch.setenv("RACL_GENOTYPES_PATH", str(tmp_path / "geno"))
    monkeypatch.setenv("RACL_SEARCH_RUNS", str(tmp_path / "runs"))
    calls = []

    def loader(dataset, split, data_dir):
        calls.append((dataset, split))
        return mnist_train

    args = dict(method="pc_darts", eta=0.9, rho=1e-3, preset="smoke", dataset="mnist")
    assert ensure_searched("t5", loader=loader, **args) == "t5"
    first = (tmp_path / "geno" / "t5.json").stat().st_mtime_ns
    assert ensure_searched("t5", loader=loader, **args) == "t5"
    assert len(calls) == 1 and (tmp_path / "geno" / "t5.json").stat().st_mtime_ns == first
    ensure_searched("t5", loader=loader, **{**args, "seed": 1})
    assert len(calls) == 2
    assert read_genotype_file("t5").metadata["seed"] == 1


def test_cli_search_smoke_and_bad_input(tmp_path, monkeypatch, capsys):
    from bench.cli import main

    monkeypatch.setenv("RACL_BENCH_NO_PROGRESS", "1")
    out = tmp_path / "geno"
    argv = ["search", "--preset", "smoke", "--name", "cli_smoke", "--out-dir", str(out),
            "--run-dir", str(tmp_path / "run"), "--method", "racl_no_cl"]  # fmt: skip
    assert main(argv) == 0
    assert "final c =" in capsys.readouterr().out
    assert read_genotype_file(out / "cli_smoke.json").metadata["method"] == "racl_no_cl"
    assert main([*argv, "--eta", "1.2"]) == 2
    assert "eta must lie in (0, 1)" in capsys.readouterr().err
    paper = ["search", "--preset", "smoke", "--name", "cli_paper", "--out-dir", str(out),
             "--run-dir", str(tmp_path / "run2"), "--bound", "paper", "--penalty", "paper",
             "--threads", "1", "--epochs", "1"]  # fmt: skip
    assert main(paper) == 0
    config = read_genotype_file(out / "cli_paper.json").metadata["config"]
    assert (config["bound"], config["penalty"]) == ("paper", "paper")
    assert main([*argv, "--threads", "0"]) == 2
    assert "--threads must be >= 1" in capsys.readouterr().err
