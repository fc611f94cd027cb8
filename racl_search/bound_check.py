"""The bound check: ``op_bound`` against an independent lower bound, for every op.

``python -m racl_search.bound_check [--threads 1]`` builds every op of :data:`models.OPS` at
the shapes the demo zoo's networks give it (8 channels x 28 x 28, 16 x 14 x 14, 32 x 7 x 7 at
stride 1; 32 x 14 x 14 at stride 2), with BatchNorm in eval mode on random running statistics
and affine parameters, and prints a Markdown table.

The reference is a lower bound computed without the bound's machinery: the largest spectral
norm of the op's Jacobian over many inputs (:func:`jacobian_lower_bound`: power iteration with
forward- and reverse-mode autograd, ``J^T J v``), each input fixing one pattern of ReLUs and
max-pool winners. A positive input makes every leading ReLU the identity; Gaussian inputs of
several scales give other patterns; for max pool a single raised pixel wins every window it
lies in. Every Lipschitz constant lies at or above this value; for an op that is one linear
block between ReLUs it is attained, so ``operator / lower bound`` is the bound's slack. For
SepConv (two blocks) the ratio also holds what the composition ``||L2|| ||L1||`` gives away.
"""

from __future__ import annotations

import argparse
import copy
import time
from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

from models.operations import OPS
from racl_search.lipschitz import op_bound

# (channels, size, stride, ops); None = every op
SHAPES: tuple[tuple[int, int, int, tuple[str, ...] | None], ...] = (
    (16, 14, 1, None),
    (32, 7, 1, None),
    (32, 14, 2, None),
    (8, 28, 1, ("sep_conv_3x3", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3")),
)
ITERS = 100  # power iterations per input
N_RANDOM = 8  # Gaussian inputs per op, besides the positive one and the raised pixel


def jacobian_norm(f: Callable[[Tensor], Tensor], x: Tensor, iters: int = ITERS,
                  seed: int = 0) -> float:  # fmt: skip
    """``||J_f(x)||_2`` from below: power iteration on ``J^T J`` (forward and reverse mode)."""
    gen = torch.Generator().manual_seed(seed)
    v = torch.randn(x.shape, generator=gen, dtype=x.dtype)
    v = v / v.norm()
    sigma = 0.0
    _, pullback = torch.func.vjp(f, x)
    for _ in range(iters):
        _, jv = torch.func.jvp(f, (x,), (v,))
        sigma = float(jv.detach().norm())
        if sigma == 0.0:
            return 0.0
        (back,) = pullback(jv)
        v = back / back.norm().clamp_min(1e-300)
    return sigma


def probe_inputs(shape: tuple[int, ...], seed: int = 0) -> list[Tensor]:
    """Inputs that fix different ReLU and max-pool patterns (see the module docstring)."""
    gen = torch.Generator().manual_seed(seed)
    inputs = [3.0 + torch.rand(shape, generator=gen, dtype=torch.float64)]
    bump = torch.zeros(shape, dtype=torch.float64)
    bump[..., shape[-2] // 2, shape[-1] // 2] = 1.0
    inputs.append(bump)
    for k in range(N_RANDOM):
        scale = (0.1, 1.0, 10.0)[k % 3]
        inputs.append(scale * torch.randn(shape, generator=gen, dtype=torch.float64))
    return inputs


def jacobian_lower_bound(op: nn.Module, inputs: Sequence[Tensor], iters: int = ITERS) -> float:
    """The largest Jacobian norm of ``op`` over ``inputs`` (a lower bound of its constant)."""
    return max(jacobian_norm(op, x, iters, seed=k) for k, x in enumerate(inputs))


def stateless(op: nn.Module) -> nn.Module:
    """A copy of a train-mode op whose BatchNorms normalise by the batch and update nothing:
    the map the search applies to a batch, statistics included, as a pure function."""
    clone = copy.deepcopy(op).train()
    for m in clone.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean, m.running_var, m.track_running_stats = None, None, False
    return clone


def randomised(name: str, channels: int, stride: int, seed: int) -> nn.Module:
    """The zoo's op (affine, eval mode) with random BatchNorm statistics and parameters."""
    torch.manual_seed(seed)
    op = OPS[name](channels, stride, True).double().eval()
    with torch.no_grad():
        for m in op.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.normal_()
                m.running_var.uniform_(0.2, 3.0)
                m.weight.normal_()
                m.bias.normal_()
    return op


def check(shapes: Sequence[tuple] = SHAPES) -> list[dict]:
    """One row per (shape, op): operator bound, paper bound, lower bound, seconds."""
    rows = []
    for channels, size, stride, names in shapes:
        for k, name in enumerate(names or tuple(OPS)):
            op = randomised(name, channels, stride, seed=k)
            shape = (channels, size, size)
            t0 = time.perf_counter()
            bound = op_bound(op, (1, *shape))
            t_bound = time.perf_counter() - t0
            with torch.no_grad():
                lower = jacobian_lower_bound(op, probe_inputs((1, *shape), seed=k))
            rows.append(dict(op=name, shape=f"{channels}x{size}x{size}", stride=stride,
                             operator=bound, paper=op_bound(op, (1, *shape), mode="paper"),
                             lower=lower, seconds=t_bound))  # fmt: skip
    return rows


def markdown(rows: Sequence[dict]) -> str:
    lines = [
        "| op | input | stride | lower bound | operator | operator / lower | paper "
        "| paper / lower |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["operator"] / r["lower"] if r["lower"] else float("nan")
        paper = r["paper"] / r["lower"] if r["lower"] else float("nan")
        lines.append(
            f"| {r['op']} | {r['shape']} | {r['stride']} | {r['lower']:.4f} | {r['operator']:.4f} "
            f"| {ratio:.4f} | {r['paper']:.4f} | {paper:.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m racl_search.bound_check")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (default 1)")
    args = parser.parse_args(argv)
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    rows = check()
    print(markdown(rows))
    print(f"\n{len(rows)} ops checked in {time.perf_counter() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
