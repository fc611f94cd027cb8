"""The search's string options that reports and the CLI read without importing torch."""

from __future__ import annotations

from core.enums import StrEnum


class BoundMode(StrEnum):
    """How per-op Lipschitz constants are read (docs/SEARCH.md, "Per-op constants").

    ``operator``: each op's L2 Lipschitz constant as an operator on its real input shape
    (BatchNorm folded in, pools by their true constants, PC-DARTS bypass channels included).
    ``paper``: the paper's reading (Sec. 2.2): spectral norms of reshaped weights, max pool 1,
    average pool ``S ** -0.5``, BatchNorm and bypass left out.
    """

    OPERATOR = "operator"
    PAPER = "paper"


class Penalty(StrEnum):
    """The augmented-Lagrangian term of the constraint ``c <= 0``.

    ``phr``: Powell-Hestenes-Rockafellar, ``(max(0, theta + rho c)^2 - theta^2) / (2 rho)``, an
    inequality: no pull once ``c < -theta / rho``. ``paper``: Eq. 17 as written,
    ``theta c + rho / 2 c^2``, which also pulls a feasible ``c < 0`` back up to 0.
    """

    PHR = "phr"
    PAPER = "paper"


class Target(StrEnum):
    """Where ``ln lambda*`` comes from when ``--log-lipschitz-target`` is not given.

    ``relative``: the starting architecture's log-mean bound under the current per-op
    constants, recomputed every step: the constraint compares architectures, not weights (which
    the architecture step holds fixed). ``start``: the network's log-mean bound at the first
    architecture step, then frozen (weight training alone can violate it).
    """

    RELATIVE = "relative"
    START = "start"


class Confidence(StrEnum):
    """How ``P[lambda_F <= lambda*] >= eta`` becomes the constraint ``c <= 0``.

    ``exact``: the log-normal quantile, ``c = mu + Phi^-1(eta) sigma - ln lambda*``, with the
    variance of the sampling the search does (one sample per cell type, shared by every cell of
    that type: a node's log factors over those cells are summed as fully correlated, which
    bounds the variance of their sum from above). ``paper``: Eq. 16-17 as written, the
    convexified ``mu + Phi^-1(eta) sigma^2 - ln lambda*`` with the cells' variances summed as if
    independent; looser than the quantile whenever ``sigma < 1`` (docs/SEARCH.md, D8).
    """

    EXACT = "exact"
    PAPER = "paper"
