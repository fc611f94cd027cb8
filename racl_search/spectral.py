"""Largest singular values: batched power iteration (search time) and Lanczos (exact checks).

Power iteration with persistent vectors, one step per call, is the spectral-norm practice of
Miyato et al. (ICLR 2018, ``torch.nn.utils.parametrizations.spectral_norm``): an estimate from
below that tightens as the vectors are reused. :func:`lanczos_norm` runs the Lanczos method with
full reorthogonalisation on ``L^T L`` in float64 until the top Ritz value is stable; the Ritz
value never exceeds the true top eigenvalue (Cauchy interlacing), so a small safety factor
turns it into an upper bound. The tolerances and why they suffice: docs/SEARCH.md.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

LANCZOS_MAX_ITERS = 300
LANCZOS_RTOL = 1e-10  # relative change of the top Ritz value over LANCZOS_WINDOW iterations
LANCZOS_WINDOW = 5


@torch.no_grad()
def power_iteration(matrices: Tensor, u: Tensor, iters: int = 1) -> tuple[Tensor, Tensor]:
    """Batched power iteration: ``matrices (G, m, n)``, left vectors ``u (G, m)``.

    Returns the largest singular value estimates ``(G,)`` and the updated unit vectors ``u``.
    """
    for _ in range(max(1, iters)):
        v = F.normalize(torch.bmm(matrices.transpose(1, 2), u.unsqueeze(-1)).squeeze(-1), dim=1)
        wv = torch.bmm(matrices, v.unsqueeze(-1)).squeeze(-1)
        u = F.normalize(wv, dim=1)
    return (u * wv).sum(dim=1), u


def gram_operator(linear: Callable[[Tensor], Tensor], shape: tuple[int, ...]) -> Callable:
    """``v -> L^T L v`` for a linear map ``L`` on tensors of ``shape`` (adjoint by autograd).

    The vector-Jacobian product of a linear map is its adjoint: for a convolution it is the
    transposed convolution with the output padding that restores ``shape``.
    """

    def apply(flat: Tensor) -> Tensor:
        with torch.enable_grad():
            v = flat.detach().view(shape).requires_grad_(True)
            out = linear(v)
            (back,) = torch.autograd.grad(out, v, out)
        return back.reshape(-1).detach()

    return apply


def lanczos_norm(
    linear: Callable[[Tensor], Tensor],
    shape: tuple[int, ...],
    *,
    max_iters: int = LANCZOS_MAX_ITERS,
    rtol: float = LANCZOS_RTOL,
    seed: int = 0,
) -> float:
    """``||L||_2`` of a linear map on float64 tensors of ``shape`` (Lanczos on ``L^T L``).

    Stops when the Krylov space is exhausted (then the value is exact up to rounding) or when the
    top Ritz value changed by less than ``rtol`` (relative) over the last few iterations.
    """
    apply = gram_operator(linear, shape)
    n = 1
    for size in shape:
        n *= int(size)
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(n, dtype=torch.float64, generator=gen)
    basis = [q / q.norm()]
    diag: list[Tensor] = []
    off: list[Tensor] = []
    history: list[float] = []
    for _ in range(min(max_iters, n)):
        w = apply(basis[-1])
        diag.append(torch.dot(w, basis[-1]))
        q_mat = torch.stack(basis)
        for _ in range(2):  # full reorthogonalisation, twice is enough
            w = w - q_mat.T @ (q_mat @ w)
        history.append(_top_ritz(diag, off))
        scale = max(abs(history[-1]), 1e-300)
        window = history[-1 - LANCZOS_WINDOW] if len(history) > LANCZOS_WINDOW else None
        if window is not None and abs(history[-1] - window) <= rtol * scale:
            break
        beta = w.norm()
        if float(beta) <= 1e-12 * scale:  # invariant subspace: the Ritz values are exact
            break
        off.append(beta)
        basis.append(w / beta)
    return max(history[-1], 0.0) ** 0.5


def _top_ritz(diag: list[Tensor], off: list[Tensor]) -> float:
    """Largest eigenvalue of the Lanczos tridiagonal matrix."""
    t = torch.diag(torch.stack(diag))
    if off:
        b = torch.stack(off[: len(diag) - 1])
        t = t + torch.diag(b, 1) + torch.diag(b, -1)
    return float(torch.linalg.eigvalsh(t)[-1])
