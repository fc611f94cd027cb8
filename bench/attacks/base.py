"""The attack base class: one uniform callable per spec, the model bound at call time.

In the spirit of torchattacks' ``Attack.__call__`` (Kim 2020, "Torchattacks: A PyTorch
Repository for Adversarial Attacks"), the base does everything an attack must get right so a
subclass writes only its step: eval mode (restored afterwards), no weight gradients for the
duration (``requires_grad`` restored), the model's device, clamping to [0, 1] and projection onto
the eps ball after every step. Optional speed knobs: ``channels_last`` memory format and
``amp_dtype`` (autocast, e.g. bf16, for the gradient computations; the caller computes the final
verdict in float32). With ``channels_last`` a contiguous model is converted for the call and
converted back afterwards; convert the model once beforehand to skip that (about 1 ms per call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.spec import AttackSpec
from bench.enums import Norm


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a parameterless model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def frozen_eval(model: nn.Module, channels_last: bool = False) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter; both restored on exit."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    restore_format = channels_last and not _is_channels_last(model)
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    if restore_format:
        model.to(memory_format=torch.channels_last)
    try:
        yield
    finally:
        if restore_format:
            model.to(memory_format=torch.contiguous_format)
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _is_channels_last(model: nn.Module) -> bool:
    for p in model.parameters():
        if p.dim() == 4:
            return p.is_contiguous(memory_format=torch.channels_last)
    return True  # nothing to convert


def project(x_adv: Tensor, x: Tensor, eps: float, norm: Norm) -> Tensor:
    """Project ``x_adv`` onto the eps ball around ``x`` (linf or l2), then clamp to [0, 1]."""
    delta = x_adv - x
    if norm is Norm.LINF:
        delta = torch.clamp(delta, min=-eps, max=eps)
    else:
        norms = delta.flatten(1).norm(p=2, dim=1).clamp_min(1e-12)
        delta = delta * (eps / norms).clamp(max=1.0).view(-1, *([1] * (x.dim() - 1)))
    return torch.clamp(x + delta, min=0.0, max=1.0)


class Attack:
    """Base class: ``attack(model, x, y) -> x_adv``; subclasses implement :meth:`step`.

    The generic loop (:meth:`iterate`) starts at ``x`` (or a random point of the ball, or an
    injected ``init_delta``), and for each of ``spec.steps`` steps takes the gradient of the
    cross-entropy with respect to the input, calls :meth:`step`, then projects and clamps.
    """

    def __init__(
        self,
        spec: AttackSpec,
        *,
        channels_last: bool = False,
        amp_dtype: torch.dtype | None = None,
    ) -> None:
        self.spec = spec
        self.channels_last = channels_last
        self.amp_dtype = amp_dtype

    def __repr__(self) -> str:
        return self.spec.key()

    def __call__(
        self, model: nn.Module, x: Tensor, y: Tensor, *, init_delta: Tensor | None = None
    ) -> Tensor:
        """Adversarial images for ``(x, y)`` against ``model`` (on the model's device)."""
        x_adv = None
        for x_adv in self.run(model, x, y, init_delta=init_delta):  # noqa: B007 - keep the last
            pass
        return x_adv

    def run(
        self, model: nn.Module, x: Tensor, y: Tensor, *, init_delta: Tensor | None = None
    ) -> Iterator[Tensor]:
        """Yield the adversarial images after each step (the last one is the attack's output)."""
        device = model_device(model)
        x = x.detach().to(device=device, dtype=torch.float32)
        y = y.detach().to(device=device)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        with frozen_eval(model, self.channels_last):
            for x_adv in self.iterate(model, x, y, init_delta):
                yield x_adv.detach()

    # -- the generic iterative loop; a subclass overrides `step` (or `iterate` for black boxes) --

    def iterate(
        self, model: nn.Module, x: Tensor, y: Tensor, init_delta: Tensor | None
    ) -> Iterator[Tensor]:
        x_adv = self.start(x, init_delta)
        state: dict[str, Tensor] = {}
        for _ in range(self.spec.steps):
            grad = self.input_gradient(model, x_adv, y)
            x_adv = project(self.step(x_adv, grad, state), x, self.spec.eps, self.spec.norm)
            yield x_adv

    def start(self, x: Tensor, init_delta: Tensor | None) -> Tensor:
        """Starting point: ``x + init_delta``, a uniform point of the linf ball, or ``x``."""
        if init_delta is not None:
            return project(x + init_delta.to(x.device, x.dtype), x, self.spec.eps, self.spec.norm)
        if self.spec.random_start:
            # drawn in contiguous order: the same start whatever x's memory format
            noise = torch.empty_like(x, memory_format=torch.contiguous_format)
            noise.uniform_(-self.spec.eps, self.spec.eps)
            return torch.clamp(x + noise, min=0.0, max=1.0)
        return x.clone()

    def step(self, x_adv: Tensor, grad: Tensor, state: dict[str, Tensor]) -> Tensor:
        """One update of ``x_adv`` from the input gradient (projection is done by the base)."""
        raise NotImplementedError

    def input_gradient(self, model: nn.Module, x_adv: Tensor, y: Tensor) -> Tensor:
        """Gradient of the mean cross-entropy loss with respect to the input."""
        x_adv = x_adv.detach().requires_grad_(True)
        with self._autocast(x_adv.device):
            logits = model(x_adv)
        loss = F.cross_entropy(logits.float(), y)
        return torch.autograd.grad(loss, x_adv)[0]

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype)
