"""What the search log reports about the bound at an epoch's end, without changing the search."""

from __future__ import annotations

import torch
from torch import Tensor

from core.enums import SearchMethod
from racl_search.admm import ArchitectureStep


def constants_now(step: ArchitectureStep) -> Tensor:
    """The per-op constants of the last architecture step (its batch statistics); before the
    first one (warm-up, PC-DARTS) a reading that leaves the estimator's warm-start vectors as
    they were, so logging never changes the search."""
    if step.log_lambda is not None:
        return step.log_lambda
    estimator = step.net.lipschitz
    kept = {k: v.clone() for k, v in estimator.state_dict().items()}
    try:
        return step.net.log_lipschitz()
    finally:
        estimator.load_state_dict(kept)


@torch.no_grad()
def bound_stats(step: ArchitectureStep, eta: float) -> dict[str, float]:
    """The network bound now: ``c``, ``theta``, log median and log eta-quantile."""
    log_lambda = constants_now(step)
    bound = step.read(log_lambda)
    state = step.state
    row = {
        "theta": state.theta,
        "log_bound_mu": float(bound.mu),
        "log_bound_var": float(bound.var),
        "log_bound_median": bound.log_quantile(0.5),
        "log_bound_q_eta": bound.log_quantile(eta),
    }
    if state.log_target is not None and step.method is not SearchMethod.PC_DARTS:
        row["c"] = float(step.constraint(log_lambda)[0])
        row["log_target"] = state.log_target
    return row
