"""Batch norm folded into the convolution before it, for a frozen eval-mode model.

In eval mode a ``BatchNorm2d`` is the per-channel affine map ``gamma * (z - mean) / sqrt(var +
eps) + beta``; after a ``Conv2d`` it can be folded into that convolution's weight and bias
(``torch.nn.utils.fusion.fuse_conv_bn_eval``), which is the same function up to float rounding
and one elementwise pass less, forward and backward. Inductor's ``freezing`` does the same for
inference under ``no_grad`` only; an attack needs the input gradient, so both attack steps fold
here, on a copy: the eager one (:func:`call`, the suite's gradient attacks) and the compiled one
(:func:`core.compiled.static_forward`, which compiles the copy). Verdicts stay forwards of the
original model; the copy only supplies gradients (docs/decisions/speed.md, "Eager PGD").

Only what is the same function is folded, in one of two ways:

- the zoo's networks (every module a ``torch.nn`` class or one of :mod:`models`, whose forwards
  are pure tensor code: no ``no_grad`` region, no Python randomness, no data-dependent branch)
  are traced with ``torch.fx`` and every convolution whose output feeds only an eval-mode batch
  norm is folded, wherever the pair sits (ResNet's ``bn1(conv1(x))`` included); the identity
  modules are dropped from the graph;
- any other model (a user's own code, which tracing could change: a ``no_grad`` region or a
  Python random draw would be fixed at trace time) folds only a ``Conv2d`` directly followed by a
  ``BatchNorm2d`` inside a container that runs ``nn.Sequential.forward`` unchanged.

Either way the batch norm must be in eval mode with running statistics, and the model may carry
hooks only as plain forward hooks on itself (the pass counter of ``bench.attacks.counting``):
those are not copied but run by :func:`call` on the copy's output, as the model's own call would
run them; a hook anywhere else (or one registered for all modules) leaves the model unfolded.
Anything else is left as it is, so a model with nothing to fold is attacked unchanged. The
Sequential rule assumes the block is called as a whole: a model whose forward calls a sequential
block's children one by one, skipping the block's own forward, would not run the same function.

:func:`folded` keeps one folded copy per model and memory format and makes a new one when any
parameter or buffer of the model has changed since: another tensor, storage or in-place version
counter (an optimizer step, ``load_state_dict``, ``.data = ...``; the entry holds the storages
it was made from, so a freed address cannot come back with other values and the same
signature). Not seen: a write that bypasses the version counter, such as an in-place operation
on ``p.data`` or through a NumPy view; after one, :func:`reset` (or a new model object) is needed.
The copy's parameters never require gradients: an attack takes input gradients only, and the
model's own parameters receive none from it.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import functools
import itertools
import sys
import weakref
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import fx, nn
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
    )


def _top_hooks_only(model: nn.Module) -> bool:
    """Whether the model's only hooks are plain forward hooks on the model itself (run by
    :func:`call` on the copy's output); a hook on any submodule, a pre-hook, a backward hook or
    a hook that takes keyword arguments or always runs leaves the model unfolded."""
    if (
        model._forward_pre_hooks
        or model._backward_hooks
        or model._backward_pre_hooks
        or getattr(model, "_forward_hooks_with_kwargs", None)
        or getattr(model, "_forward_hooks_always_called", None)
    ):
        return False
    return not any(_hooked(m) for m in model.modules() if m is not model)


# the zoo's package, beside this one (core imports nothing of ours: it is found by place)
_ZOO = Path(__file__).resolve().parent.parent / "models"


@functools.cache
def _zoo_class(cls: type) -> bool:
    name = cls.__module__
    if name.split(".", 1)[0] == "torch":
        return True
    source = getattr(sys.modules.get(name), "__file__", None)  # not merely named models.*
    return (
        name.split(".", 1)[0] == "models"
        and bool(source)
        and Path(source).resolve().is_relative_to(_ZOO)
    )


def _zoo_module(module: nn.Module) -> bool:
    """A ``torch.nn`` class or one of the zoo's (:mod:`models`, this suite's own files):
    code this suite can trace."""
    return _zoo_class(type(module))


def _traceable(model: nn.Module) -> bool:
    return all(_zoo_module(m) and not m.training for m in model.modules())


def _set_submodule(root: nn.Module, target: str, module: nn.Module) -> None:
    parent, _, name = target.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, name, module)


def _attributes_read(graph: fx.Graph) -> list[str]:
    """The module attributes (parameters, buffers) a traced forward reads directly."""
    return [str(n.target) for n in graph.nodes if n.op == "get_attr"]


def _fold_traced(model: nn.Module) -> tuple[nn.Module, int]:
    """``model`` traced with ``torch.fx``, every foldable conv -> batch norm pair folded (the
    conv's output used by the batch norm alone, the conv called once, its weights read nowhere
    else in the forward) and identity modules dropped; and how many pairs were folded."""
    graph_module = fx.symbolic_trace(model)
    graph = graph_module.graph
    modules = dict(graph_module.named_modules())
    calls = collections.Counter(n.target for n in graph.nodes if n.op == "call_module")
    read = _attributes_read(graph)
    count = 0
    for node in list(graph.nodes):
        if node.op != "call_module":
            continue
        module = modules[node.target]
        source = node.args[0] if len(node.args) == 1 and not node.kwargs else None
        if type(module) is nn.Identity and isinstance(source, fx.Node):
            node.replace_all_uses_with(source)
            graph.erase_node(node)
            continue
        if not (
            type(module) is nn.BatchNorm2d
            and isinstance(source, fx.Node)
            and source.op == "call_module"
            and len(source.users) == 1
            and calls[source.target] == 1
            and not any(t.startswith(f"{source.target}.") for t in read)  # e.g. conv.weight
            and _foldable(modules[source.target], module)
        ):
            continue
        fused = fuse_conv_bn_eval(modules[source.target], module)
        _set_submodule(graph_module, source.target, fused)
        modules[source.target] = fused
        node.replace_all_uses_with(source)
        graph.erase_node(node)
        count += 1
    graph.eliminate_dead_code()
    graph.lint()
    graph_module.recompile()
    graph_module.delete_all_unused_submodules()
    return graph_module, count


def _fold_sequential(model: nn.Module) -> tuple[nn.Module, int]:
    """Every foldable conv + batch norm pair of a plain ``nn.Sequential`` folded, in place (the
    caller has checked that no submodule carries hooks: :func:`_top_hooks_only`)."""
    count = 0
    for module in list(model.modules()):
        if not _plain_sequential(module):
            continue
        for first, second in itertools.pairwise(list(module._modules)):
            conv, bn = module._modules[first], module._modules[second]
            if conv is None or bn is None or not _foldable(conv, bn):
                continue
            module._modules[first] = fuse_conv_bn_eval(conv, bn)
            module._modules[second] = nn.Identity()
            count += 1
    return model, count


def fold_batchnorm(model: nn.Module) -> tuple[nn.Module, int]:
    """A copy of an eval-mode ``model`` with every foldable conv + batch norm pair folded, and
    how many pairs were folded (0: the copy is the model's function unchanged). The copy's
    parameters do not require gradients and it carries none of the model's own forward hooks
    (:func:`call` runs them); a model with hooks elsewhere is copied unfolded."""
    foldable = _top_hooks_only(model)
    with torch.no_grad(), torch.autocast("cpu", enabled=False):
        hooks = model._forward_hooks
        model._forward_hooks = collections.OrderedDict()  # not copied: call() runs them
        try:
            copy_ = copy.deepcopy(model)
        finally:
            model._forward_hooks = hooks
        if not foldable:  # hooks inside the network: the copy unfolded
            count = 0
        elif _traceable(copy_):
            try:
                copy_, count = _fold_traced(copy_)
            except Exception:  # noqa: BLE001 - not traceable after all: the Sequential rule
                copy_, count = _fold_sequential(copy_)
        else:
            copy_, count = _fold_sequential(copy_)
    for p in copy_.parameters():
        p.requires_grad_(False)
    return copy_, count


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
    if model.training:
        return None
    scope = _FIXED.get(model)
    if scope is not None and channels_last in scope:
        return scope[channels_last]
    if _global_hooks() or not _top_hooks_only(model):
        return None
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


def call(model: nn.Module, x: torch.Tensor, channels_last: bool = False) -> torch.Tensor:
    """``model(x)`` through the folded copy (:func:`folded`) when there is one, the model's own
    forward hooks then run on the copy's output as ``model(x)`` runs them."""
    net = folded(model, channels_last)
    return model(x) if net is model else run_hooks(model, x, net(x))


def run_hooks(model: nn.Module, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """The model's forward hooks on ``out`` (a hook's non-None return replaces the output)."""
    for hook in list(model._forward_hooks.values()):
        result = hook(model, (x,), out)
        if result is not None:
            out = result
    return out


def reset() -> None:
    """Forget every folded copy (tests)."""
    _CACHE.clear()
    _FIXED.clear()
