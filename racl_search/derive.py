"""Deriving a discrete genotype from the architecture parameters (DARTS rule, RACL strengths).

DARTS (Liu et al., ICLR 2019) keeps, per node, the two strongest incoming edges, each with its
strongest op other than ``none``; PC-DARTS (Xu et al., ICLR 2020) ranks ops by
``beta_ij * alpha_ij,o``. For RACL's log-normal parameters the strength ``beta * alpha`` is
itself log-normal, ``LN(m^a + m^b, (sigma^a)^2 + (sigma^b)^2)`` (the locations the constraint
reads, :meth:`ArchitectureParameters.bound_locations`: medians of the derivable ops summing to
1 per edge, so ``none`` moves neither), read by a rule **(choice)**:
``median`` ``exp(mu)`` (default), ``mean`` ``exp(mu + s^2 / 2)``, or ``lcb``, the lower confidence
bound ``exp(mu - Phi^-1(eta) * s)``. Ties go to the earlier op / the lower input index.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from core.enums import SearchMethod, Strength
from genotypes import Genotype
from racl_search.architecture import ArchitectureParameters
from racl_search.constraint import CellTopology
from racl_search.lognormal import normal_ppf


@torch.no_grad()
def log_strengths(
    arch: ArchitectureParameters, method: SearchMethod, rule: Strength, eta: float = 0.9
) -> Tensor:
    """``ln(beta_ij * alpha_ij,o)`` of shape ``(2, E, O)`` (normal, reduce)."""
    if method is not SearchMethod.RACL:  # PC-DARTS and without CL: softmax weights
        log_alpha, log_beta = arch.log_softmax_weights()
        return log_alpha + log_beta.unsqueeze(-1)
    m_a, var_a, m_b, var_b = arch.bound_locations(live_sigma=True)  # the constraint's medians
    mu = m_a + m_b.unsqueeze(-1)
    if rule is Strength.MEDIAN:
        return mu
    var = var_a + var_b.unsqueeze(-1)
    if rule is Strength.MEAN:
        return mu + 0.5 * var
    return mu - normal_ppf(eta) * var.sqrt()


def derive_cell(
    strength: Tensor, topology: CellTopology, primitives: Sequence[str], keep: int = 2
) -> list[tuple[str, int]]:
    """``(op, input)`` pairs of one cell from its ``(E, O)`` strengths, ``keep`` per node."""
    allowed = torch.tensor([name != "none" for name in primitives])
    masked = strength.masked_fill(~allowed, float("-inf"))
    best_value, best_op = masked.max(dim=-1)
    pairs: list[tuple[str, int]] = []
    offset = 0
    for j in range(topology.steps):
        n_in = j + 2
        values = best_value[offset : offset + n_in]
        order = sorted(range(n_in), key=lambda i: (-float(values[i]), i))[:keep]
        for i in sorted(order):
            pairs.append((primitives[int(best_op[offset + i])], i))
        offset += n_in
    return pairs


def derive_genotype(
    arch: ArchitectureParameters,
    method: SearchMethod,
    rule: Strength = Strength.MEDIAN,
    eta: float = 0.9,
    primitives: Sequence[str] | None = None,
    multiplier: int = 4,
) -> Genotype:
    """The discrete genotype (concat of the last ``multiplier`` nodes)."""
    from genotypes import PRIMITIVES

    primitives = tuple(primitives or PRIMITIVES)
    topo = arch.topology
    strengths = log_strengths(arch, method, rule, eta).cpu()
    concat = tuple(range(2 + topo.steps - multiplier, 2 + topo.steps))
    return Genotype(
        normal=derive_cell(strengths[0], topo, primitives),
        normal_concat=concat,
        reduce=derive_cell(strengths[1], topo, primitives),
        reduce_concat=concat,
    )
