"""The attack base class: one uniform callable per spec, the model bound at call time.

In the spirit of torchattacks' ``Attack.__call__`` (Kim 2020, "Torchattacks: A PyTorch
Repository for Adversarial Attacks"), the base does everything an attack must get right so a
subclass writes only its step: eval mode (restored afterwards), no weight gradients for the
duration (``requires_grad`` restored), the model's device, clamping to [0, 1] and projection onto
the eps ball after every step. Optional speed knobs: ``channels_last`` memory format and
``amp_dtype`` (autocast, e.g. bf16, for the gradient computations; the caller computes the final
verdict in float32). With ``channels_last`` a contiguous model is converted for the call and
converted back afterwards; convert the model once beforehand to skip that (about 1 ms per call).

:meth:`Attack.correct_over_iterates` judges every iterate instead of only the last one (a sample
counts as fooled as soon as any iterate fools the model, and is attacked no further); the eps
sweep uses it, see :mod:`bench.evaluate`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks.spec import AttackSpec
from core.enums import Norm


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
    A subclass that replaces :meth:`iterate` (a black box such as torchattacks or AutoAttack)
    sets ``stepwise = False``: its iterates cannot be judged one by one.
    """

    stepwise = True

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

    def correct_over_iterates(
        self, model: nn.Module, x: Tensor, y: Tensor, *, init_delta: Tensor | None = None
    ) -> Tensor:
        """Per-sample correctness (CPU bool) over EVERY iterate, the start included.

        A sample counts as fooled as soon as the model misclassifies one of its iterates, and is
        dropped from the batch from then on (its remaining steps are not computed). A sample that
        is never fooled gets the same steps, hence the same final image, as :meth:`__call__`
        with the same start. So the result is never above the last-iterate verdict of the same
        run, and a sample fooled at step 2 of 10 costs two gradient passes instead of ten.

        Each iterate is judged on the logits of the gradient pass that follows it (no extra
        forward); with ``amp_dtype`` set, those logits are low precision, so a separate float32
        forward judges instead. The last iterate is judged by a float32 forward. A black-box
        attack (``stepwise`` False) is judged on its output only.
        """
        device = model_device(model)
        x = x.detach().to(device=device, dtype=torch.float32)
        y = y.detach().to(device=device)
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        correct = torch.ones(len(y), dtype=torch.bool, device=device)
        with frozen_eval(model, self.channels_last):
            if not self.stepwise:
                x_adv = x
                for x_adv in self.iterate(model, x, y, init_delta):  # noqa: B007 - the last
                    pass
                return _judge(model, x_adv, y).cpu()
            active = torch.arange(len(y), device=device)
            x_adv = self.start(x, init_delta)
            state: dict[str, Tensor] = {}
            for _ in range(self.spec.steps):
                grad, logits = self.gradient_and_logits(model, x_adv, y)
                if self.amp_dtype is None:
                    ok = logits.argmax(dim=1) == y
                else:
                    ok = _judge(model, x_adv, y)
                if not bool(ok.all()):
                    correct[active[~ok]] = False
                    active, x, y, x_adv, grad = (t[ok] for t in (active, x, y, x_adv, grad))
                    state = {name: value[ok] for name, value in state.items()}
                    if len(active) == 0:
                        return correct.cpu()
                x_adv = project(self.step(x_adv, grad, state), x, self.spec.eps, self.spec.norm)
            correct[active] = _judge(model, x_adv, y)
        return correct.cpu()

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
        return self.gradient_and_logits(model, x_adv, y)[0]

    def gradient_and_logits(
        self, model: nn.Module, x_adv: Tensor, y: Tensor
    ) -> tuple[Tensor, Tensor]:
        """:meth:`input_gradient` and the (detached) logits of the same forward pass."""
        x_adv = x_adv.detach().requires_grad_(True)
        with self._autocast(x_adv.device):
            logits = model(x_adv)
        loss = F.cross_entropy(logits.float(), y)
        return torch.autograd.grad(loss, x_adv)[0], logits.detach()

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype)


@dataclasses.dataclass
class _Cohort:
    """Rows of one budget that started together: sample indices, iterates, step state."""

    budget: int
    rows: Tensor
    x_adv: Tensor
    begun: int
    state: dict[str, Tensor] = dataclasses.field(default_factory=dict)


