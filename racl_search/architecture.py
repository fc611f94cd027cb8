"""Architecture parameters: log-normal ``alpha``/``beta`` (RACL) or softmax logits (PC-DARTS).

RACL (Dong et al., AAAI 2021, Sec. 2.3): ``alpha_ij,o ~ LN(mu^a, (sigma^a)^2)`` and
``beta_ij ~ LN(mu^b, (sigma^b)^2)``, independent, with trainable ``mu`` and ``sigma``, sampled
with the reparameterisation ``exp(mu + sigma * eps)`` afresh every step.

Choices (``RACL_METHOD.md`` Sec. 3):
- ``sigma = softplus(s)`` with a free parameter ``s`` (smooth and positive, unlike a clamp);
- ``mu^a = ln(1/|O|)``, ``mu^b = ln(1/#inputs of the node)`` plus ``N(0, 1e-3^2)`` noise, so the
  expected mixture starts at the uniform softmax of PC-DARTS; ``sigma`` starts at ``sigma_init``.

Index 0 of every tensor holds the normal cells' parameters, index 1 the reduction cells'.
The same ``mu`` tensors serve as deterministic log-weights ("without CL": ``alpha = exp(mu)``)
and as PC-DARTS logits (``alpha = softmax(mu)``, ``beta = softmax over a node's inputs``).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.enums import SearchMethod, StrEnum
from racl_search.constraint import CellTopology


class WeightMode(StrEnum):
    """How ``alpha``/``beta`` are formed: a log-normal sample, ``exp(mu)``, or softmax."""

    SAMPLE = "sample"
    MEDIAN = "median"
    SOFTMAX = "softmax"


def weight_mode(method: SearchMethod) -> WeightMode:
    """The mixture weights each method trains with."""
    return {
        SearchMethod.RACL: WeightMode.SAMPLE,
        SearchMethod.RACL_NO_CL: WeightMode.MEDIAN,
        SearchMethod.PC_DARTS: WeightMode.SOFTMAX,
    }[method]


def inverse_softplus(y: float) -> float:
    """``s`` with ``softplus(s) = y`` for ``y > 0``."""
    return y + math.log(-math.expm1(-y))


def node_log_softmax(logits: Tensor, topology: CellTopology) -> Tensor:
    """Log-softmax of per-edge logits ``(..., E)`` over each node's incoming edges."""
    table = topology.gather_nodes(logits, float("-inf"))
    log_p = torch.log_softmax(table, dim=-1)
    nodes = torch.tensor([j for j, _ in topology.edges], device=logits.device)
    inputs = torch.tensor([i for _, i in topology.edges], device=logits.device)
    return log_p[..., nodes, inputs]


class ArchitectureParameters(nn.Module):
    """Trainable ``mu``/``sigma`` of ``alpha`` (2, E, O) and ``beta`` (2, E)."""

    def __init__(
        self,
        topology: CellTopology,
        n_ops: int,
        sigma_init: float = 0.2,
        init_noise: float = 1e-3,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if sigma_init <= 0:
            raise ValueError(f"sigma_init must be > 0, got {sigma_init}")
        self.topology = topology
        n_e = topology.n_edges
        fan_in = torch.tensor([float(j + 2) for j, _ in topology.edges])
        noise_a = init_noise * torch.randn(2, n_e, n_ops, generator=generator)
        noise_b = init_noise * torch.randn(2, n_e, generator=generator)
        self.mu_alpha = nn.Parameter(math.log(1.0 / n_ops) + noise_a)
        self.mu_beta = nn.Parameter(-fan_in.log().expand(2, n_e) + noise_b)
        s0 = inverse_softplus(sigma_init)
        self.s_alpha = nn.Parameter(torch.full((2, n_e, n_ops), s0))
        self.s_beta = nn.Parameter(torch.full((2, n_e), s0))

    @property
    def sigma_alpha(self) -> Tensor:
        return F.softplus(self.s_alpha)

    @property
    def sigma_beta(self) -> Tensor:
        return F.softplus(self.s_beta)

    def mu_parameters(self) -> list[nn.Parameter]:
        return [self.mu_alpha, self.mu_beta]

    def sigma_parameters(self) -> list[nn.Parameter]:
        return [self.s_alpha, self.s_beta]

    def weights(self, mode: WeightMode) -> tuple[Tensor, Tensor]:
        """The ``(alpha, beta)`` fed to the supernet in ``mode``."""
        if mode is WeightMode.SAMPLE:
            eps_a = torch.randn_like(self.mu_alpha)
            eps_b = torch.randn_like(self.mu_beta)
            return (
                torch.exp(self.mu_alpha + self.sigma_alpha * eps_a),
                torch.exp(self.mu_beta + self.sigma_beta * eps_b),
            )
        if mode is WeightMode.MEDIAN:
            return self.mu_alpha.exp(), self.mu_beta.exp()
        log_alpha, log_beta = self.log_softmax_weights()
        return log_alpha.exp(), log_beta.exp()

    def log_softmax_weights(self) -> tuple[Tensor, Tensor]:
        """PC-DARTS: log-softmax over ops per edge and over inputs per node."""
        return (
            torch.log_softmax(self.mu_alpha, dim=-1),
            node_log_softmax(self.mu_beta, self.topology),
        )

    def per_cell(self, cell_types: list[int], deterministic: bool = False) -> tuple[Tensor, ...]:
        """``(mu_a, var_a, mu_b, var_b)`` expanded to one copy per cell (shared by type)."""
        idx = torch.tensor(cell_types, device=self.mu_alpha.device)
        mu_a, mu_b = self.mu_alpha[idx], self.mu_beta[idx]
        if deterministic:
            return mu_a, torch.zeros_like(mu_a), mu_b, torch.zeros_like(mu_b)
        return mu_a, self.sigma_alpha[idx].square(), mu_b, self.sigma_beta[idx].square()
