"""When ``bench run`` compiles (``--compile auto|on|off``): the rule per architecture and the
attack options it sets; the compiling itself is :mod:`core.compiled` (docs/decisions/speed.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

# The CPU side of the ``auto`` rule: a cell network's compiled/eager attack step and one
# architecture's first compile, from the figures in docs/decisions/speed.md, "The `auto` rule".
CPU_SPEEDUP = 1.3  # cell networks, compiled + channels_last over eager folded + channels_last
CPU_COMPILE_S = 70.0  # the slowest first compile on an idle CPU (its checkpoints share the graph)
# eager forward-equivalents per second of that attack step at two threads (image-steps/s x 3):
# a floor under the planner's estimate, whose forward rate misses the input backward
CPU_CELL_PASSES_PER_S = 1350.0


def worth_compiling(
    device: str | torch.device, compile_on_cuda: bool, eval_s: float, cell: bool = True
) -> bool:
    """The ``--compile auto`` rule for one architecture: on CUDA where the preset says so
    (``PresetConfig.compile_on_cuda``: the paper preset); on a CPU
    only for a cell network (DARTS-space: overhead-bound, so compiling pays most) whose estimated
    attack time saved, ``eval_s * (1 - 1/CPU_SPEEDUP)``, exceeds one compile, ``CPU_COMPILE_S``.
    Plain CNNs stay eager on a CPU: their compile does not repay at CPU sizes
    (docs/decisions/speed.md, "The `auto` rule")."""
    if torch.device(device).type == "cuda":
        return compile_on_cuda
    return cell and eval_s * (1.0 - 1.0 / CPU_SPEEDUP) > CPU_COMPILE_S


def eval_seconds_by_architecture(plan: Any) -> dict[tuple, float]:
    """The plan's estimated seconds of missing attack work per architecture ``(model,
    overrides)``: each cell's cost at the rate of the checkpoint that runs its attack (the
    target of a white-box cell, the source of a transfer generation), at most
    :data:`CPU_CELL_PASSES_PER_S`. Clean cells, forwards only, are left out."""
    from bench.plan.cost import DEFAULT_RATE
    from core.enums import EvalKind

    out: dict[tuple, float] = {}
    for cell in plan.missing:
        ref = plan.refs.get(cell.group.checkpoint)
        if ref is None or cell.kind is EvalKind.CLEAN:
            continue
        arch = (ref.model, ref.overrides)
        rate = min(plan.rates.get(cell.group.checkpoint, DEFAULT_RATE), CPU_CELL_PASSES_PER_S)
        out[arch] = out.get(arch, 0.0) + cell.cost / rate
    return out


def _zoo_info(name: str) -> Any | None:
    """The zoo's entry for ``name``, None when the zoo has none (a Table 5 variant before its
    search)."""
    from core.errors import UserError
    from models import get_model_info

    try:
        return get_model_info(name)
    except UserError:
        return None


def is_cell_network(ref: Any) -> bool:
    """Whether a plan's model is a DARTS-space cell network (a zoo model built from a
    genotype with ``init_channels``); a user's own model is not, nor a name the zoo lacks (a
    searched Table 5 variant: treated as a plain network)."""
    if getattr(ref, "factory", None) is not None:
        return False
    info = _zoo_info(ref.model)
    return info is not None and "init_channels" in info.defaults


def run_options(compile_flag: str, amp: str, plan: Any, device: str) -> dict[str, Any]:
    """The attack options of ``bench run --compile/--amp`` for ``plan`` (a :class:`Plan`).

    ``--compile on`` compiles every model's attack steps and training steps, ``off`` none.
    ``auto`` decides per architecture (:func:`worth_compiling` on its share of the plan's
    estimate, :func:`eval_seconds_by_architecture`): ``compile_checkpoints`` names the
    checkpoints whose attacks compile (:func:`options_for` reads it); training steps compile
    under auto only on CUDA. ``--amp bf16`` runs attack generation under bf16 autocast
    (verdicts stay float32)."""
    from core import distributed

    dev = distributed.resolve_device(device)
    on = compile_flag == "on"
    options: dict[str, Any] = {"compile": on, "train_compile": on}
    if compile_flag == "auto":
        by_arch = eval_seconds_by_architecture(plan)
        cells = {(r.model, r.overrides) for r in plan.refs.values() if is_cell_network(r)}
        on_cuda = plan.preset.compile_on_cuda
        chosen = {a for a, s in by_arch.items() if worth_compiling(dev, on_cuda, s, a in cells)}
        options["compile_checkpoints"] = frozenset(
            h for h, ref in plan.refs.items() if (ref.model, ref.overrides) in chosen
        )
        options["compile"] = bool(options["compile_checkpoints"])
        # train-mode graphs with weight gradients are a second compile per architecture that
        # the CPU presets' short training does not repay: auto compiles training on CUDA only
        options["train_compile"] = options["compile"] and dev.type == "cuda"
    if dev.type == "cpu":  # zoo networks whose batch norms fold: channels_last, eager or not
        options["channels_last_checkpoints"] = frozenset(
            h for h, ref in plan.refs.items() if channels_last_on_cpu(ref)
        )
    if amp == "bf16":
        options["amp_dtype"] = torch.bfloat16
    return options


def options_for(options: Mapping[str, Any], checkpoint: str) -> Mapping[str, Any]:
    """``options`` for the attacks run on ``checkpoint``: ``compile`` is its own where
    ``compile_checkpoints`` (``--compile auto``) names the ones that compile, and a checkpoint
    in ``channels_last_checkpoints`` (a zoo network on a CPU: :func:`channels_last_on_cpu`)
    runs channels_last, compiled or eager (docs/decisions/speed.md, "channels_last on a CPU")."""
    chosen = options.get("compile_checkpoints")
    out = options if chosen is None else {**options, "compile": checkpoint in chosen}
    if checkpoint in options.get("channels_last_checkpoints", ()):
        return {**out, "channels_last": True}
    return out


# zoo families whose attack steps measured faster channels_last on a CPU (the batch-norm-folded
# copy carries the layout; docs/decisions/speed.md, "channels_last on a CPU"); DenseNet (batch
# norm before each convolution, nothing folds) was not measured and stays as it is
CHANNELS_LAST_FAMILIES = ("darts-cell", "robnet", "resnet", "vgg")


def channels_last_on_cpu(ref: Any) -> bool:
    """Whether a plan's checkpoint runs its attacks channels_last on a CPU: a zoo model of
    :data:`CHANNELS_LAST_FAMILIES`, or a name the zoo lacks (a searched Table 5 variant: a cell
    network built from its genotype); never a user's own model (its layout is its own)."""
    if getattr(ref, "factory", None) is not None:
        return False
    info = _zoo_info(ref.model)
    return info is None or info.family in CHANNELS_LAST_FAMILIES


