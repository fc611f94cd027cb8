"""Whether a number can be trusted: checks over stored rows, paired exact tests, attack-failure
indicators.

The checks and tests are torch-free (the report reads them); the indicators, which run attacks,
load torch only when first asked for (``bench.trust.cell_indicators``).
"""

from typing import Any

from bench.trust.exact_tests import ALPHA, Paired, binomial_tail, mcnemar_greater, paired
from bench.trust.paired_checks import unconstrained_counts
from bench.trust.row_checks import TrustResult, run_checks

_INDICATOR_NAMES = ("REVISION", "cell_indicators", "still_rising")

__all__ = [
    "ALPHA",
    "Paired",
    "TrustResult",
    "binomial_tail",
    "mcnemar_greater",
    "paired",
    "run_checks",
    "unconstrained_counts",
    *_INDICATOR_NAMES,
]


def __getattr__(name: str) -> Any:
    if name in _INDICATOR_NAMES:
        from bench.trust import indicators

        return getattr(indicators, name)
    raise AttributeError(f"module 'bench.trust' has no attribute {name!r}")
