"""The bound check: ``op_bound`` (both modes) against exact dense norms on the zoo's op shapes.

``python -m racl_search.bound_check [--threads 1]`` builds every op of :data:`models.OPS` at
the shapes the demo zoo's networks give it (8 channels x 28 x 28, 16 x 14 x 14, 32 x 7 x 7 at
stride 1; 32 x 14 x 14 at stride 2; the demo's 16 x 28 x 28 stride-2 ops are left out: 12544
unknowns make a dense matrix of 1.2 GB), with BatchNorm in eval mode on random running
statistics, and prints a Markdown table. The exact reference is the op as a dense matrix: the
op applied to ``x0 + e_i`` for every basis vector, ``x0`` positive so every leading ReLU is the
identity, minus ``op(x0)``; ``torch.linalg.matrix_norm(ord=2)``. SepConv's two ReLU-separated
blocks are measured separately and multiplied (the composition bound).
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence

import torch
from torch import nn

from models.operations import OPS
from racl_search.lipschitz import op_bound

# (channels, size, stride, ops); None = every op
SHAPES: tuple[tuple[int, int, int, tuple[str, ...] | None], ...] = (
    (16, 14, 1, None),
    (32, 7, 1, None),
    (32, 14, 2, None),
    (8, 28, 1, ("sep_conv_3x3", "dil_conv_3x3", "avg_pool_3x3", "max_pool_3x3")),
)


def dense_norm(op: nn.Module, shape: tuple[int, ...], chunk: int = 512) -> float:
    """``||op||_2`` of an affine-on-positive-inputs op from its dense matrix."""
    x0 = 3.0 + torch.rand(1, *shape, dtype=torch.float64)
    n = math.prod(shape)
    with torch.no_grad():
        base = op(x0).reshape(-1)
        rows = []
        for start in range(0, n, chunk):
            eye = torch.eye(n, dtype=torch.float64)[start : start + chunk].view(-1, *shape)
            rows.append(op(x0 + eye).reshape(len(eye), -1) - base)
        return float(torch.linalg.matrix_norm(torch.cat(rows), ord=2))


def exact(name: str, op: nn.Module, shape: tuple[int, ...]) -> float:
    """The reference constant (docs/SEARCH.md, "Bound check")."""
    if name == "none":
        return 0.0
    if name == "max_pool_3x3":  # nonlinear: a single raised pixel attains the bound
        bump = torch.zeros(1, *shape, dtype=torch.float64)
        bump[0, 0, shape[1] // 2, shape[2] // 2] = 1.0
        return float(op(bump).norm())
    if name.startswith("sep_conv"):
        mid = tuple(op[0](torch.zeros(1, *shape, dtype=torch.float64)).shape[1:])
        return dense_norm(op[0], shape) * dense_norm(op[1], mid)
    return dense_norm(op, shape)


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
    """One row per (shape, op): operator bound, paper bound, exact value, seconds."""
    rows = []
    for channels, size, stride, names in shapes:
        for k, name in enumerate(names or tuple(OPS)):
            op = randomised(name, channels, stride, seed=k)
            shape = (channels, size, size)
            t0 = time.perf_counter()
            bound = op_bound(op, (1, *shape))
            t_bound = time.perf_counter() - t0
            truth = exact(name, op, shape)
            rows.append(dict(op=name, shape=f"{channels}x{size}x{size}", stride=stride,
                             operator=bound, paper=op_bound(op, (1, *shape), mode="paper"),
                             exact=truth, seconds=t_bound))  # fmt: skip
    return rows


def markdown(rows: Sequence[dict]) -> str:
    lines = [
        "| op | input | stride | exact | operator | operator / exact | paper | paper / exact |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ratio = r["operator"] / r["exact"] if r["exact"] else float("nan")
        paper = r["paper"] / r["exact"] if r["exact"] else float("nan")
        lines.append(
            f"| {r['op']} | {r['shape']} | {r['stride']} | {r['exact']:.4f} | {r['operator']:.4f} "
            f"| {ratio:.5f} | {r['paper']:.4f} | {paper:.3f} |"
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
