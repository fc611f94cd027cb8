"""The ``randomized_forward`` trust check: a model whose eval-mode forward is random needs an
attack that averages its gradient over the randomness (EoT).

Athalye, Carlini and Wagner ("Obfuscated Gradients Give a False Sense of Security", ICML 2018,
section 4.3) show that a randomized defence evaluated with one gradient sample per step
overstates its robustness; Expectation over Transformation averages the gradient over samples.
Every white-box cell's indicator row records ``random_forward``: on how many of its images five
repeated eval-mode forwards differ (:func:`bench.trust.indicators.random_forward`, AutoAttack's
own randomness check). A checkpoint with any such image fails this check unless an EoT attack
(``pgd20(eot=10)``, ``autoattack(version='rand')``, ``torchattacks:EOTPGD``) ran on it; a
deterministic one passes. Torch-free: the report runs it over stored rows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.results.names import attack_name, uses_eot

Row = Mapping[str, Any]
Outcome = tuple[int, list[str], str]
HINT = "run an EoT attack: pgd20(eot=10) or autoattack(version='rand')"


def randomized_forward(rows: list[Row], indicators: list[Row]) -> Outcome:
    """Fails a checkpoint whose forward is random on some image unless an EoT attack ran."""
    probed = [ind["counts"]["random_forward"] for ind in indicators if _probed(ind)]
    if not probed:
        return 0, [], ""
    worst = max(probed, key=lambda v: (int(v[0]), int(v[1])))
    hit, seen = int(worst[0]), int(worst[1])
    if hit == 0:
        return 1, [], f"deterministic: 5 eval forwards agree on {seen} image(s)"
    eot = sorted({attack_name(r) for r in rows if uses_eot(str(r.get("attack_key") or ""))})
    found = f"the eval forward is random on {hit}/{seen} images"
    if eot:
        return 1, [], f"{found}; EoT attack(s) ran: {', '.join(eot)}"
    return 1, [f"{found} and no EoT attack ran: plain white-box cells overstate it; {HINT}"], ""


def _probed(ind: Row) -> bool:
    value = (ind.get("counts") or {}).get("random_forward")
    return bool(value) and int(value[1]) > 0


def random_checkpoints(indicators: list[Row]) -> set[str]:
    """Checkpoints whose indicator rows saw a random forward (their plain cells are marked)."""
    return {
        str(ind.get("checkpoint"))
        for ind in indicators
        if _probed(ind) and int(ind["counts"]["random_forward"][0]) > 0
    }
