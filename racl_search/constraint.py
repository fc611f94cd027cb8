"""The RACL Lipschitz confidence constraint (Dong et al., AAAI 2021, Eq. 10-17).

The network's Lipschitz bound (Eq. 10)

    lambda_F <= C * prod_cells prod_nodes j  sum_{i<j} beta_ij * sum_o alpha_ij,o * lambda_o

is log-normal when ``alpha`` and ``beta`` are: Fenton-Wilkinson per edge over ops (Eq. 11), the
product ``beta * lambda_edge`` (exact), Fenton-Wilkinson per node over incoming edges (Eq. 12),
and the product over nodes and cells: ``mu = ln C + sum mu_j``, ``sigma^2 = sum sigma_j^2``.
Cells that share one genotype share ``alpha``/``beta`` but each has its own weights, so the
per-op constants ``lambda_o`` are per cell. The search draws one sample per cell type, so by
default a node's log factors over the cells of one type are summed as fully correlated
(:func:`network_variance`); the paper sums the cells' variances as if independent.

The constraint ``P[lambda_F <= lambda*] >= eta`` is ``c = mu + Phi^-1(eta) * sigma - ln lambda*``
(the exact quantile, with the variance of the search's shared sampling, :func:`network_variance`)
or, as the paper writes it, convexified into ``mu + Phi^-1(eta) * sigma^2 - ln lambda*`` with the
cells' variances summed as if independent (Eq. 16-17). The "without CL" ablation uses the point
bound of Eq. 10 with deterministic parameters: ``c = ln bound - ln lambda*``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from racl_search.lognormal import fenton_wilkinson, lognormal_max_constant, normal_ppf


@dataclass(frozen=True)
class CellTopology:
    """Edges of a DARTS cell with ``steps`` intermediate nodes, in the DARTS order.

    Node ``j`` (0-based) has inputs ``0 .. j + 1`` (two cell inputs, then earlier nodes); its
    edges are consecutive. ``node_index[j, k]`` is the flat edge id of the k-th input of node
    ``j``; ``node_mask`` marks real entries of this padded table.
    """

    steps: int
    edges: tuple[tuple[int, int], ...]  # (node j, input i)
    node_index: Tensor
    node_mask: Tensor

    @classmethod
    def of(cls, steps: int = 4) -> CellTopology:
        edges = tuple((j, i) for j in range(steps) for i in range(j + 2))
        width = steps + 1
        index = torch.zeros(steps, width, dtype=torch.long)
        mask = torch.zeros(steps, width, dtype=torch.bool)
        for e, (j, i) in enumerate(edges):
            index[j, i] = e
            mask[j, i] = True
        return cls(steps, edges, index, mask)

    @property
    def n_edges(self) -> int:
        return len(self.edges)

    def gather_nodes(self, per_edge: Tensor, fill: float) -> Tensor:
        """``(..., E)`` -> ``(..., steps, steps + 1)`` padded with ``fill``."""
        index = self.node_index.to(per_edge.device)
        mask = self.node_mask.to(per_edge.device)
        return per_edge[..., index].masked_fill(~mask, fill)


def edge_lognormal(
    mu_a: Tensor, var_a: Tensor, log_lambda: Tensor, log_bypass: Tensor | None = None
) -> tuple[Tensor, Tensor]:
    """Eq. 11: ``sum_o alpha_o * lambda_o`` per edge; inputs ``(..., E, O)`` -> ``(..., E)``.

    ``log_bypass (..., E)``: the PC-DARTS bypassed channels' constant ``b``; the edge maps its
    two channel groups separately, so its constant is ``max(sum_o alpha_o lambda_o, b)``
    (moment-matched, :func:`lognormal_max_constant`); ``-inf`` leaves the edge as Eq. 11.
    """
    keep = torch.isfinite(log_lambda)
    mean = mu_a + log_lambda.masked_fill(~keep, 0.0)
    m, s2 = fenton_wilkinson(mean, var_a, mask=keep, dim=-1)
    if log_bypass is None:
        return m, s2
    return lognormal_max_constant(m, s2, log_bypass.expand_as(m))


def node_lognormal(
    mu_b: Tensor, var_b: Tensor, mu_e: Tensor, var_e: Tensor, topology: CellTopology
) -> tuple[Tensor, Tensor]:
    """Eq. 12: ``sum_{i<j} beta_ij * lambda_ij`` per node; ``(..., E)`` -> ``(..., steps)``."""
    mean = topology.gather_nodes(mu_b + mu_e, 0.0)
    var = topology.gather_nodes(var_b + var_e, 0.0)
    mask = topology.node_mask.to(mean.device)
    return fenton_wilkinson(mean, var, mask=mask, dim=-1)


def network_lognormal(
    mu_a: Tensor,
    var_a: Tensor,
    mu_b: Tensor,
    var_b: Tensor,
    log_lambda: Tensor,
    topology: CellTopology,
    log_c: float = 0.0,
    log_bypass: Tensor | None = None,
    cell_types: list[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """``(mu, sigma^2)`` of the network bound; per-cell inputs ``(cells, E, O)`` / ``(cells, E)``.

    Pass each cell's own copy of the shared architecture parameters (e.g. by indexing the
    normal/reduce parameters with the cell types) and its own ``log_lambda`` / ``log_bypass``.
    ``cell_types``: cells of one type share one sample (:func:`network_variance`); None sums
    the cells' variances as if independent (the paper).
    """
    mu_e, var_e = edge_lognormal(mu_a, var_a, log_lambda, log_bypass)
    mu_j, var_j = node_lognormal(mu_b, var_b, mu_e, var_e, topology)
    return log_c + mu_j.sum(), network_variance(var_j, cell_types)


def network_variance(var_j: Tensor, cell_types: list[int] | None) -> Tensor:
    """Variance of ``sum_{cells k, nodes j} ln(node factor)``; ``var_j``: ``(cells, steps)``.

    Nodes are independent (disjoint parameters). The cells of one type share their sample, so
    a node's log factors over those cells move together: their standard deviations are added
    before squaring, ``sum_types sum_j (sum_{k in type} s_kj)^2``, which bounds the variance of
    a sum of correlated terms from above (Cauchy-Schwarz). ``cell_types`` None: ``sum var_j``.
    """
    if cell_types is None:
        return var_j.sum()
    types = torch.tensor(cell_types, device=var_j.device)
    sd = var_j.clamp_min(1e-30).sqrt()
    total = var_j.new_zeros(())
    for t in sorted(set(cell_types)):
        total = total + sd[types == t].sum(dim=0).square().sum()
    return total


def point_log_bound(
    log_alpha: Tensor,
    log_beta: Tensor,
    log_lambda: Tensor,
    topology: CellTopology,
    log_c: float = 0.0,
    log_bypass: Tensor | None = None,
) -> Tensor:
    """Log of the deterministic bound of Eq. 10 for fixed ``alpha``, ``beta`` (any positive);
    with ``log_bypass`` each edge's constant is ``max(sum_o alpha_o lambda_o, bypass)``."""
    edge = torch.logsumexp(log_alpha + log_lambda, dim=-1)
    if log_bypass is not None:
        edge = torch.maximum(edge, log_bypass)
    node = torch.logsumexp(topology.gather_nodes(log_beta + edge, float("-inf")), dim=-1)
    return log_c + node.sum()


def confidence_constraint(
    mu: Tensor, var: Tensor, eta: float, log_target: float, exact: bool = True
) -> Tensor:
    """``c <= 0`` for ``P[lambda_F <= lambda*] >= eta``: the exact log-normal quantile
    ``mu + Phi^-1(eta) * sigma - ln lambda*``, or (``exact=False``) Eq. 17's convexified
    ``mu + Phi^-1(eta) * sigma^2 - ln lambda*``."""
    spread = var.clamp_min(1e-30).sqrt() if exact else var
    return mu + normal_ppf(eta) * spread - log_target


def point_constraint(log_bound: Tensor, log_target: float) -> Tensor:
    """The "without CL" constraint on the point bound: ``c = ln bound - ln lambda*``."""
    return log_bound - log_target
