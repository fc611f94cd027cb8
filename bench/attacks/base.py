"""The attack base class: one uniform callable per spec, the model bound at call time.

In the spirit of torchattacks' ``Attack.__call__`` (Kim 2020), the base does everything an attack
must get right so a subclass writes only its step: eval mode, frozen weights, the model's device,
clamping to [0, 1] and projection onto the eps ball after every step (speed knobs:
``channels_last``, ``amp_dtype``, ``compile``). The gradient passes through the model's
batch-norm-folded copy (:func:`core.fold.call`, or :func:`core.compiled.static_forward` when
compiling): the same function up to float rounding, one elementwise pass less per batch norm;
verdicts are the model's own forwards. Each class also declares what it is (name, default steps,
step rule, label, key fields), which :class:`bench.attacks.spec.AttackSpec` reads through the
registry. Design notes: docs/decisions/attacks.md.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bench.attacks import counting
from core import fold
from core.compiled import static_forward
from core.enums import Dataset, Norm
from core.errors import UserError

if TYPE_CHECKING:
    from bench.attacks.spec import AttackSpec


# The count option of the gradient attacks (PGD, MIM, FGSM): ``pgd20(eot=10)``
EOT_OPTION = {"eot": "mean input gradient of N forward + backward passes per step (EoT)"}


def model_device(model: nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer (CPU for a parameterless model)."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")


@contextlib.contextmanager
def frozen_eval(
    model: nn.Module, channels_last: bool = False, folds: bool = False
) -> Iterator[None]:
    """Eval mode and ``requires_grad=False`` on every parameter; both restored on exit. The
    weights are held fixed inside (``core.fold.weights_fixed``: the attack step's fold checks
    them once per scope). ``channels_last`` converts the model for the scope, unless the
    attack ``folds`` and the model has a batch-norm-folded copy (which carries the layout)."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    # a folded copy carries the layout itself (core.fold); only an unfolded model is converted
    restore_format = (
        channels_last
        and not _is_channels_last(model)
        and not (folds and fold.folded(model, True) is not model)
    )
    if restore_format:
        model.to(memory_format=torch.channels_last)
    try:
        with fold.weights_fixed(model):  # the compiled step checks the weights once
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


@dataclasses.dataclass
class AttackText:
    """An attack as :func:`bench.attacks.parse_attack` read it, for its class to build a spec.

    ``variant``: the part after ``name:`` (None without one); ``steps`` / ``step_size``: as
    asked for (None: the attack's default); ``params``: the keyword arguments written.
    """

    variant: str | None
    eps: float
    steps: int | None
    step_size: float | None
    params: dict[str, object]
    dataset: Dataset | None


