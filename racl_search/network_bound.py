"""An upper bound of a genotype network's L2 Lipschitz constant, input image to logits.

Composed from operator-mode op bounds (:func:`racl_search.lipschitz.op_bound`, eval mode): the
input normalisation and the stem as one linear block; per cell the two preprocessing ops, each
node ``L_j <= sum_(its two ops) lambda_op * L_input`` over the cell's DAG (the triangle
inequality), the cell output (a channel concat) ``sqrt(sum_j L_j^2)``; global average pooling
and the classifier as one linear block. All in logs (the bounds of deep nets overflow floats).
Unlike the paper's Eq. 10 (a product over nodes), this follows the DAG and is a valid bound.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from models.genotype_network import GenotypeCell, GenotypeNetwork
from racl_search.lipschitz import log_chain_bound
from racl_search.op_pieces import FlattenPiece, pieces


def log_network_bound(model: GenotypeNetwork, input_shape: tuple[int, ...]) -> float:
    """``ln`` of an upper bound of ``model``'s Lipschitz constant on ``(N, C, H, W)`` inputs."""
    if not isinstance(model, GenotypeNetwork):
        raise ValueError(f"log_network_bound needs a GenotypeNetwork, got {type(model).__name__}")
    shape = (1, *tuple(input_shape)[1:])
    probe = torch.zeros(shape)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            front = pieces(model.normalize) + pieces(model.stem)
            log_s = log_chain_bound(front, shape)
            s0 = s1 = model.stem(model.normalize(probe))
            log0 = log1 = log_s
            for cell in model.cells:
                out, log_out = _cell(cell, s0, s1, log0, log1)
                s0, log0, s1, log1 = s1, log1, out, log_out
            head = pieces(model.global_pooling) + [FlattenPiece()] + pieces(model.classifier)
            return log1 + log_chain_bound(head, tuple(s1.shape))
    finally:
        model.train(was_training)


def _cell(cell: GenotypeCell, s0, s1, log0: float, log1: float) -> tuple[torch.Tensor, float]:
    """The cell's output for the probe and the log bound of its map from the image."""
    states = [cell.preprocess0(s0), cell.preprocess1(s1)]
    logs = [
        log0 + _log_op(cell.preprocess0, s0.shape),
        log1 + _log_op(cell.preprocess1, s1.shape),
    ]
    for node in range(len(cell.ops) // 2):
        terms, total = [], None
        for position in (2 * node, 2 * node + 1):
            op, index = cell.ops[position], cell.indices[position]
            terms.append(logs[index] + _log_op(op, states[index].shape))
            h = op(states[index])
            total = h if total is None else total + h
        states.append(total)
        logs.append(_logsumexp(terms))
    out = torch.cat([states[i] for i in cell.concat], dim=1)
    return out, 0.5 * _logsumexp([2.0 * logs[i] for i in cell.concat])


def _log_op(op: nn.Module, shape: torch.Size) -> float:
    return log_chain_bound(pieces(op), (1, *tuple(shape)[1:]))


def _logsumexp(values: list[float]) -> float:
    top = max(values)
    if top == float("-inf"):
        return top
    return top + math.log(sum(math.exp(v - top) for v in values))
