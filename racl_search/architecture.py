"""Architecture parameters: log-normal ``alpha``/``beta`` (RACL) or softmax logits (PC-DARTS).

RACL (Dong et al., AAAI 2021, Sec. 2.3): ``alpha_ij,o ~ LN(m^a, (sigma^a)^2)`` and
``beta_ij ~ LN(m^b, (sigma^b)^2)``, independent, sampled with the reparameterisation
``exp(m + sigma * eps)`` afresh every step. The trainable ``mu`` tensors are zero-centred
(PC-DARTS's ``1e-3 * randn`` start, Xu et al. ICLR 2020, ``model_search.py``) and mapped to the
log-normal locations on the simplex of expected weights:

    m^a_o = mu^a_o - ln sum_o' exp(mu^a_o' + (sigma^a_o')^2 / 2)      (per edge)
    m^b_ij = mu^b_ij - ln sum_i' exp(mu^b_i'j + (sigma^b_i'j)^2 / 2)  (per node)

so ``E[alpha]`` sums to 1 per edge and ``E[beta]`` to 1 per node: a uniform shift of ``mu``
changes nothing, and the bound can only move when the mixture does (docs/SEARCH.md, "Scale").
``sigma = softplus(s)``. Without CL (``sigma = 0``) the locations are the log-softmax, the same
weights as PC-DARTS. Index 0 of every tensor holds the normal cells' parameters, 1 the reduction
cells'. The ``*_init`` buffers keep the start: the weight decay's anchor and the reference of
the relative Lipschitz target.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from core.enums import SearchMethod, StrEnum
from genotypes import PRIMITIVES
from racl_search.constraint import CellTopology


class WeightMode(StrEnum):
    """How ``alpha``/``beta`` are formed: a log-normal sample, ``exp(mu)``, or softmax."""

    SAMPLE = "sample"
    MEDIAN = "median"
    SOFTMAX = "softmax"


def weight_mode(method: SearchMethod) -> WeightMode:
    """The mixture weights each method trains with (without CL: the deterministic softmax)."""
    return WeightMode.SAMPLE if method is SearchMethod.RACL else WeightMode.SOFTMAX


def eval_mode(method: SearchMethod) -> WeightMode:
    """The weights the supernet is evaluated with: RACL's medians, else the softmax."""
    return WeightMode.MEDIAN if method is SearchMethod.RACL else WeightMode.SOFTMAX


def inverse_softplus(y: float) -> float:
    """``s`` with ``softplus(s) = y`` for ``y > 0``."""
    return y + math.log(-math.expm1(-y))


def node_logsumexp(values: Tensor, topology: CellTopology) -> Tensor:
    """Per edge ``(..., E)``: the logsumexp of ``values`` over the edges of its node."""
    table = torch.logsumexp(topology.gather_nodes(values, float("-inf")), dim=-1)
    nodes = torch.tensor([j for j, _ in topology.edges], device=values.device)
    return table[..., nodes]


def node_log_softmax(logits: Tensor, topology: CellTopology) -> Tensor:
    """Log-softmax of per-edge logits ``(..., E)`` over each node's incoming edges."""
    return logits - node_logsumexp(logits, topology)


