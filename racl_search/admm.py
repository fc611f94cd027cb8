"""The architecture step: an augmented Lagrangian on the Lipschitz constraint (RACL Eq. 17-19).

Minimises ``CE(val batch) + penalty(c)`` by a ``mu`` half-step and a ``sigma`` half-step (Adam),
then raises the projected dual ``theta``. ``penalty="phr"`` (default) is the PHR form for an
inequality, ``(max(0, theta + rho c)^2 - theta^2) / (2 rho)``; ``"paper"`` is Eq. 17 as written,
``theta c + rho / 2 c^2``. The weight decay pulls ``mu`` toward its start (PC-DARTS: toward 0, as
its Adam does). The same class runs ``racl_no_cl`` (point bound) and ``pc_darts`` (softmax, no
constraint). Every choice: docs/SEARCH.md, "The method as implemented".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor

from core import distributed
from core.enums import SearchMethod
from racl_search.architecture import ArchitectureParameters, weight_mode
from racl_search.constraint import (
    confidence_constraint,
    network_lognormal,
    point_constraint,
    point_log_bound,
)
from racl_search.lognormal import lognormal_log_quantile
from racl_search.options import Confidence, Penalty, Target
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
    decay_to_init: bool = True  # anchor the decay at mu's start (False: toward 0, PC-DARTS)
    penalty: str = Penalty.PHR.value
    target: str = Target.RELATIVE.value  # ln lambda* when log_target is None
    confidence: str = Confidence.EXACT.value  # exact quantile + shared variance, or the paper's
    live_sigma: bool = False  # the constraint's spread: the starting sigma (False) or the current
    sequential_sigma: bool = False

    @property
    def exact(self) -> bool:
        return Confidence.parse(self.confidence) is Confidence.EXACT

    def penalty_term(self, c: Tensor, theta: float) -> Tensor:
        """The constraint's term in the architecture loss (see the module docstring)."""
        if Penalty.parse(self.penalty) is Penalty.PAPER:
            return theta * c + 0.5 * self.rho * c.square()
        if self.rho == 0.0:
            return theta * c
        shifted = torch.clamp(theta + self.rho * c, min=0.0)
        return (shifted.square() - theta**2) / (2.0 * self.rho)


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
    start: bool = False,
    shared: bool = True,
    live_sigma: bool = False,
) -> BoundReading:
    """The network bound under each method's parametrisation (differentiable in ``arch``);
    ``start``: of the starting architecture parameters; ``shared``: the variance of one sample
    per cell type (the search's sampling), else the paper's sum over independent cells;
    ``live_sigma``: the current sigma, else the starting one (D9)."""
    topo, bypass = net.topology, net.log_lipschitz_bypass()
    if method is SearchMethod.RACL:
        m_a, var_a, m_b, var_b = arch.per_cell(net.cell_types, start=start, live_sigma=live_sigma)
        types = net.cell_types if shared else None
        mu, var = network_lognormal(m_a, var_a, m_b, var_b, log_lambda, topo, log_c, bypass,
                                    cell_types=types)  # fmt: skip
        return BoundReading(mu, var)
    m_a, _, m_b, _ = arch.per_cell(net.cell_types, deterministic=True, start=start)
    log_bound = point_log_bound(m_a, m_b, log_lambda, topo, log_c, bypass)
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
        self.log_lambda: Tensor | None = None  # the last step's per-op constants
        adam_decay = 0.0 if config.decay_to_init else config.weight_decay
        self.mu_opt = torch.optim.Adam(
            arch.mu_parameters(), lr=config.lr, betas=config.betas, weight_decay=adam_decay
        )
        self.sigma_opt = torch.optim.Adam(arch.sigma_parameters(), lr=config.lr, betas=config.betas)

    @property
    def constrained(self) -> bool:
        return self.method is not SearchMethod.PC_DARTS

    def read(self, log_lambda: Tensor, start: bool = False) -> BoundReading:
        """The bound under this step's variance model (see :func:`read_bound`)."""
        return read_bound(self.method, self.arch, self.net, log_lambda, self.config.log_c,
                          start=start, shared=self.config.exact,
                          live_sigma=self.config.live_sigma)  # fmt: skip

    def constraint(self, log_lambda: Tensor) -> tuple[Tensor, BoundReading]:
        """``c`` at the current parameters; sets ``ln lambda*`` (see :class:`Target`)."""
        bound = self.read(log_lambda)
        relative = Target.parse(self.config.target) is Target.RELATIVE
        if self.config.log_target is None and relative:
            with torch.no_grad():
                ref = self.read(log_lambda, start=True)
            self.state.log_target = float(ref.mu)
        elif self.state.log_target is None:
            self.state.log_target = float(bound.mu.detach())
        if self.method is SearchMethod.RACL:
            c = confidence_constraint(bound.mu, bound.var, self.config.eta, self.state.log_target,
                                      exact=self.config.exact)  # fmt: skip
        else:
            c = point_constraint(bound.mu, self.state.log_target)
        return c, bound

    def _loss(self, x: Tensor, y: Tensor) -> tuple[Tensor, ...]:
        """The architecture loss; the per-op constants are read after the forward, from the
        batch statistics it normalised with (kept in ``self.log_lambda`` for the step)."""
        alpha, beta = self.arch.weights(self.mode)
        if not self.constrained:
            ce = F.cross_entropy(self.net(x, alpha, beta), y)
            return ce, ce, None
        if self.log_lambda is None:
            with self.net.recording_batch_statistics():
                ce = F.cross_entropy(self.net(x, alpha, beta), y)
            # each rank normalised its own shard: the largest constant bounds every rank's map,
            # and all ranks read the same constraint (one process: unchanged)
            self.log_lambda = distributed.all_reduce_max(self.net.log_lipschitz())
        else:
            ce = F.cross_entropy(self.net(x, alpha, beta), y)
        c, _ = self.constraint(self.log_lambda)
        return ce + self.config.penalty_term(c, self.state.theta), ce, c

    @torch.no_grad()
    def _decay_to_init(self) -> None:
        """Add ``wd * (mu - mu_start)`` to the gradients: no pull where the data gives none."""
        if not self.config.decay_to_init or self.config.weight_decay == 0.0:
            return
        for p, anchor in zip(self.arch.mu_parameters(), self.arch.mu_anchors(), strict=True):
            pull = self.config.weight_decay * (p - anchor)
            p.grad = pull if p.grad is None else p.grad.add_(pull)

    def __call__(self, x: Tensor, y: Tensor) -> dict[str, float]:
        self.log_lambda = None
        self.mu_opt.zero_grad(set_to_none=True)
        self.sigma_opt.zero_grad(set_to_none=True)
        loss, ce, c = self._loss(x, y)
        loss.backward()
        self._decay_to_init()
        self.mu_opt.step()
        if self.method is SearchMethod.RACL:
            if self.config.sequential_sigma:
                self.sigma_opt.zero_grad(set_to_none=True)
                self._loss(x, y)[0].backward()
            self.sigma_opt.step()
        self.state.steps += 1
        out = {"arch_ce": float(ce.detach())}
        if c is not None:
            c_value = float(c.detach())
            self.state.theta = max(0.0, self.state.theta + self.config.rho * c_value)
            out.update(c=c_value, theta=self.state.theta)
        self.state.last = out
        return out