def correct_over_budgets(
    attacks: Sequence[Attack],
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    starts: Sequence[Tensor],
    alive: Tensor,
    *,
    max_rows: int,
) -> Tensor:
    """Several budgets of one stepwise attack, run overlapped, every iterate judged.

    ``attacks[j]`` is the attack at the j-th budget in ASCENDING order (same class, same number
    of steps), ``starts[j]`` its starting images for ``x`` (one row per sample) and
    ``alive[:, j]`` marks the samples still to attack at budget j (clean-correct, not fooled at
    a smaller budget evaluated earlier). Returns ``correct`` (same shape as ``alive``, on the
    CPU): sample i survived every iterate of budget j's run AND of every smaller budget's run.

    Every model call takes up to ``max_rows`` (sample, budget) rows: the running ones, then
    waiting rows in ascending budget order while there is room. A row leaves as soon as its
    sample is fooled at its own budget or at any smaller one (a point of a smaller ball lies in
    every larger ball), and its place goes to a waiting row. So calls stay full, no call is
    ever added for a larger budget, and the smaller budgets, whose verdicts prune the larger
    ones, go first. Rows of a larger budget that start before a smaller budget has finished
    with the same sample are wasted if the smaller one fools it later; that is the price of
    the full calls. Each row follows its own budget's step rule from ``starts[j]`` (rows that
    start together share the step state, e.g. momentum), so its iterates are those of a run of
    ``attacks[j]``, up to batch-size-dependent float rounding. Verdicts as in
    :meth:`Attack.correct_over_iterates`.
    """
    first = attacks[0]
    steps, size = first.spec.steps, max(max_rows, 1)
    device = model_device(model)
    x = x.detach().to(device=device, dtype=torch.float32)
    y = y.detach().to(device=device)
    correct = alive.to(device=device, dtype=torch.bool).clone()
    waiting = correct.clone()
    cohorts: list[_Cohort] = []
    t = 0
    with frozen_eval(model, first.channels_last):
        while True:
            waiting &= correct
            active = sum(len(c.rows) for c in cohorts)
            for j in range(len(attacks)):
                if active >= size:
                    break
                r = waiting[:, j].nonzero().flatten()[: size - active]
                if len(r):
                    waiting[r, j] = False
                    x0 = starts[j].detach().to(device, torch.float32)[r]
                    cohorts.append(_Cohort(j, r, x0, t))
                    active += len(r)
            if active == 0:
                break
            sizes = [len(c.rows) for c in cohorts]
            oks, grads = _judge_and_gradient(
                first, model, torch.cat([c.x_adv for c in cohorts]),
                y[torch.cat([c.rows for c in cohorts])], size,
            )  # fmt: skip
            for c, ok in zip(cohorts, oks.split(sizes), strict=True):
                correct[c.rows[~ok], c.budget :] = False  # fooled here: at every larger budget
            for c, g in zip(cohorts, grads.split(sizes), strict=True):
                keep = correct[c.rows, c.budget]
                if t - c.begun >= steps:  # its last iterate was just judged: the run is over
                    keep = torch.zeros_like(keep)
                c.rows, c.x_adv, g = c.rows[keep], c.x_adv[keep], g[keep]
                c.state = {name: value[keep] for name, value in c.state.items()}
                spec = attacks[c.budget].spec
                stepped = attacks[c.budget].step(c.x_adv, g, c.state)
                c.x_adv = project(stepped, x[c.rows], spec.eps, spec.norm)
            cohorts = [c for c in cohorts if len(c.rows)]
            t += 1
    return correct.cpu()


def _judge_and_gradient(
    attack: Attack, model: nn.Module, batch: Tensor, labels: Tensor, max_rows: int
) -> tuple[Tensor, Tensor]:
    """Per-row correctness and input gradient of ``batch``, in chunks of ``max_rows`` rows."""
    if attack.channels_last and batch.dim() == 4:
        batch = batch.contiguous(memory_format=torch.channels_last)
    size = max(max_rows, 1)
    oks, grads = [], []
    for lo in range(0, len(batch), size):
        xb, yb = batch[lo : lo + size], labels[lo : lo + size]
        grad, logits = attack.gradient_and_logits(model, xb, yb)
        if attack.amp_dtype is None:
            oks.append(logits.argmax(dim=1) == yb)
        else:
            oks.append(_judge(model, xb, yb))
        grads.append(grad)
    return torch.cat(oks), torch.cat(grads)


@torch.no_grad()
def _judge(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """``model(x)`` classifies ``y`` correctly, in float32 (autocast off), per sample."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return model(x.float()).argmax(dim=1) == y
