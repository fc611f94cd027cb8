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
with running statistics, neither module carrying hooks. Anything else is left as it is, so a
model with nothing to fold is attacked unchanged.

:func:`folded` keeps one folded copy per model (weakly) and makes a new one when any parameter
or buffer of the model has changed since (its tensor, storage or in-place version counter), so
a model trained or reloaded between attacks is never attacked through stale weights.
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import weakref

from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval


def _plain_sequential(module: nn.Module) -> bool:
    return isinstance(module, nn.Sequential) and type(module).forward is nn.Sequential.forward


def _hooked(module: nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


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
    how many pairs were folded (0: the copy is the model's function unchanged)."""
    model = copy.deepcopy(model)
    count = 0
    for module in list(model.modules()):
        if not _plain_sequential(module) or _hooked(module):
            continue
        names = list(module._modules)
        for first, second in itertools.pairwise(names):
            conv, bn = module._modules[first], module._modules[second]
            if conv is None or bn is None or not _foldable(conv, bn):
                continue
            fused = fuse_conv_bn_eval(conv, bn)
            fused.weight.requires_grad_(conv.weight.requires_grad)
            if fused.bias is not None:
                fused.bias.requires_grad_(conv.weight.requires_grad)
            module._modules[first] = fused
            module._modules[second] = nn.Identity()
            count += 1
    return model, count


def _signature(model: nn.Module) -> tuple:
    tensors = itertools.chain(model.parameters(), model.buffers())
    return tuple((id(t), t.data_ptr(), t._version) for t in tensors)


@dataclasses.dataclass
class _Folded:
    signature: tuple
    module: nn.Module


_CACHE: weakref.WeakKeyDictionary[nn.Module, _Folded] = weakref.WeakKeyDictionary()


def folded(model: nn.Module) -> nn.Module:
    """The eval-mode ``model`` with its batch norms folded (one copy per model and weights), or
    ``model`` itself when it is in training mode, has nothing to fold or cannot be copied."""
    if model.training:
        return model
    signature = _signature(model)
    entry = _CACHE.get(model)
    if entry is None or entry.signature != signature:
        try:
            copy_, count = fold_batchnorm(model)
        except Exception:  # noqa: BLE001 - a model deepcopy cannot copy is attacked as it is
            copy_, count = model, 0
        entry = _Folded(signature, copy_ if count else model)
        _CACHE[model] = entry
    return entry.module


def reset() -> None:
    """Forget every folded copy (tests)."""
    _CACHE.clear()
