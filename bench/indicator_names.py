"""The names of the indicators of attack failure, in display order (torch-free: the report and
the trust checks read them without loading torch). What each means: :mod:`bench.indicators`."""

from __future__ import annotations

INDICATORS = (
    "silent_success",
    "incomplete_optimization",
    "transfer_failure",
    "unconstrained_failure",
    "unavailable_gradients",
    "unstable_predictions",
)
