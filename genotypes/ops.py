"""Operation vocabularies of the cell search spaces (names only; the modules live in ``models``).

DARTS primitives: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019 (order of
``PRIMITIVES`` in quark0/darts ``cnn/genotypes.py``). NASNet / AmoebaNet need two more ops
(``sep_conv_7x7``, ``conv_7x1_1x7``). RobNet edge codes: Guo et al., "When NAS Meets Robustness",
CVPR 2020 (gmh14/RobNets).
"""

from __future__ import annotations

PRIMITIVES: tuple[str, ...] = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

KNOWN_OPS: tuple[str, ...] = (*PRIMITIVES, "sep_conv_7x7", "conv_7x1_1x7")

ROBNET_OPS: dict[str, str] = {
    "00": "zero",
    "01": "sep_conv_3x3",
    "10": "identity",
    "11": "res_sep_conv_3x3",
}

# A RobNet cell has 4 intermediate nodes; node i reads every earlier state: 2 + 3 + 4 + 5 edges.
ROBNET_NODES = 4
ROBNET_EDGES = sum(2 + i for i in range(ROBNET_NODES))