class ArchitectureParameters(nn.Module):
    """Trainable ``mu``/``sigma`` of ``alpha`` (2, E, O) and ``beta`` (2, E)."""

    def __init__(
        self,
        topology: CellTopology,
        n_ops: int,
        sigma_init: float = 0.2,
        init_noise: float = 1e-3,
        generator: torch.Generator | None = None,
        derivable: list[bool] | None = None,
    ) -> None:
        super().__init__()
        if sigma_init <= 0:
            raise ValueError(f"sigma_init must be > 0, got {sigma_init}")
        if derivable is None:  # DARTS's PRIMITIVES: every op but `none` can be derived
            derivable = [p != "none" for p in PRIMITIVES] if n_ops == len(PRIMITIVES) else None
        derivable = derivable or [True] * n_ops
        if len(derivable) != n_ops or not any(derivable):
            raise ValueError(f"derivable needs {n_ops} flags, at least one True")
        self.register_buffer("derivable", torch.tensor(derivable), persistent=False)
        self.topology = topology
        n_e = topology.n_edges
        mu_a = init_noise * torch.randn(2, n_e, n_ops, generator=generator)
        mu_b = init_noise * torch.randn(2, n_e, generator=generator)
        self.mu_alpha = nn.Parameter(mu_a)
        self.mu_beta = nn.Parameter(mu_b)
        self.register_buffer("mu_alpha_init", mu_a.clone())
        self.register_buffer("mu_beta_init", mu_b.clone())
        s0 = inverse_softplus(sigma_init)
        self.s_alpha = nn.Parameter(torch.full((2, n_e, n_ops), s0))
        self.s_beta = nn.Parameter(torch.full((2, n_e), s0))
        self.register_buffer("s_alpha_init", self.s_alpha.detach().clone())
        self.register_buffer("s_beta_init", self.s_beta.detach().clone())

    @property
    def sigma_alpha(self) -> Tensor:
        return F.softplus(self.s_alpha)

    @property
    def sigma_beta(self) -> Tensor:
        return F.softplus(self.s_beta)

    def mu_parameters(self) -> list[nn.Parameter]:
        return [self.mu_alpha, self.mu_beta]

    def mu_anchors(self) -> list[Tensor]:
        """The starting values of :meth:`mu_parameters` (the weight decay's anchor)."""
        return [self.mu_alpha_init, self.mu_beta_init]

    def sigma_parameters(self) -> list[nn.Parameter]:
        return [self.s_alpha, self.s_beta]

    def locations(
        self, deterministic: bool = False, start: bool = False
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(m_a, var_a, m_b, var_b)``: log-normal locations with ``E[alpha]``, ``E[beta]`` on
        the simplex (per edge, per node); ``deterministic``: ``var = 0``, log-softmax;
        ``start``: of the starting parameters (the relative target's reference)."""
        mu_a, mu_b = (self.mu_alpha_init, self.mu_beta_init) if start else self.mu_parameters()
        s_a, s_b = (self.s_alpha_init, self.s_beta_init) if start else self.sigma_parameters()
        if deterministic:
            var_a, var_b = torch.zeros_like(mu_a), torch.zeros_like(mu_b)
        else:
            var_a, var_b = F.softplus(s_a).square(), F.softplus(s_b).square()
        m_a = mu_a - torch.logsumexp(mu_a + 0.5 * var_a, dim=-1, keepdim=True)
        m_b = mu_b - node_logsumexp(mu_b + 0.5 * var_b, self.topology)
        return m_a, var_a, m_b, var_b

    def bound_locations(
        self, deterministic: bool = False, start: bool = False, live_sigma: bool = False
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(m_a, var_a, m_b, var_b)`` the constraint reads: the medians of the ops that can be
        derived sum to 1 per edge, those of ``beta`` to 1 per node (``none``: ``-inf``).

        The derivation ranks medians among the derivable ops, so this is the mixture the
        derived cell is read from: ``mu_none`` cannot move it. Its medians are the forward's
        times a factor >= 1 per edge; with the starting spread it bounds the forward's samples
        only while the live ``sigma`` stays at or below the start. The spread is the starting
        ``sigma`` unless ``live_sigma``: the derived cell (a median) never sees ``sigma``, and
        shrinking it would otherwise meet the bound for free (docs/SEARCH.md, D9).
        ``deterministic``: ``var = 0`` (the log-softmax over the derivable ops); ``start``: of
        the starting parameters.
        """
        mu_a, mu_b = (self.mu_alpha_init, self.mu_beta_init) if start else self.mu_parameters()
        live = live_sigma and not start
        s_a, s_b = self.sigma_parameters() if live else (self.s_alpha_init, self.s_beta_init)
        if deterministic:
            var_a, var_b = torch.zeros_like(mu_a), torch.zeros_like(mu_b)
        else:
            var_a, var_b = F.softplus(s_a).square(), F.softplus(s_b).square()
        keep = self.derivable.to(mu_a.device)
        kept = mu_a.masked_fill(~keep, float("-inf"))
        m_a = kept - torch.logsumexp(kept, dim=-1, keepdim=True)
        m_b = mu_b - node_logsumexp(mu_b, self.topology)
        return m_a, var_a.masked_fill(~keep, 0.0), m_b, var_b

    def weights(self, mode: WeightMode) -> tuple[Tensor, Tensor]:
        """The ``(alpha, beta)`` fed to the supernet in ``mode``."""
        if mode is WeightMode.SOFTMAX:
            log_alpha, log_beta = self.log_softmax_weights()
            return log_alpha.exp(), log_beta.exp()
        m_a, _, m_b, _ = self.locations()
        if mode is WeightMode.MEDIAN:
            return m_a.exp(), m_b.exp()
        eps_a = torch.randn_like(self.mu_alpha)
        eps_b = torch.randn_like(self.mu_beta)
        return (
            torch.exp(m_a + self.sigma_alpha * eps_a),
            torch.exp(m_b + self.sigma_beta * eps_b),
        )

    def log_softmax_weights(self) -> tuple[Tensor, Tensor]:
        """PC-DARTS: log-softmax over ops per edge and over inputs per node."""
        return (
            torch.log_softmax(self.mu_alpha, dim=-1),
            node_log_softmax(self.mu_beta, self.topology),
        )

    def per_cell(
        self,
        cell_types: list[int],
        deterministic: bool = False,
        start: bool = False,
        live_sigma: bool = False,
    ) -> tuple[Tensor, ...]:
        """:meth:`bound_locations` expanded to one copy per cell (shared by type)."""
        idx = torch.tensor(cell_types, device=self.mu_alpha.device)
        return tuple(t[idx] for t in self.bound_locations(deterministic, start, live_sigma))
