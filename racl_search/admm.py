"""The architecture step: ADMM on the Lipschitz confidence constraint (RACL Eq. 17-19).

Minimises ``CE(val batch) + theta * c + rho / 2 * c^2`` by a ``mu`` half-step and a ``sigma``
half-step (Adam), then raises the projected dual ``theta``. The same class runs the baselines
``racl_no_cl`` (point bound) and ``pc_darts`` (softmax, no constraint). Every choice the paper
leaves open: docs/SEARCH.md, "The method as implemented".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from core.enums import SearchMethod
from racl_search.architecture import ArchitectureParameters, weight_mode
from racl_search.constraint import (
    confidence_constraint,
    network_lognormal,
    point_constraint,
    point_log_bound,
)
from racl_search.lognormal import lognormal_log_quantile
from racl_search.supernet import Supernet


@dataclass(frozen=True)
class AdmmConfig:
    """Hyper-parameters of the architecture step (paper: eta 0.9, rho 0.001, Adam 6e-4)."""

    eta: float = 0.9
    rho: float = 1e-3
    log_target: float | None = None  # ln lambda*; None = network mu at the first arch step
    log_c: float = 0.0  # ln C of the stem and classifier: a constant, no effect on gradients
    lr: float = 6e-4
    betas: tuple[float, float] = (0.5, 0.999)
    weight_decay: float = 1e-3  # on mu only (choice: decaying softplus^-1(sigma) has no meaning)
    sequential_sigma: bool = False


@dataclass
class AdmmState:
    """What the architecture step carries between steps (saved in checkpoints as JSON)."""

    theta: float = 0.0
    log_target: float | None = None
    steps: int = 0
    last: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BoundReading:
    """The network's log Lipschitz bound: log-normal ``(mu, var)`` (var 0 when deterministic)."""

    mu: Tensor
    var: Tensor

    def log_quantile(self, q: float) -> float:
        return float(lognormal_log_quantile(self.mu.detach(), self.var.detach(), q))


def read_bound(
    method: SearchMethod,
    arch: ArchitectureParameters,
    net: Supernet,
    log_lambda: Tensor,
    log_c: float = 0.0,
) -> BoundReading:
    """The network bound under each method's parametrisation (differentiable in ``arch``)."""
    topo = net.topology
    if method is SearchMethod.RACL:
        mu_a, var_a, mu_b, var_b = arch.per_cell(net.cell_types)
        mu, var = network_lognormal(mu_a, var_a, mu_b, var_b, log_lambda, topo, log_c)
        return BoundReading(mu, var)
    if method is SearchMethod.RACL_NO_CL:
        mu_a, _, mu_b, _ = arch.per_cell(net.cell_types, deterministic=True)
    else:
        log_alpha, log_beta = arch.log_softmax_weights()
        idx = torch.tensor(net.cell_types, device=log_alpha.device)
        mu_a, mu_b = log_alpha[idx], log_beta[idx]
    log_bound = point_log_bound(mu_a, mu_b, log_lambda, topo, log_c)
    return BoundReading(log_bound, torch.zeros_like(log_bound))


class ArchitectureStep:
    """One architecture update per call on a validation batch."""

    def __init__(
        self,
        method: SearchMethod,
        arch: ArchitectureParameters,
        net: Supernet,
        config: AdmmConfig,
        state: AdmmState | None = None,
    ) -> None:
        self.method, self.arch, self.net, self.config = method, arch, net, config
        self.state = state or AdmmState(log_target=config.log_target)
        self.mode = weight_mode(method)
        self.mu_opt = torch.optim.Adam(
            arch.mu_parameters(), lr=config.lr, betas=config.betas, weight_decay=config.weight_decay
        )
        self.sigma_opt = torch.optim.Adam(arch.sigma_parameters(), lr=config.lr, betas=config.betas)

    @property
    def constrained(self) -> bool:
        return self.method is not SearchMethod.PC_DARTS

    def constraint(self, log_lambda: Tensor) -> tuple[Tensor, BoundReading]:
        """``c`` at the current parameters (sets ``ln lambda*`` on first use)."""
        bound = read_bound(self.method, self.arch, self.net, log_lambda, self.config.log_c)
        if self.state.log_target is None:
            self.state.log_target = float(bound.mu.detach())
        if self.method is SearchMethod.RACL:
            c = confidence_constraint(bound.mu, bound.var, self.config.eta, self.state.log_target)
        else:
            c = point_constraint(bound.mu, self.state.log_target)
        return c, bound

    def _loss(self, x: Tensor, y: Tensor, log_lambda: Tensor | None) -> tuple[Tensor, ...]:
        alpha, beta = self.arch.weights(self.mode)
        ce = F.cross_entropy(self.net(x, alpha, beta), y)
        if log_lambda is None:
            return ce, ce, None
        c, _ = self.constraint(log_lambda)
        loss = ce + self.state.theta * c + 0.5 * self.config.rho * c.square()
        return loss, ce, c

    def __call__(self, x: Tensor, y: Tensor) -> dict[str, float]:
        log_lambda = self.net.log_lipschitz() if self.constrained else None
        self.mu_opt.zero_grad(set_to_none=True)
        self.sigma_opt.zero_grad(set_to_none=True)
        loss, ce, c = self._loss(x, y, log_lambda)
        loss.backward()
        self.mu_opt.step()
        if self.method is SearchMethod.RACL:
            if self.config.sequential_sigma:
                self.sigma_opt.zero_grad(set_to_none=True)
                self._loss(x, y, log_lambda)[0].backward()
            self.sigma_opt.step()
        self.state.steps += 1
        out = {"arch_ce": float(ce.detach())}
        if c is not None:
            c_value = float(c.detach())
            self.state.theta = max(0.0, self.state.theta + self.config.rho * c_value)
            out.update(c=c_value, theta=self.state.theta)
        self.state.last = out
        return out