def steps_compile(flag: str, device: str) -> bool:
    """``bench train --compile``: on, off, or auto (on where the device is CUDA: a CPU's short
    trainings do not repay a train-mode compile)."""
    from core import distributed

    if flag == "auto":
        return distributed.resolve_device(device).type == "cuda"
    return flag == "on"


def search_compile(flag: str, device: str, compile_on_cuda: bool) -> bool:
    """``bench search --compile``: on, off, or auto (on CUDA where the search preset says so,
    ``racl_search.config.COMPILE_ON_CUDA``: the paper preset, whose
    hours of training steps repay the mixed ops' compiles; off on a CPU, where they do not:
    docs/decisions/speed.md, the ``bench search --compile`` item)."""
    from core import distributed

    if flag == "auto":
        return compile_on_cuda and distributed.resolve_device(device).type == "cuda"
    return flag == "on"


def describe_compile(options: Mapping[str, Any], plan: Any) -> str | None:
    """The log line saying what ``options`` compile in ``plan`` (None when nothing compiles)."""
    if not options.get("compile") and not options.get("train_compile"):
        return None
    chosen = options.get("compile_checkpoints")
    if not options.get("compile"):
        attacks = "none"
    elif chosen is None:
        attacks = "every model"
    else:
        attacks = ", ".join(sorted({plan.refs[h].model for h in chosen if h in plan.refs}))
    training = "compiled" if options.get("train_compile") else "eager"
    return f"torch.compile: attack steps of {attacks}; training steps {training}"