class Attack:
    """Base class: ``attack(model, x, y) -> x_adv``; subclasses implement :meth:`step`.

    The generic loop (:meth:`iterate`) starts at ``x`` (or a random point of the ball, or an
    injected ``init_delta``), and for each of ``spec.steps`` steps takes the gradient of the
    cross-entropy with respect to the input, calls :meth:`step`, then projects and clamps.
    A subclass that replaces :meth:`iterate` (a black box such as torchattacks or AutoAttack)
    sets ``stepwise = False``: its iterates cannot be judged one by one.

    The class attributes and class methods below declare what the attack is; a new attack is
    its class plus one entry in :data:`bench.attacks.registry.ATTACKS`.
    """

    name: ClassVar[str] = ""  # its spec name and registry key, e.g. "pgd"
    title: ClassVar[str] = ""  # the stem of its label, e.g. "PGD"
    default_steps: ClassVar[int] = 1
    # iterative with a fixed step: the step count may be written in the name (pgd20), and the
    # k-step run is the first k steps of the K-step run (same start and step size)
    fixed_step_iterative: ClassVar[bool] = False
    starts_random: ClassVar[bool] = False  # parse_attack's random_start
    norms: ClassVar[tuple[Norm, ...]] = (Norm.LINF,)
    # the spec fields its key() shows, in the key's fixed order (step_size only when set)
    key_fields: ClassVar[tuple[str, ...]] = ("eps", "step_size", "norm")
    variants: ClassVar[bool] = False  # spec names are "<name>:<Variant>" (torchattacks:PGD)
    usage: ClassVar[str] = ""  # how to write it in error messages ("" = name, or name[N])
    examples: ClassVar[tuple[str, ...]] = ()  # spellings offered as close matches (() = name)
    # execution details (see as_attack), each a keyword of __init__ and an attribute
    run_options: ClassVar[tuple[str, ...]] = ("channels_last", "amp_dtype", "compile", "fold")
    # keyword options its text may carry (name -> one-line meaning); a true option joins the
    # spec's params, hence its key; a false one is dropped, so the plain key is unchanged
    options: ClassVar[dict[str, str]] = {}
    # whole-number options (name -> meaning), at least 1; 1 is dropped like a false option
    count_options: ClassVar[dict[str, str]] = {}
    stepwise = True

    @classmethod
    def default_step_size(
        cls, eps: float, steps: int, dataset: Dataset | None = None
    ) -> float | None:
        """The step size when none is given (None: the attack has no step size of its own)."""
        return None

    @classmethod
    def spec_key_fields(cls, spec: AttackSpec) -> tuple[str, ...]:
        """The fields ``spec.key()`` shows (:attr:`key_fields` unless it depends on the spec)."""
        return cls.key_fields

    @classmethod
    def label(cls, spec: AttackSpec) -> str:
        """Short human label: the title, ``-<steps>`` when steps are keyed, ``-L2`` for l2."""
        steps = f"-{spec.steps}" if "steps" in cls.spec_key_fields(spec) else ""
        eot = eot_samples(spec)
        eot_text = f"-EoT{eot}" if eot > 1 else ""
        return f"{cls.title}{steps}{'-L2' if spec.norm is Norm.L2 else ''}{eot_text}"

    @classmethod
    def accepts(cls, variant: str | None) -> bool:
        """Whether ``<name>:<variant>`` (or the bare name, ``variant`` None) names this attack."""
        return variant is None

    @classmethod
    def parse(cls, text: AttackText) -> dict[str, Any]:
        """The :class:`AttackSpec` fields ``parse_attack`` builds from ``text``."""
        steps = text.steps if cls.fixed_step_iterative else None  # others: a fixed count
        n_steps = cls.default_steps if steps is None else int(steps)
        params = cls.parse_options(text.params)
        step_size = text.step_size
        if step_size is None:
            step_size = cls.default_step_size(text.eps, n_steps, text.dataset)
        return {
            "name": cls.name,
            "eps": text.eps,
            "steps": n_steps,
            "step_size": step_size,
            "norm": Norm.LINF,
            "random_start": cls.starts_random,
            "params": params,
        }

    @classmethod
    def parse_options(cls, given: dict[str, object]) -> tuple[tuple[str, object], ...]:
        """The declared :attr:`options` that are on and :attr:`count_options` above 1, as spec
        params (others refused)."""
        declared = {**cls.options, **cls.count_options}
        unknown = sorted(set(given) - set(declared))
        if unknown and not declared:
            raise UserError(f"{cls.name} takes no keyword arguments; use --steps / --step-size")
        if unknown:
            offered = ", ".join(
                [f"{k}=True ({v})" for k, v in cls.options.items()]
                + [f"{k}=N ({v})" for k, v in cls.count_options.items()]
            )
            raise UserError(f"{cls.name} does not take {', '.join(unknown)}; it takes {offered}")
        kept: list[tuple[str, object]] = []
        for name, value in sorted(given.items()):
            if name in cls.count_options:
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise UserError(
                        f"{cls.name} option {name} must be a whole number >= 1, got {value!r}"
                    )
                if value > 1:
                    kept.append((name, int(value)))
            elif not isinstance(value, bool):
                raise UserError(f"{cls.name} option {name} must be True or False, got {value!r}")
            elif value:
                kept.append((name, True))
        return tuple(kept)

    def __init__(
        self,
        spec: AttackSpec,
        *,
        channels_last: bool = False,
        amp_dtype: torch.dtype | None = None,
        compile: bool = False,
        fold: bool = True,
    ) -> None:
        self.spec = spec
        self.channels_last = channels_last
        self.amp_dtype = amp_dtype
        self.compile = compile  # gradient passes through core.compiled.static_forward
        self.fold = fold  # eager: the folded copy's gradient; False: the model's (reference)

    def __repr__(self) -> str:
        return self.spec.key()

    @property
    def converts_model(self) -> bool:
        """Whether the attack may turn the model itself to channels_last for its run (when it
        has no batch-norm-folded copy: :func:`frozen_eval`): not when it compiles, where the
        folded copy carries the layout (``core.fold``), so the model's weights, and with them
        the fold's signature, stay as they are."""
        return self.channels_last and not self.compile

    def frozen(self, model: nn.Module) -> contextlib.AbstractContextManager:
        """:func:`frozen_eval` for this attack's run on ``model``."""
        return frozen_eval(model, self.converts_model, self.fold and not self.compile)

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
        with self.frozen(model):
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
        with self.frozen(model):
            if not self.stepwise:
                x_adv = x
                for x_adv in self.iterate(model, x, y, init_delta):  # noqa: B007 - the last
                    pass
                return float32_verdict(model, x_adv, y).cpu()
            active = torch.arange(len(y), device=device)
            x_adv = self.start(x, init_delta)
            state: dict[str, Tensor] = {}
            for _ in range(self.spec.steps):
                grad, logits = self.gradient_and_logits(model, x_adv, y)
                if self.amp_dtype is None:
                    ok = logits.argmax(dim=1) == y
                else:
                    ok = float32_verdict(model, x_adv, y)
                if not bool(ok.all()):
                    correct[active[~ok]] = False
                    active, x, y, x_adv, grad = (t[ok] for t in (active, x, y, x_adv, grad))
                    state = {name: value[ok] for name, value in state.items()}
                    if len(active) == 0:
                        return correct.cpu()
                x_adv = project(self.step(x_adv, grad, state), x, self.spec.eps, self.spec.norm)
            correct[active] = float32_verdict(model, x_adv, y)
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
        """:meth:`input_gradient` and the (detached) logits of the same forward pass.

        With ``eot=N`` (Expectation over Transformation, Athalye, Carlini and Wagner, ICML 2018)
        the gradient is the mean of N forward + backward passes at the same point, the logits
        those of the last; a deterministic model gets N equal gradients, whose mean has the
        same signs, so sign-step attacks (PGD, FGSM) take the plain attack's steps."""
        samples = eot_samples(self.spec)
        if samples == 1:
            return self._one_gradient(model, x_adv, y)
        total, logits = self._one_gradient(model, x_adv, y)
        for _ in range(samples - 1):
            grad, logits = self._one_gradient(model, x_adv, y)
            total = total + grad
        return total / samples, logits

    def _one_gradient(self, model: nn.Module, x_adv: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        x_adv = x_adv.detach().requires_grad_(True)
        if self.compile:  # an unfolded model's hooks run inside the compiled graph: uncounted
            counting.uncounted(model)
        with self._autocast(x_adv.device):  # both paths: batch norms folded (core.fold)
            if self.compile:
                logits = static_forward(model, x_adv, self.channels_last)
            elif self.fold:
                logits = fold.call(model, x_adv, self.channels_last)
            else:
                logits = model(x_adv)
        loss = F.cross_entropy(logits.float(), y)
        return torch.autograd.grad(loss, x_adv)[0], logits.detach()

    def _autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        if self.amp_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=device.type, dtype=self.amp_dtype)


def eot_samples(spec: object) -> int:
    """Gradient samples per step of ``spec`` (its ``eot`` option; 1 without)."""
    return int(dict(getattr(spec, "params", ())).get("eot", 1))


@torch.no_grad()
def float32_verdict(model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
    """``model(x)`` classifies ``y`` correctly, in float32 (autocast off), per sample."""
    with torch.autocast(device_type=x.device.type, enabled=False):
        return model(x.float()).argmax(dim=1) == y
