"""Display names of what the store holds: attacks, read from a result row or an attack key, and
the indicators of attack failure in display order (torch-free: the run summary, the trust checks
and the report use them without loading torch). What each indicator means:
:mod:`bench.trust.indicators`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# in an attack key: the EoT count option (``pgd20(eot=10)``) and early-stopping PGD
EOT_KEY = re.compile(r"[(,]eot=(\d+)")
ANY_ITERATE_KEY = "best_iterate=1"

INDICATORS = (
    "silent_success",
    "incomplete_optimization",
    "transfer_failure",
    "unconstrained_failure",
    "unavailable_gradients",
    "unstable_predictions",
)


def capped_iterations(text: str) -> int | None:
    """The iteration cap of an AutoAttack key or attack text (``iters=N``: the rehearsal's
    capped run, never a standard AutoAttack), or None."""
    capped = re.search(r"iters=(\d+)", text)
    return None if capped is None else int(capped.group(1))


def members_label(key: str) -> str:
    """The label of an autoattack key: ``AutoAttack``, ``AutoAttack (rand, EoT 20)``,
    ``AutoAttack(APGD-CE+APGD-T)``, or
    ``APGD-CE+APGD-T after PGD-20`` for the gap check's run on a PGD cell's survivors."""
    capped = capped_iterations(key)
    if capped is not None:  # the rehearsal's capped run: never to be read as AutoAttack
        return f"AutoAttack(capped at {capped} iterations)"
    if "version='rand'" in key:  # APGD-CE + APGD-DLR, each gradient a mean of 20 samples
        return "AutoAttack (rand, EoT 20)"
    members = re.search(r"attacks='([^']*)'", key)
    if members is None:
        return "AutoAttack"
    names = members.group(1).upper().replace(",", "+")
    after = re.search(r"after='pgd\([^']*?steps=(\d+)", key)
    return f"{names} after PGD-{after.group(1)}" if after else f"AutoAttack({names})"


def attack_name(row: Mapping[str, Any]) -> str:
    """``PGD-20``, ``FGSM``, ``AutoAttack(APGD-CE+APGD-T)`` (an indicator row has its label)."""
    if row.get("label"):
        return str(row["label"])
    attack = str(row.get("attack") or "clean")
    if attack == "autoattack":
        return members_label(str(row.get("attack_key") or ""))
    name = {"fgsm": "FGSM", "pgd": "PGD", "mim": "MIM"}.get(attack, attack)
    if attack in ("pgd", "mim") and row.get("steps"):
        name = f"{name}-{row['steps']}"
    key = str(row.get("attack_key") or "")
    eot = EOT_KEY.search(key)
    name = f"{name}-EoT{eot.group(1)}" if eot else name  # pgd20(eot=10): PGD-20-EoT10
    any_iterate = ANY_ITERATE_KEY in key
    return f"{name}-any" if any_iterate else name  # pgd(best_iterate=True): PGD-20-any


def uses_eot(key: str) -> bool:
    """Whether an attack key averages gradient samples (``eot=N``, AutoAttack's rand version,
    torchattacks' EOTPGD): the attacks a randomized model's evaluation needs."""
    return bool(EOT_KEY.search(key)) or "version='rand'" in key or "EOTPGD" in key
