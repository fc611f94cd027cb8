"""Batch norm folded into the convolution before it, for a frozen eval-mode model.

In eval mode a ``BatchNorm2d`` is the per-channel affine map ``gamma * (z - mean) / sqrt(var +
eps) + beta``; after a ``Conv2d`` it can be folded into that convolution's weight and bias
(``torch.nn.utils.fusion.fuse_conv_bn_eval``), which is the same function up to float rounding
and one elementwise pass less, forward and backward. Inductor's ``freezing`` does the same for
inference under ``no_grad`` only; an attack needs the input gradient, so the compiled attack
step (:func:`core.compiled.static_forward`) folds here, on a copy, before compiling. The eager
attack step keeps the model as it is: it is the reference path that the tests compare with
torchattacks, and the verdicts of both paths are forwards of the original model.

Only what is the same function is folded: a ``Conv2d`` directly followed by a ``BatchNorm2d``
inside a container that runs ``nn.Sequential.forward`` unchanged, the batch norm in eval mode
with running statistics, neither module carrying hooks (nor any hook registered for all
modules). Anything else is left as it is, so a model with nothing to fold is attacked unchanged.
It assumes the block is called as a whole: a model whose forward calls a sequential block's
children one by one, skipping the block's own forward, would not run the same function.

:func:`folded` keeps one folded copy per model and memory format and makes a new one when any
parameter or buffer of the model has changed since: another tensor, storage or in-place version
counter (an optimizer step, ``load_state_dict``, ``.data = ...``; the entry holds the storages
it was made from, so a freed address cannot come back with other values and the same
signature). Not seen: a write that bypasses the version counter, such as an in-place operation
on ``p.data`` or through a NumPy view; after one, :func:`reset` (or a new model object) is needed.
The copy's parameters never require gradients: an eval-mode compiled pass gives input gradients
only, and the model's own parameters receive none from it.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import itertools
import weakref
from collections.abc import Iterator

import torch
from torch import nn
from torch.nn.modules import module as torch_module
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _hooked(module: nn.Module) -> bool:
    return bool(
        module._forward_hooks
        or module._forward_pre_hooks
        or module._backward_hooks
        or module._backward_pre_hooks
    )


def _global_hooks() -> bool:
    """Hooks registered for every module (``nn.modules.module.register_module_*``)."""
    return any(
        getattr(torch_module, name, None)
        for name in (
            "_global_forward_hooks",
            "_global_forward_pre_hooks",
            "_global_backward_hooks",
            "_global_backward_pre_hooks",
        )
    )


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    return (
        type(conv) is nn.Conv2d
        and type(bn) is nn.BatchNorm2d
        and not bn.training
        and bn.running_mean is not None
        and bn.running_var is not None
        and bn.num_features == conv.out_channels
        and not _hooked(conv)
        and not _hooked(bn)
    )


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of an eval-mode ``model`` with every foldable conv + batch norm pair folded, and
    how many pairs were folded (0: the copy is the model's function unchanged). The copy's
    parameters do not require gradients."""
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        model = copy.deepcopy(model)
        count = 0
        for module in list(model.modules()):
            if not _plain_sequential(module) or _hooked(module):
                continue
            for first, second in itertools.pairwise(list(module._modules)):
                conv, bn = module._modules[first], module._modules[second]
                if conv is None or bn is None or not _foldable(conv, bn):
                    continue
                module._modules[first] = fuse_conv_bn_eval(conv, bn)
                module._modules[second] = nn.Identity()
                count += 1
    for p in model.parameters():
        p.requires_grad_(False)
    return model, count


def _tensors(model: nn.Module) -> list[torch.Tensor]:
    return [*model.parameters(), *model.buffers()]


def _signature(tensors: list[torch.Tensor]) -> tuple:
    return tuple((id(t), t.data_ptr(), t._version) for t in tensors)


@dataclasses.dataclass
class _Folded:
    signature: tuple
    module: nn.Module | None  # None: nothing to fold, use the model itself
    storages: list  # the storages the copy was made from (their addresses stay taken)
    extra: dict = dataclasses.field(default_factory=dict)  # a caller's state for this copy


_CACHE: weakref.WeakKeyDictionary[nn.Module, dict[bool, _Folded]] = weakref.WeakKeyDictionary()


_FIXED: weakref.WeakKeyDictionary[nn.Module, dict[bool, _Folded]] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def weights_fixed(model: nn.Module) -> Iterator[None]:
    """While open, the caller holds ``model``'s parameters and buffers fixed (an attack's
    ``frozen_eval``): :func:`folded_entry` checks the weights' signature on its first call in
    the scope only, not on every attack step (a check reads every tensor of the model:
    docs/decisions/speed.md, "`--compile`"). Nested scopes share the outermost one's check."""
    if model in _FIXED:
        yield
        return
    _FIXED[model] = {}
    try:
        yield
    finally:
        _FIXED.pop(model, None)


def folded_entry(model: nn.Module, channels_last: bool = False) -> _Folded | None:
    """The fold cache's entry for an eval-mode ``model`` in this memory format (made or made
    again here), or None in training mode, with a global module hook, or when the model's
    tensors cannot be read. ``entry.module`` is None when there was nothing to fold or the
    model cannot be copied (the model itself is used; the failure is kept, not retried)."""
    if model.training or _global_hooks():
        return None
    scope = _FIXED.get(model)
    if scope is not None and channels_last in scope:
        return scope[channels_last]
    try:
        tensors = _tensors(model)
        signature = _signature(tensors)
    except Exception:  # noqa: BLE001 - sparse, lazy or unusual tensors: attacked as it is
        return None
    entries = _CACHE.get(model)
    if entries is None:
        entries = _CACHE[model] = {}
    entry = entries.get(channels_last)
    if entry is None or entry.signature != signature:
        try:
            copy_, count = fold_batchnorm(model)
        except Exception:  # noqa: BLE001 - a model deepcopy cannot copy is attacked as it is
            copy_, count = None, 0
        if count and channels_last:
            copy_ = copy_.to(memory_format=torch.channels_last)
        storages = [t.untyped_storage() for t in tensors]
        entry = entries[channels_last] = _Folded(signature, copy_ if count else None, storages)
    if scope is not None:
        scope[channels_last] = entry
    return entry


def folded(model: nn.Module, channels_last: bool = False) -> nn.Module:
    """The eval-mode ``model`` with its batch norms folded (one copy per model, memory format
    and weights), or ``model`` itself when it is in training mode, has nothing to fold or
    cannot be copied."""
    entry = folded_entry(model, channels_last)
    return model if entry is None or entry.module is None else entry.module


def reset() -> None:
    """Forget every folded copy (tests)."""
    _CACHE.clear()
    _FIXED.clear()
