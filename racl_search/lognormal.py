"""Log-normal algebra for the RACL Lipschitz bound (Fenton-Wilkinson sums and products).

RACL (Dong et al., "Adversarially Robust Neural Architecture Search with Confidence Learning",
AAAI 2021, Eq. 11-12) approximates a sum of independent log-normal variables by one log-normal,
following Fenton (1960), "The sum of log-normal probability distributions in scatter
transmission systems". A product of independent log-normals is exactly log-normal with the
log-means and log-variances added.

All functions take log-means ``mean`` and log-variances ``var`` (sigma squared, not sigma) as
tensors, work on any leading batch shape, and are differentiable. The moment matching is written
with a softmax so that zero variances (the deterministic "without CL" ablation) keep finite
gradients and large log-means do not overflow:

    A     = sum_o exp(m_o + v_o / 2)
    B/A^2 = sum_o softmax(m + v/2)_o^2 * (exp(v_o) - 1)
    s^2   = ln(1 + B / A^2),   m = ln A - s^2 / 2
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


def fenton_wilkinson(
    mean: Tensor, var: Tensor, mask: Tensor | None = None, dim: int = -1
) -> tuple[Tensor, Tensor]:
    """Log-normal ``LN(m, s^2)`` matching the first two moments of ``sum_o LN(mean_o, var_o)``.

    ``mask`` (bool, broadcastable to ``mean``) keeps the terms where it is True; dropped terms
    (e.g. the ``none`` op, whose Lipschitz constant is 0) contribute nothing. At least one term
    per reduced slice must be kept. Returns ``(m, s^2)`` with ``dim`` reduced.
    """
    mean, var = torch.broadcast_tensors(mean, var)
    half = mean + 0.5 * var
    if mask is not None:
        mask = mask.expand_as(half)
        half = half.masked_fill(~mask, float("-inf"))
        var = var.masked_fill(~mask, 0.0)
    log_a = torch.logsumexp(half, dim=dim)
    weights = torch.softmax(half, dim=dim)
    ratio = (weights.square() * torch.expm1(var)).sum(dim=dim)
    s2 = torch.log1p(ratio)
    return log_a - 0.5 * s2, s2


def lognormal_max_constant(mean: Tensor, var: Tensor, log_b: Tensor) -> tuple[Tensor, Tensor]:
    """Log-normal matching the first two moments of ``max(X, b)``, ``X ~ LN(mean, var)``.

    With ``L = ln b``, ``s = sqrt(var)`` and ``Phi`` the normal CDF:
    ``E[max] = b Phi((L - m)/s) + e^(m + v/2) Phi((m + v - L)/s)`` and
    ``E[max^2] = b^2 Phi((L - m)/s) + e^(2m + 2v) Phi((m + 2v - L)/s)``. ``log_b = -inf`` (no
    floor) returns the input; ``var -> 0`` tends to ``max(e^m, b)``.
    """
    floor = torch.isfinite(log_b)
    lb = torch.where(floor, log_b, mean.detach() - 1e3)
    s = var.clamp_min(1e-12).sqrt()
    log_below = torch.special.log_ndtr((lb - mean) / s)
    log_m1 = torch.logaddexp(
        lb + log_below, mean + 0.5 * var + torch.special.log_ndtr((mean + var - lb) / s)
    )
    log_m2 = torch.logaddexp(
        2 * lb + log_below, 2 * mean + 2 * var + torch.special.log_ndtr((mean + 2 * var - lb) / s)
    )
    s2 = (log_m2 - 2 * log_m1).clamp_min(0.0)
    m = log_m1 - 0.5 * s2
    return torch.where(floor, m, mean), torch.where(floor, s2, var)


def lognormal_product(mean: Tensor, var: Tensor, dim: int = -1) -> tuple[Tensor, Tensor]:
    """Exact product of independent log-normals: log-means and log-variances add."""
    return mean.sum(dim=dim), var.sum(dim=dim)


def lognormal_quantile(mean: Tensor, var: Tensor, q: float) -> Tensor:
    """The ``q``-quantile of ``LN(mean, var)``: ``exp(mean + Phi^-1(q) * sqrt(var))``."""
    return torch.exp(mean + normal_ppf(q) * var.clamp_min(0).sqrt())


def lognormal_log_quantile(mean: Tensor, var: Tensor, q: float) -> Tensor:
    """Natural log of :func:`lognormal_quantile` (stays finite for huge bounds)."""
    return mean + normal_ppf(q) * var.clamp_min(0).sqrt()


def lognormal_moments(mean: Tensor, var: Tensor) -> tuple[Tensor, Tensor]:
    """Mean and variance of ``LN(mean, var)`` in the linear domain."""
    m = torch.exp(mean + 0.5 * var)
    return m, torch.expm1(var) * m.square()


def normal_ppf(q: float) -> float:
    """``Phi^-1(q)``, the standard normal quantile, for ``0 < q < 1``."""
    if not 0.0 < q < 1.0:
        raise ValueError(f"a probability strictly between 0 and 1 is needed, got {q}")
    return math.sqrt(2.0) * torch.erfinv(torch.tensor(2.0 * q - 1.0, dtype=torch.float64)).item()
